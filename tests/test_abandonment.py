"""segohem.abandonment: the rule that flags a class the mined loss is giving up on."""

from __future__ import annotations

import pytest

from segohem.abandonment import (
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
    assert "loss=ce" in text and "loss.ce_weight" in text and "it was 1" in text


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
