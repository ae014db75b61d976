"""min_train_steps: small training sets get max_epochs raised to a step budget."""

import json

import pytest

from segohem.callbacks import MinTrainSteps
from segohem.training import train

pytestmark = pytest.mark.slow

# 16 training images at batch 8: 2 optimizer steps per epoch (on top of tiny_config's TINY).
SMALL = ["dataset.train_set.num_samples=16", "dataset.val_set.num_samples=4", "logger=none",
         "image_log_every_n_epochs=100"]


def test_max_epochs_is_raised_to_reach_the_step_budget(tiny_config, tmp_path, caplog):
    cfg = tiny_config(*SMALL, "trainer.max_epochs=1", "min_train_steps=6")
    with caplog.at_level("INFO", logger="segohem.callbacks.min_steps"):
        train(cfg)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["last"]["epoch"] == 2 and metrics["last"]["step"] == 6  # 3 epochs x 2 steps
    assert "trainer.max_epochs 1 -> 3" in caplog.text


@pytest.mark.parametrize("extra", [["min_train_steps=4"],          # 2 epochs x 2 steps: enough
                                   ["min_train_steps=null"],
                                   ["min_train_steps=50", "+trainer.max_steps=4"]])
def test_left_alone_when_enough_off_or_max_steps_given(tiny_config, tmp_path, extra):
    cfg = tiny_config(*SMALL, "trainer.max_epochs=2", *extra)
    train(cfg)
    last = json.loads((tmp_path / "metrics.json").read_text())["last"]
    assert (last["epoch"], last["step"]) == (1, 4)


def test_bad_value():
    with pytest.raises(ValueError, match="min_train_steps must be None or an int >= 0, got -1"):
        MinTrainSteps(-1)
