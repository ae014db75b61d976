"""segohem.train.abandonment: the rule that flags a class the mined loss is giving up on."""

from __future__ import annotations

import pytest

from segohem.train.abandonment import (
    AbandonmentRule,
    AbandonmentWatch,
    abandonment_message,
    rule_from,
)


def feed(watch: AbandonmentWatch, rows, max_epochs=None):
    """rows: per epoch {class: (iou, kept)}; returns the fired entries per epoch."""
    fired = []
    for epoch, row in enumerate(rows):
        iou = {c: v[0] for c, v in row.items()}
        kept = {c: v[1] for c, v in row.items()}
        fired.append(watch.update(epoch, iou, kept, max_epochs))
    return fired


def test_fires_after_three_validations_in_a_row_and_names_the_numbers():
    watch = AbandonmentWatch(AbandonmentRule(start=0.0))
    rows = [{"bg": (0.99, 0.2), "stain": (0.02, 1.0)}] * 4
    fired = feed(watch, rows)
    assert [len(f) for f in fired] == [0, 0, 1, 1]
    entry = fired[2][0]
    assert entry == {"class": "stain", "epochs": [0, 1, 2], "iou": [0.02] * 3,
                     "kept_of_class": [1.0] * 3}
    assert watch.flagged == {"stain": fired[3][0]}
    text = abandonment_message(entry, ce_weight=1.0)
    assert "'stain'" in text and "2.0, 2.0, 2.0 %" in text and "1.000" in text
    assert "loss=ce" in text and "raise the CE floor (loss.ce_weight, now 1)" in text
    assert "loss.ce_weight=1.0, the default" in abandonment_message(entry, ce_weight=0.0)
    assert "loss=ohem_dice" in abandonment_message(entry, ce_weight=None)


@pytest.mark.parametrize("breaker", [(0.15, 1.0), (0.0, 0.90), (None, 1.0), (0.0, None)])
def test_one_validation_that_breaks_the_rule_restarts_it(breaker):
    watch = AbandonmentWatch(AbandonmentRule(start=0.0))
    bad = {"stain": (0.0, 1.0)}
    fired = feed(watch, [bad, bad, {"stain": breaker}, bad, bad])
    assert all(not f for f in fired)
    assert not watch.flagged


def test_a_class_that_recovers_leaves_the_flagged_list():
    watch = AbandonmentWatch(AbandonmentRule(start=0.0, validations=2))
    bad, good = {"stain": (0.01, 0.99)}, {"stain": (0.4, 0.99)}
    fired = feed(watch, [bad, bad, good])
    assert [len(f) for f in fired] == [0, 1, 0]
    assert watch.flagged == {}


def test_early_epochs_are_not_judged():
    watch = AbandonmentWatch(AbandonmentRule(start=0.5))
    fired = feed(watch, [{"stain": (0.0, 1.0)}] * 10, max_epochs=10)
    # judged from epoch index 4 (the 5th of 10 epochs) on: three in a row at index 6
    assert [i for i, f in enumerate(fired) if f] == [6, 7, 8, 9]


def test_state_round_trip_keeps_the_history():
    watch = AbandonmentWatch(AbandonmentRule(start=0.0))
    feed(watch, [{"stain": (0.0, 1.0)}] * 2)
    resumed = AbandonmentWatch(AbandonmentRule(start=0.0))
    resumed.load_state_dict(watch.state_dict())
    assert resumed.update(2, {"stain": 0.0}, {"stain": 1.0})


@pytest.mark.parametrize(("spec", "message"), [
    ({"iou_below": 10}, "iou_below=10"),
    ({"kept_above": -0.1}, "kept_above=-0.1"),
    ({"validations": 0}, "validations=0"),
    ({"start": 2}, "start=2"),
    ({"iou_bellow": 0.1}, "unknown keys ['iou_bellow']"),
])
def test_bad_settings_name_the_key(spec, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        rule_from(spec)


def test_rule_from_config():
    assert rule_from(None) is None
    assert rule_from({"enabled": False, "iou_below": 0.2}) is None
    assert rule_from({"iou_below": 0.2}) == AbandonmentRule(iou_below=0.2)


# ------------------------------------------------------------------ in a real (tiny) run


def _unlearnable_folder(root, n_train: int = 16, n_val: int = 4, size: int = 32):
    """A folder set whose class 2 ('noise', ~8 % of pixels) is scattered at random with
    nothing in the image to tell it: no model can predict it, and a mining loss keeps every
    one of its pixels hard. Class 1 ('square') is a bright square, easy to learn."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for sub in ("images", "masks", "splits"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("val", n_val)):
        stems = [f"{split}_{i}" for i in range(n)]
        for stem in stems:
            image = rng.normal(100, 10, (size, size, 3))
            mask = np.zeros((size, size), np.uint8)
            y, x = rng.integers(0, size - 10, 2)
            mask[y:y + 10, x:x + 10] = 1
            image[mask == 1] += 120
            mask[(rng.random((size, size)) < 0.08) & (mask == 0)] = 2
            Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(
                root / "images" / f"{stem}.png")
            Image.fromarray(mask).save(root / "masks" / f"{stem}.png")
        (root / "splits" / f"{split}.txt").write_text("\n".join(stems) + "\n")
    return root


@pytest.mark.slow
def test_fires_in_a_run_where_a_class_cannot_be_learned(tmp_path, caplog):
    import json
    import logging

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from segohem.train.run import train
    from tests._support.configs import compose_train

    root = _unlearnable_folder(tmp_path / "data")
    out = tmp_path / "run"
    cfg = compose_train([
        "dataset=folder", f"dataset.root={root}", "dataset.num_classes=3",
        "dataset.class_names=[background,square,noise]", "dataset.num_workers=0",
        "loss=ohem", "trainer.max_epochs=6", "min_train_steps=null",
        "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"], out)
    with caplog.at_level(logging.WARNING, logger="segohem"):
        train(cfg)
    flagged = json.loads((out / "metrics.json").read_text())["mining"]["abandoned_classes"]
    names = [entry["class"] for entry in flagged]
    assert "noise" in names and "background" not in names
    noise = flagged[names.index("noise")]
    assert len(noise["epochs"]) == 3 and noise["epochs"][-1] == 5
    assert all(i < 0.10 for i in noise["iou"]) and all(k > 0.95 for k in noise["kept_of_class"])
    lines = [r.getMessage() for r in caplog.records if "Abandoned class" in r.getMessage()]
    assert any("'noise'" in line and "loss=ohem_dice" in line for line in lines)
    events = EventAccumulator(str(next(out.rglob("events.out.tfevents.*")).parent)).Reload()
    assert "warnings/abandoned_classes/text_summary" in events.Tags()["tensors"]
    assert "train/mining/abandoned_classes" in events.Tags()["scalars"]
