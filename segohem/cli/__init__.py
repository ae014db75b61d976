"""The four commands, one short Hydra entry point each: compose ``conf/<name>.yaml`` ->
call the library function that does the work -> return its result (the metric, for sweepers).

============  ====================  ======================================
command       entry point           work
============  ====================  ======================================
segohem-train    cli/train.py       :func:`segohem.training.train`
segohem-eval     cli/eval.py        :func:`segohem.evaluation.evaluate`
segohem-predict  cli/predict.py     :func:`segohem.prediction.predict`
segohem-export   cli/export.py      :func:`segohem.model_export.export`
============  ====================  ======================================

Only Hydra is imported at module level, so ``--help`` and bad overrides answer quickly; torch,
Lightning and SMP are imported when a run starts. A job's outcome goes to its
``status.json`` (:mod:`segohem.job_status`, a Hydra callback in conf/hydra/default.yaml).
"""
