"""MetricsWriter: metrics.json holds the mining summary only when there is one."""

import json
from types import SimpleNamespace

from segohem.train.callbacks import MetricsWriter


def test_metrics_writer_adds_mining_only_when_there_is_a_summary(tmp_path):
    trainer = SimpleNamespace(is_global_zero=True, sanity_checking=False)
    last = {"epoch": 0, "mIoU": 0.5}
    writer = MetricsWriter(tmp_path / "metrics.json")
    writer.on_validation_end(trainer, SimpleNamespace(last_val=last, best_val=last,
                                                      mining_summary={}))
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"last": last, "best": last}
    mining = {"epoch": 0, "run": {"steps": 1, "fallback_rate": 0.0}}
    writer.on_train_end(trainer, SimpleNamespace(last_val={}, best_val={}, mining_summary=mining))
    assert json.loads((tmp_path / "metrics.json").read_text()) == {
        "last": {}, "best": {}, "mining": mining}
