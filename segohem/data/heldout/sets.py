"""The held-out sets by name: each one's scene generator, class names and intended shares."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from segohem.data.heldout.rare import defects, objects, placed
from segohem.data.heldout.scenes import Sample, cracks, shapes, voclike
from segohem.data.heldout.soft import cracks_soft, voclike_soft

SET_NAMES = ("cracks", "shapes", "voclike", "cracks_soft", "voclike_soft",
             "defects", "objects")  # position = stream id: append new sets only
IMAGE_RARE = (0.03, 0.08)
"""Intended share of the training images that hold an image-rare class (``--check``)."""
MIN_VAL_IMAGES = 2
"""``--check``: every class must be in at least this many validation images."""


@dataclass(frozen=True)
class HeldoutSet:
    """A generator ``draw(rng, h, w[, present]) -> (image (h, w, 3) uint8, mask (h, w)
    uint8)``, its class names (mask value = index), the intended pixel-share range of each rare
    class (fixed before measuring: the classes of the rare-class mean) and of each soft medium
    class, and the image-rare classes: name -> (train, val) share of the images placed to hold
    one (:func:`~segohem.data.heldout.rare.placed`; ``draw`` then takes ``present``)."""

    draw: Callable[..., Sample]
    classes: tuple[str, ...]
    rare: dict[str, tuple[float, float]]
    soft: dict[str, tuple[float, float]] = field(default_factory=dict)
    image_rare: dict[str, tuple[float, float]] = field(default_factory=dict)

    def sample(self, key: tuple[int, int, int], i: int, size: int) -> Sample:
        """Sample ``i`` (size x size) of the split ``key`` = (seed, stream, split id): a
        function of ``(key, i, size)`` only."""
        rng = np.random.default_rng([*key, i])
        if not self.image_rare:
            return self.draw(rng, size, size)
        on = placed([rates[key[2]] for rates in self.image_rare.values()], key, i)
        return self.draw(rng, size, size,
                         frozenset(c for c, o in zip(self.image_rare, on, strict=True) if o))


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
SETS["defects"] = HeldoutSet(defects, ("background", "scratch", "dent", "burn"),
                             {"scratch": (0.002, 0.01), "dent": (0.0005, 0.005),
                              "burn": (0.0005, 0.005)},
                             image_rare={"dent": (0.04, 0.08), "burn": (0.06, 0.1)})
SETS["objects"] = HeldoutSet(objects, ("background", "box", "ball", "cone", "ring", "pole"),
                             {"cone": (0.0005, 0.005), "ring": (0.0005, 0.005),
                              "pole": (0.002, 0.01)},
                             image_rare={"cone": (0.035, 0.08), "ring": (0.05, 0.08)})
