"""The held-out sets by name: each one's scene generator, class names and intended shares."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from segohem.data.drawing import Rng
from segohem.data.heldout.scenes import Sample, cracks, shapes, voclike
from segohem.data.heldout.soft import cracks_soft, voclike_soft

SET_NAMES = ("cracks", "shapes", "voclike", "cracks_soft", "voclike_soft")  # position = stream id


@dataclass(frozen=True)
class HeldoutSet:
    """A generator ``draw(rng, h, w) -> (image (h, w, 3) uint8, mask (h, w) uint8)``, its
    class names (mask value = index), the intended share range of each rare class (fixed
    before measuring: the classes of the rare-class mean) and of each soft medium class."""

    draw: Callable[[Rng, int, int], Sample]
    classes: tuple[str, ...]
    rare: dict[str, tuple[float, float]]
    soft: dict[str, tuple[float, float]] = field(default_factory=dict)


SETS = {
    "cracks": HeldoutSet(cracks, ("background", "stain", "crack", "pit"),
                         {"crack": (0.002, 0.01), "pit": (0.0003, 0.003)}),
    "shapes": HeldoutSet(shapes, ("background", "disk", "square", "cross", "wire"),
                         {"square": (0.002, 0.01), "cross": (0.0005, 0.003),
                          "wire": (0.002, 0.01)}),
    "voclike": HeldoutSet(voclike, ("background", "object", "small", "speck"),
                          {"small": (0.002, 0.01), "speck": (0.0003, 0.003)}),
}
SETS["cracks_soft"] = HeldoutSet(cracks_soft, (*SETS["cracks"].classes, "smudge"),
                                 SETS["cracks"].rare, {"smudge": (0.02, 0.08)})
SETS["voclike_soft"] = HeldoutSet(voclike_soft, (*SETS["voclike"].classes, "haze"),
                                  SETS["voclike"].rare, {"haze": (0.02, 0.08)})
