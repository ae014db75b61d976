"""segohem.train.epoch_stats: the per-class mining ratios of an epoch or a run."""

from segohem.train.epoch_stats import mining_section


def test_mining_section_ratios():
    section = mining_section(
        {"steps": 4, "fallback_steps": 1.0, "class_valid": [10.0, 0.0, 30.0],
         "class_kept": [5.0, 0.0, 15.0]}, ["a", "b", "c"])
    assert section == {
        "steps": 4, "fallback_rate": 0.25, "kept_fraction": 0.5,
        "kept_of_class": {"a": 0.5, "b": None, "c": 0.5},
        "share_of_kept": {"a": 0.25, "b": 0.0, "c": 0.75}}
    assert mining_section({"steps": 2, "fallback_steps": 2.0}, []) == {
        "steps": 2, "fallback_rate": 1.0}
