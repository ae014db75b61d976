"""Classes the training is giving up on: validation IoU stays near 0 while the mining loss
keeps every pixel of the class hard (issue 19, docs/benchmarks.md "No class left behind").

A mining loss that can no longer move a class shows both signs at once: the class's pixels
all stay above the loss threshold (``kept_of_class`` ~ 1: the model never gets confident on
them) and the model never predicts it (validation IoU ~ 0). A class that is merely hard has
a rising IoU; a class the model has learned has a falling ``kept_of_class``. Pure logic, no
torch: :class:`~segohem.train.module.SegmentationModule` feeds it one pair per training epoch that
had a validation, logs the warnings and stores them in ``metrics.json``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class AbandonmentRule:
    """When a class counts as abandoned: over the last ``validations`` validations (each with
    the mining ratios of its training epoch), IoU < ``iou_below`` and ``kept_of_class`` >
    ``kept_above`` every time, all of them at or after ``start`` x the run's epochs (early in
    a run every class but the background is all hard and unpredicted). Fractions in [0, 1]."""

    iou_below: float = 0.10
    kept_above: float = 0.95
    validations: int = 3
    start: float = 0.25

    def __post_init__(self) -> None:
        for name in ("iou_below", "kept_above", "start"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"abandonment.{name}={value!r}: a fraction in [0, 1] "
                                 f"(e.g. iou_below: 0.10 for 10 % IoU).")
        if isinstance(self.validations, bool) or not isinstance(self.validations, int) \
                or self.validations < 1:
            raise ValueError(f"abandonment.validations={self.validations!r}: an int >= 1 "
                             f"(how many validations in a row the signs must hold).")


@dataclass
class AbandonmentWatch:
    """Per-class history of (epoch, IoU, kept_of_class); :meth:`update` returns the classes
    that meet the :class:`AbandonmentRule` after each epoch."""

    rule: AbandonmentRule = field(default_factory=AbandonmentRule)
    history: dict[str, list[tuple[int, float, float]]] = field(default_factory=dict)
    flagged: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Class name -> its last warning (:meth:`update`'s entries), kept for the run's end."""

    def update(self, epoch: int, iou: Mapping[str, float | None],
               kept_of_class: Mapping[str, float | None],
               max_epochs: int | None = None) -> list[dict[str, Any]]:
        """Add one validated epoch (0-based ``epoch`` of a run of ``max_epochs``; epochs
        before ``rule.start x max_epochs`` are not judged). A class without an IoU (absent
        from the validation set) or without a kept ratio (no training pixel that epoch)
        restarts its history: the rule needs consecutive evidence. Returns the classes
        abandoned now, as dicts with ``class``, ``epochs``, ``iou`` and ``kept_of_class``
        (lists over the last ``validations``, oldest first)."""
        now: list[dict[str, Any]] = []
        if max_epochs is not None and epoch + 1 < self.rule.start * max_epochs:
            return now
        for name in iou:
            value, kept = iou.get(name), kept_of_class.get(name)
            if value is None or kept is None:
                self.history.pop(name, None)
                continue
            recent = [*self.history.get(name, []), (epoch, float(value), float(kept))]
            recent = recent[-self.rule.validations:]
            self.history[name] = recent
            if len(recent) == self.rule.validations and all(
                    i < self.rule.iou_below and k > self.rule.kept_above for _, i, k in recent):
                entry = {"class": name, "epochs": [e for e, _, _ in recent],
                         "iou": [round(i, 4) for _, i, _ in recent],
                         "kept_of_class": [round(k, 4) for _, _, k in recent]}
                self.flagged[name] = entry
                now.append(entry)
            else:
                self.flagged.pop(name, None)  # recovered: only still-abandoned classes stay
        return now

    def state_dict(self) -> dict[str, Any]:
        """JSON-friendly state (stored in checkpoints, so a resumed run keeps its history)."""
        return {"history": {k: [list(t) for t in v] for k, v in self.history.items()},
                "flagged": dict(self.flagged)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.history = {k: [tuple(t) for t in v] for k, v in state.get("history", {}).items()}
        self.flagged = dict(state.get("flagged", {}))


def what_to_try(ce_weight: float | None) -> str:
    """The advice of a warning, by the run's CE floor weight (None: the loss has none)."""
    if ce_weight is None:
        floor = ("train with the default loss=ohem_dice, whose CE floor (loss.ce_weight=1.0) "
                 "keeps such classes")
    elif ce_weight == 0:
        floor = "turn the CE floor back on (loss.ce_weight=1.0, the default)"
    else:
        floor = f"raise the CE floor (loss.ce_weight, now {ce_weight:g})"
    return (f"{floor}, raise loss.thresh (fewer pixels parked below it), compare with loss=ce, "
            f"or check the class's labels")


def abandonment_message(entry: Mapping[str, Any], ce_weight: float | None = None) -> str:
    """One warning line for an :meth:`AbandonmentWatch.update` entry; ``ce_weight``: the
    loss's CE floor weight (None for a loss without one)."""
    ious = ", ".join(f"{100 * v:.1f}" for v in entry["iou"])
    kept = ", ".join(f"{v:.3f}" for v in entry["kept_of_class"])
    epochs = ", ".join(str(e) for e in entry["epochs"])
    return (f"class {entry['class']!r} looks abandoned: validation IoU {ious} % while "
            f"kept_of_class {kept} (every pixel of it stays hard: the model never gets "
            f"confident on it) at epochs {epochs}; {what_to_try(ce_weight)}.")


def rule_from(spec: AbandonmentRule | Mapping[str, Any] | None) -> AbandonmentRule | None:
    """An :class:`AbandonmentRule` from a config mapping (None or ``enabled: false``: off)."""
    if spec is None or isinstance(spec, AbandonmentRule):
        return spec
    spec = dict(spec)
    if not spec.pop("enabled", True):
        return None
    keys = ("iou_below", "kept_above", "validations", "start")
    unknown = sorted(set(spec) - set(keys))
    if unknown:
        raise ValueError(f"abandonment: unknown keys {unknown}; the keys are enabled, "
                         f"{', '.join(keys)}.")
    return AbandonmentRule(**spec)
