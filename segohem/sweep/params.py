"""The search space a sweep worker runs: ``hydra.sweeper.params`` / ``when`` plus the command
line, checked against the config every trial will compose, before any trial trains."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from hydra.core.config_loader import ConfigLoader
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from segohem.sweep.space import SearchSpace, format_value
from segohem.sweep.storage import StudyError

log = logging.getLogger(__name__)
_ABSENT = object()


def sweep_search_space(params: Mapping[str, Any], when: Mapping[str, Mapping[str, Any]],
                       arguments: Sequence[str]) -> tuple[list[str], SearchSpace]:
    """(fixed overrides, search space). Command-line arguments that are sweeps
    (``loss.thresh=interval(0.5,0.9)``) join ``params``; a plain value for a searched key
    (``loss=ohem``) fixes it (its conditions are decided); the rest go to every trial."""
    params, when = dict(params), {k: dict(v) for k, v in when.items()}
    fixed = []
    for override in OverridesParser.create().parse_overrides(list(arguments)):
        key = override.get_key_element()
        if override.is_sweep_override():
            params[key] = override.input_line.split("=", 1)[1]
            continue
        fixed.append(override.input_line)
        if key in params:
            log.info("%s given on the command line: not searched.", override.input_line)
            params.pop(key)
            when.pop(key, None)
            _fix_conditions(params, when, key, override.value())
    return fixed, SearchSpace.from_config(params, when)


def check_space_keys(loader: ConfigLoader, config: DictConfig, fixed: list[str],
                     space: SearchSpace) -> None:
    """Compose the config as the trials will, once per condition and per choice of a config
    group: every parameter must name a key (or group) of the config it gets; otherwise a
    :class:`StudyError` naming it and the keys that exist."""
    groups = set(config.hydra.runtime.choices.keys())
    for param in space.params:
        choices = getattr(param.distribution, "choices", None)
        if param.key not in groups:
            choices = None  # a value: its existence is checked, not each value
        for assignment in space.conditioning_values(param):
            values = [assignment | {param.key: c} for c in choices] if choices else [assignment]
            for value_set in values:
                _compose_and_check(loader, config, groups, fixed, space, value_set, param.key)
    for key in space.fixed:
        _compose_and_check(loader, config, groups, fixed, space, {}, key)


def _compose_and_check(loader: ConfigLoader, config: DictConfig, groups: set[str],
                       fixed: list[str], space: SearchSpace, values: Mapping[str, Any],
                       key: str) -> None:
    # The checked key's own value is left out unless it is a config group: a missing key is
    # reported below with the keys that exist.
    given = [f"{k}={format_value(v)}" for k, v in values.items() if k != key or k in groups]
    overrides = [*fixed, *given]
    if key in space.fixed:
        overrides.append(f"{key}={space.fixed[key]}")
    where = ", ".join(given) or "as given"
    try:
        cfg = loader.load_sweep_config(config, overrides)
    except HydraException as err:
        raise StudyError(f"hydra.sweeper.params.{key}: the config does not compose with "
                         f"{where}: {err}") from None
    bare = key.lstrip("+")
    if key.startswith("+") or bare in cfg.hydra.runtime.choices:
        return
    if OmegaConf.select(cfg, bare, default=_ABSENT, throw_on_missing=False) is _ABSENT:
        parent = bare.rpartition(".")[0]
        node = OmegaConf.select(cfg, parent) if parent else cfg
        known = sorted(node.keys()) if isinstance(node, DictConfig) else []
        raise StudyError(
            f"hydra.sweeper.params.{key}: no key {bare!r} in the config ({where}). "
            f"Keys of {parent or 'the config'}: {known}. Fix the name, add a "
            f"hydra.sweeper.when condition if it exists only for some choices, or write "
            f"+{bare} to add a new key.")


def _fix_conditions(params: dict[str, Any], when: dict[str, dict[str, Any]], key: str,
                    value: Any) -> None:
    """``key`` is fixed to ``value``: its conditions on other parameters are decided (kept
    parameters lose the condition, the others leave the search space)."""
    for other, conditions in list(when.items()):
        if key not in conditions:
            continue
        allowed = conditions.pop(key)
        allowed = allowed if isinstance(allowed, (list, tuple)) else [allowed]
        if value not in allowed:
            params.pop(other, None)
            when.pop(other)
        elif not conditions:
            when.pop(other)
