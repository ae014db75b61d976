"""RunReport (the end of train.log) and its mining line: the loss says what its fallback rule
is (``fallback_rule``), the report imports no loss class."""

import logging
from types import SimpleNamespace

from segohem.losses import (
    BinaryOhemLoss,
    CrossEntropyLoss,
    OhemCELoss,
    OhemDiceLoss,
    TopKCELoss,
    WeightedSumLoss,
)
from segohem.train.callbacks import RunReport
from segohem.train.callbacks.report import mining_report


def summary(rate: float) -> dict:
    return {"run": {"steps": 10, "fallback_rate": rate}}


def test_mining_report_line():
    dominated = mining_report(summary(0.83), OhemCELoss())
    assert dominated == ("Mining: n_min fallback used in 83 % of training steps (dominated: the "
                         "threshold rarely kept n_min pixels; raise loss.thresh or lower "
                         "loss.n_min)")
    assert mining_report(summary(0.04), OhemCELoss()) == (
        "Mining: n_min fallback used in 4 % of training steps (the threshold decided)")
    inside = WeightedSumLoss({"ce": CrossEntropyLoss(), "ohem": OhemCELoss()})
    assert mining_report(summary(0.6), inside).startswith("Mining: n_min fallback used in 60 %")
    assert mining_report(summary(0.6), OhemDiceLoss()).startswith("Mining: n_min fallback")
    assert "min_neg floor used in 90 %" in mining_report(summary(0.9), BinaryOhemLoss())
    assert mining_report(summary(0.1), BinaryOhemLoss()).endswith("(neg_ratio decided)")
    assert mining_report(summary(1.0), TopKCELoss()) is None  # top-k has no threshold
    assert mining_report({}, OhemCELoss()) is None
    assert mining_report(summary(0.5), None) is None


def fit_end(report: RunReport, module: SimpleNamespace, rank_zero: bool = True) -> None:
    report.on_fit_end(SimpleNamespace(is_global_zero=rank_zero), module)


def test_rank_zero_logs_best_epoch_mining_line_and_abandoned_classes(caplog):
    best = {"epoch": 3, "mIoU": 0.5, "mAcc": 0.6, "aAcc": 0.9,
            "IoU": {"bg": 0.9, "wire": 0.1}, "Acc": {"bg": 0.95, "wire": 0.25}}
    abandoned = {"class": "wire", "epochs": [1, 2, 3], "iou": [0.01, 0.02, 0.03],
                 "kept_of_class": [0.99, 0.98, 0.99]}
    module = SimpleNamespace(best_val=best, class_names=["bg", "wire"], loss=OhemCELoss(),
                             mining_summary={**summary(0.83), "abandoned_classes": [abandoned]})
    with caplog.at_level(logging.INFO, logger="segohem"):
        fit_end(RunReport(), module, rank_zero=False)
        assert caplog.records == []
        fit_end(RunReport(), module)
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0].startswith("Best validation epoch 3:\n") and "wire" in messages[0]
    assert "10.00" in messages[0]  # wire's IoU in %
    assert messages[1] == mining_report(summary(0.83), OhemCELoss())
    assert messages[2].startswith("Abandoned class: ") and "'wire'" in messages[2]
    assert caplog.records[2].levelno == logging.WARNING


def test_nothing_to_report_without_validation_or_mining(caplog):
    module = SimpleNamespace(best_val={}, class_names=["a"], loss=CrossEntropyLoss(),
                             mining_summary={})
    with caplog.at_level(logging.INFO, logger="segohem"):
        fit_end(RunReport(), module)
    assert caplog.records == []
