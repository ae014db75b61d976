"""Held-out sets: seven imbalanced segmentation datasets written as ``dataset=folder`` trees
(``segohem-heldout``), and a Cityscapes-like street scene for the data benchmark.

They differ from the embedded ``dataset=synthetic`` (hue-coded objects on a blended two-colour
background) in what makes the rare classes hard:

* ``cracks``: grey concrete-like fBm texture with grain; classes background, stain (an
  irregular tinted blob, a few %), crack (1-2 px random-walk curves only ~25 % darker than the
  texture, < 1 %), pit (2x2 / 3x3 dark specks, ~0.1 %).
* ``shapes``: every object (clutter included) gets its own random colour, so colour says
  nothing about the class; only shape does. Classes background (with triangle and thick-stroke
  clutter), disk (several %), square (4-7 px, ~0.5 %), cross (5x5 plus, ~0.15 %), wire (1-px
  straight lines, ~0.5 %).
* ``voclike``: Pascal-VOC-like void borders: a 2-3 px ignore (255) band centred on every
  object boundary (a 1-px ring outside specks), some images with an ignore frame of padding;
  classes background (noisy fBm), object (large polygons / ellipses), small (3-5 px radius,
  ~0.5 %), speck (2x2, ~0.1 %).
* ``cracks_soft`` / ``voclike_soft``: the same scenes (same classes, same ids) plus one *soft*
  class of medium frequency (2-8 % of the pixels) appended as the last id: ``smudge`` on
  ``cracks`` (a faint brownish darkening of the texture, 3.5-7 %), ``haze`` on ``voclike`` (a
  veil of 22-35 % opacity towards a lighter colour). Both fade in over 6-9 px (a blurred irregular
  blob, label = opacity >= 1/2), are mottled, and cover the other classes' pixels without
  relabelling them: a low-contrast tint over the texture that plain CE learns only in part.
* ``defects`` / ``objects``: rare across *images*: two classes per set sit in only 3.5-6 % of
  the training images (8-10 % of the validation images, enough to score them), placed by an
  evenly spread schedule over the sample index (:func:`~segohem.data.heldout.rare.placed`),
  with a few hundred pixels where present; beside them common classes and a pixel-rare one in
  most images. ``defects``: brushed metal with unlabelled oil spots; background, scratch (1-px
  bright lines in 60 % of the images, ~0.3 %), dent (a dimple shaded light-to-dark, 4 % of
  the images), burn (a dark patch with a blue or straw heat-tinted rim, 6 %). ``objects``:
  random colours on a two-tone ground with blob clutter; background, box (every image, ~6 %),
  ball (shaded disc, 2/3 of the images), cone (striped triangle, 3.5 %), ring (annulus, 5 %),
  pole (dark 1-2 px vertical line, ~0.5 %).

Thin / tiny structures have sizes in pixels and counts proportional to the image area, so
their pixel shares barely depend on ``--size``. Sample ``i`` of a split depends only on
``(seed, set, split, i, size)``. Layout of ``<out>/<set>/``::

    images/<stem>.png    RGB uint8 (H, W, 3)
    masks/<stem>.png     uint8 (H, W) class ids, 255 = ignore
    splits/train.txt, splits/val.txt    stems, one per line
    overrides.txt        the Hydra overrides to train on it, one per line
    README.txt           the classes, their training pixel shares (and, for sets with
                         image-rare classes, train / val image shares), the train command

Modules: :mod:`~segohem.data.drawing` (primitives shared with ``dataset=synthetic``),
``scenes`` (the three base scenes), ``soft`` (the soft variants), ``rare`` (the image-rare
sets and their schedule), ``sets`` (:data:`SETS`: name -> generator, classes, intended shares),
``write`` (the files and the share report, ``--check``: shares in range, every class in >= 2
validation images), ``street`` (:func:`make_scene`). Run::

    segohem-heldout --out /tmp/heldout [--sets cracks,shapes,voclike]
        [--seed 0] [--size 96] [--train 200] [--val 60] [--check]
"""

from segohem.data.heldout.sets import SET_NAMES, SETS, HeldoutSet
from segohem.data.heldout.street import make_scene
from segohem.data.heldout.write import overrides, write_set, write_sets

__all__ = ["SETS", "SET_NAMES", "HeldoutSet", "make_scene", "overrides", "write_set",
           "write_sets"]
