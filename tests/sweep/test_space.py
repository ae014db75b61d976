"""The search space of segohem's Optuna sweeper: Hydra's sweep syntax -> distributions,
conditional parameters, overrides."""

from __future__ import annotations

import optuna
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from segohem.sweep.space import SearchSpace, SearchSpaceError, format_value

FAMILY = {"loss": "choice(ce, ohem, topk)", "loss.thresh": "interval(0.5, 0.95)",
          "loss.n_min": "choice(0.02, 0.0625)", "loss.top_k": "interval(0.05, 0.5)",
          "optimizer.lr": "tag(log, interval(0.0003, 0.01))"}
WHEN = {"loss.thresh": {"loss": ["ohem"]}, "loss.n_min": {"loss": "ohem"},
        "loss.top_k": {"loss": ["topk"]}}


def test_sweep_syntax_becomes_optuna_distributions():
    space = SearchSpace.from_config({
        "a": "interval(0.5, 0.95)", "b": "tag(log, interval(1e-4, 1e-2))",
        "c": "tag(int, interval(1, 8))", "d": "range(1, 5)", "e": "range(0.1, 0.4, 0.1)",
        "f": "choice(ce, 3, 0.5, true)", "g": "7"})
    dist = {p.key: p.distribution for p in space.params}
    assert dist["a"] == FloatDistribution(0.5, 0.95)
    assert dist["b"] == FloatDistribution(1e-4, 1e-2, log=True)
    assert dist["c"] == IntDistribution(1, 8)
    assert dist["d"] == IntDistribution(1, 4)  # range's stop is excluded
    assert dist["e"].step == pytest.approx(0.1) and dist["e"].high == pytest.approx(0.3)
    assert dist["f"] == CategoricalDistribution(["ce", 3, 0.5, True])
    assert space.fixed == {"g": "7"}


def test_a_conditional_parameter_is_sampled_only_under_its_condition():
    space = SearchSpace.from_config(dict(reversed(FAMILY.items())), WHEN)  # order-independent
    assert [p.key for p in space.params][:2] == ["optimizer.lr", "loss"]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(40):
        trial = study.ask()
        values = space.sample(trial)
        seen.add(values["loss"])
        ohem_keys = {"loss.thresh", "loss.n_min"} & set(values)
        assert bool(ohem_keys) == (values["loss"] == "ohem")
        assert ("loss.top_k" in values) == (values["loss"] == "topk")
        assert set(trial.params) == set(values)  # the study records exactly these
        study.tell(trial, 0.0)
    assert seen == {"ce", "ohem", "topk"}


def test_overrides_parse_back_to_the_sampled_values():
    space = SearchSpace.from_config(FAMILY, WHEN)
    values = {"loss": "ohem", "loss.thresh": 0.7123456789, "optimizer.lr": 1e-4,
              "name": "with space", "flag": True, "none": None}
    parser = OverridesParser.create()
    parsed = {o.key_or_group: o.value() for o in parser.parse_overrides(space.overrides(values))}
    assert parsed == values
    assert format_value("null") == "'null'"


@pytest.mark.parametrize(("params", "when", "message"), [
    ({"x": "interval(0"}, None, "hydra.sweeper.params.x='interval(0'"),
    ({"x": "range(3, 1)"}, None, "empty range"),
    ({"x": "interval(0, 1)", "y": "interval(0, 1)"}, {"x": {"y": [0.5]}},
     "y must be another choice(...) parameter"),
    ({"x": "choice(a, b)", "y": "interval(0, 1)"}, {"y": {"x": ["c"]}},
     "['c'] not among the choices of x"),
    ({"x": "choice(a, b)"}, {"z": {"x": ["a"]}}, "z is not in hydra.sweeper.params"),
    ({"x": "choice(a, b)", "y": "3"}, {"y": {"x": ["a"]}}, "y is not swept"),
    ({"x": "choice(a, b)", "y": "choice(c, d)"}, {"x": {"y": ["c"]}, "y": {"x": ["a"]}},
     "cycle"),
    ({"x": "choice(a, b)", "y": "interval(0, 1)"}, {"y": ["a"]}, "expected a mapping"),
])
def test_bad_search_spaces_name_the_entry(params, when, message):
    with pytest.raises(SearchSpaceError) as error:
        SearchSpace.from_config(params, when)
    assert message in str(error.value)


def test_description_changes_with_the_space_and_not_with_the_order():
    a = SearchSpace.from_config(FAMILY, WHEN).describe()
    b = SearchSpace.from_config(dict(reversed(FAMILY.items())), WHEN).describe()
    c = SearchSpace.from_config({**FAMILY, "loss.thresh": "interval(0.5, 0.9)"}, WHEN).describe()
    assert a == b and a != c
