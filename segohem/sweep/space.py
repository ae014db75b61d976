"""The search space of an Optuna sweep, sampled define-by-run on a trial.

``hydra.sweeper.params`` maps config keys to Hydra's sweep syntax (the syntax of
hydra-optuna-sweeper, so existing configs keep working):

* ``choice(a, b, ...)`` -> categorical (a config group too: ``loss: choice(ce, ohem, topk)``);
* ``interval(lo, hi)`` -> float in [lo, hi]; ``tag(log, interval(lo, hi))`` log-uniform;
  ``tag(int, interval(lo, hi))`` integer;
* ``range(start, stop[, step])`` -> the values ``start, start + step, ... < stop`` (integers
  when all three are integers);
* a plain value -> that value in every trial (not sampled).

``hydra.sweeper.when`` makes parameters conditional: ``{loss.thresh: {loss: [ohem, ohem_dice]}}``
samples ``loss.thresh`` only in trials whose ``loss`` is ``ohem`` or ``ohem_dice`` (a trial with
``loss=ce`` never receives it). Conditions refer to other ``choice(...)`` parameters; a conditional
parameter is sampled after those (otherwise in the order listed).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep
from hydra.errors import CompactHydraException, HydraException
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

PARAMS_HELP = ("expected Hydra's sweep syntax, e.g. choice(ce,ohem), interval(0.5,0.95), "
               "tag(log,interval(1e-4,1e-2)), tag(int,interval(1,8)) or range(1,5)")


class SearchSpaceError(CompactHydraException, ValueError):
    """``hydra.sweeper.params`` / ``hydra.sweeper.when`` cannot be read (the message names the
    entry and the fix; Hydra prints it without a traceback)."""


@dataclass(frozen=True)
class Param:
    """One swept config key: its Optuna distribution and the conditions under which it is
    sampled (``{categorical key: allowed values}``, all must hold; empty: always)."""

    key: str
    distribution: BaseDistribution
    when: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)

    def applies(self, values: Mapping[str, Any]) -> bool:
        """Whether the conditions hold for the values sampled so far."""
        return all(values.get(key, _ABSENT) in allowed for key, allowed in self.when.items())


_ABSENT = object()


def _distribution(key: str, text: Any) -> BaseDistribution | None:
    """The distribution of ``key=text``; None for a plain (fixed) value."""
    try:
        value = OverridesParser.create().parse_override(f"{key}={text}").value()
    except HydraException as err:
        raise SearchSpaceError(f"hydra.sweeper.params.{key}={text!r}: {err}. "
                               f"{PARAMS_HELP}.") from None
    if isinstance(value, ChoiceSweep):
        return CategoricalDistribution(list(value.list))
    if isinstance(value, IntervalSweep):
        low, high, log = value.start, value.end, "log" in value.tags
        if "int" in value.tags:
            return IntDistribution(int(low), int(high), log=log)
        return FloatDistribution(float(low), float(high), log=log)
    if isinstance(value, RangeSweep):
        start, stop, step = value.start, value.stop, value.step
        if not step or (stop - start) / step <= 0:
            raise SearchSpaceError(f"hydra.sweeper.params.{key}={text!r}: empty range.")
        last = start + step * (math.ceil((stop - start) / step - 1e-9) - 1)  # stop excluded
        if all(isinstance(v, int) for v in (start, stop, step)):
            return IntDistribution(start, last, step=step)
        return FloatDistribution(float(start), float(last), step=float(step))
    return None


def format_value(value: Any) -> str:
    """``value`` as a Hydra override value: ``null``, ``true``, ``0.5``, ``ohem``, or quoted
    when the text would not parse as itself."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    if re.fullmatch(r"[A-Za-z_][\w./-]*", text) and text.lower() not in (
            "null", "true", "false", "nan", "inf"):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


class SearchSpace:
    """The swept parameters (:class:`Param`, sampled in order) and the fixed ones."""

    def __init__(self, params: Sequence[Param], fixed: Mapping[str, Any] | None = None) -> None:
        self.params = tuple(params)
        self.fixed = dict(fixed or {})

    @classmethod
    def from_config(cls, params: Mapping[str, Any] | None,
                    when: Mapping[str, Mapping[str, Any]] | None = None) -> SearchSpace:
        """From ``hydra.sweeper.params`` and ``hydra.sweeper.when`` (module docstring);
        :class:`SearchSpaceError` naming the entry for anything it cannot use. A conditional
        parameter is sampled after the parameters its conditions name."""
        distributions: dict[str, BaseDistribution] = {}
        fixed: dict[str, Any] = {}
        when = {str(k): v for k, v in (when or {}).items()}
        for key, text in _flatten(params or {}).items():
            distribution = _distribution(key, text)
            if distribution is None:
                fixed[key] = text
            else:
                distributions[key] = distribution
        for key in when:
            if key in fixed:
                raise SearchSpaceError(f"hydra.sweeper.when.{key}: {key} is not swept "
                                       f"(params.{key}={fixed[key]!r}); a condition needs a "
                                       f"swept parameter.")
            if key not in distributions:
                raise SearchSpaceError(f"hydra.sweeper.when.{key}: {key} is not in "
                                       f"hydra.sweeper.params; list every conditional "
                                       f"parameter in params too.")
        swept: list[Param] = []
        pending = list(distributions)
        while pending:
            ready = [k for k in pending if all(str(o) in {p.key for p in swept}
                                               for o in _mapping(k, when.get(k)))]
            if not ready:  # a condition on a non-parameter, or a cycle: name the first
                key = pending[0]
                _conditions(key, when.get(key), swept, distributions)
                raise SearchSpaceError(f"hydra.sweeper.when: the conditions of {pending} "
                                       f"refer to each other in a cycle.")
            for key in ready:
                swept.append(Param(key, distributions[key],
                                   _conditions(key, when.get(key), swept, distributions)))
                pending.remove(key)
        return cls(swept, fixed)

    def sample(self, trial: optuna.Trial) -> dict[str, Any]:
        """Suggest every parameter whose conditions hold, in order: ``{key: value}``."""
        values: dict[str, Any] = {}
        for param in self.params:
            if param.applies(values):
                values[param.key] = _suggest(trial, param)
        return values

    def overrides(self, values: Mapping[str, Any]) -> list[str]:
        """The fixed parameters and ``values`` as Hydra overrides (``key=value``)."""
        fixed = [f"{key}={text}" for key, text in self.fixed.items() if key not in values]
        return fixed + [f"{key}={format_value(value)}" for key, value in values.items()]

    def describe(self) -> dict[str, Any]:
        """A JSON-able description (stored in the study to detect a changed search space)."""
        return {p.key: {"distribution": optuna.distributions.distribution_to_json(
                    p.distribution),
                        "when": {k: list(v) for k, v in p.when.items()}}
                for p in self.params} | {k: {"fixed": str(v)} for k, v in self.fixed.items()}

    def conditioning_values(self, param: Param) -> list[dict[str, Any]]:
        """Assignments of the categorical parameters under which ``param`` is sampled: one
        per allowed value of each of its conditions (used to check that ``param`` names a
        key of the config those choices compose)."""
        if not param.when:
            return [{}]
        first = {key: allowed[0] for key, allowed in param.when.items()}
        return [first | {key: value} for key, allowed in param.when.items()
                for value in allowed]


def _suggest(trial: optuna.Trial, param: Param) -> Any:
    dist = param.distribution
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(param.key, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(param.key, dist.low, dist.high, step=dist.step, log=dist.log)
    assert isinstance(dist, FloatDistribution)
    return trial.suggest_float(param.key, dist.low, dist.high, step=dist.step, log=dist.log)


def _flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{loss: {thresh: ...}}`` (what ``+hydra.sweeper.params.loss.thresh=...`` on the
    command line gives) -> ``{"loss.thresh": ...}``; dotted keys stay as they are."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, Mapping):
            flat |= _flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _mapping(key: str, when: Any) -> Mapping[str, Any]:
    if when is None:
        return {}
    if not isinstance(when, Mapping) or not when:
        raise SearchSpaceError(f"hydra.sweeper.when.{key}={when!r}: expected a mapping "
                               f"{{categorical parameter: [allowed values]}}, e.g. "
                               f"{{loss: [ohem, ohem_dice]}}.")
    return when


def _conditions(key: str, when: Any, earlier: Sequence[Param],
                distributions: Mapping[str, BaseDistribution]) -> dict[str, tuple[Any, ...]]:
    """``{parameter: allowed values}`` of ``key``; every parameter named must be a
    ``choice(...)`` parameter already in ``earlier``."""
    known = {p.key: p for p in earlier}
    conditions = {}
    for other, allowed in _mapping(key, when).items():
        other = str(other)
        dist = distributions.get(other)
        if other == key or not isinstance(dist, CategoricalDistribution):
            raise SearchSpaceError(
                f"hydra.sweeper.when.{key}: {other} must be another choice(...) parameter "
                f"in hydra.sweeper.params.")
        if other not in known:
            continue  # not placed yet: from_config's ordering waits for it
        allowed = tuple(allowed) if isinstance(allowed, Sequence) and not isinstance(
            allowed, str) else (allowed,)
        unknown = [v for v in allowed if v not in dist.choices]
        if unknown:
            raise SearchSpaceError(f"hydra.sweeper.when.{key}.{other}: {unknown} not among "
                                   f"the choices of {other} {list(dist.choices)}.")
        conditions[other] = allowed
    return conditions
