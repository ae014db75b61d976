"""Real-dataset loaders (Cityscapes, Pascal VOC + SBD, ADE20K, CamVid, generic folder) on tiny
trees written in each dataset's real on-disk layout (tests/_support/data_trees.py): API, id
mapping of every raw value, augmentation, determinism, and clear errors for broken inputs."""

from __future__ import annotations

import pickle
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import albumentations as A
import numpy as np
import pytest
import torch
from albumentations.pytorch import ToTensorV2
from PIL import Image

from segohem.data import (
    ADE20KDataset,
    CamVidDataset,
    CityscapesDataset,
    DatasetError,
    FolderDataset,
    VOCDataset,
    build_dataset,
)
from tests._support import data_trees as dt

# Official labelId -> trainId (cityscapesscripts labels.py), written out independently of
# data_trees; 255 in the PNG is the license plate (id -1).
CITYSCAPES_EXPECTED = {
    0: 255, 1: 255, 2: 255, 3: 255, 4: 255, 5: 255, 6: 255,  # unlabeled .. ground
    7: 0, 8: 1, 9: 255, 10: 255,  # road, sidewalk, parking, rail track
    11: 2, 12: 3, 13: 4, 14: 255, 15: 255, 16: 255,  # building, wall, fence, guard rail, ...
    17: 5, 18: 255, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10,  # pole, polegroup, light, sign, ...
    24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 29: 255, 30: 255,  # person .. caravan, trailer
    31: 16, 32: 17, 33: 18, 255: 255,  # train, motorcycle, bicycle, license plate
}
FOLDER_CLASSES = ("background", "thing", "stuff")


def _lut(table: dict[int, int]) -> np.ndarray:
    lut = np.full(256, -1, np.int64)  # -1: value must not occur
    for k, v in table.items():
        lut[k] = v
    return lut


def _num(v: int) -> str:
    """Regex for the number ``v`` not embedded in a longer number."""
    return rf"(?<!\d){v}(?!\d)"


def _size(h: int, w: int) -> str:
    """Regex for a size H x W written as HxW, WxH, (H, W), (W, H), W=.., H=.. and the like."""
    return rf"(?<!\d)(?:{h}\D{{1,5}}{w}|{w}\D{{1,5}}{h})(?!\d)"


def _pipeline(seed: int) -> A.Compose:
    return A.Compose([
        A.RandomScale(scale_limit=(-0.5, 1.0), p=1),
        A.PadIfNeeded(min_height=64, min_width=64, fill=0, fill_mask=255),
        A.RandomCrop(64, 64),
        A.HorizontalFlip(),
        A.Normalize(),
        ToTensorV2(),
    ], seed=seed)


def _message(err: pytest.ExceptionInfo, tmp_path: Path) -> str:
    """The error message without the temporary folder (whose name may hold digits)."""
    msg = str(err.value)
    for prefix in (str(tmp_path.resolve()), str(tmp_path)):
        msg = msg.replace(prefix, "<tmp>")
    return msg


def _load_all(ds) -> None:
    for i in range(len(ds)):
        ds[i]


# --------------------------------------------------------------------------------------------
# One description per dataset for the shared tests
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    cls: type
    build: Callable[[Path], Path]  # tmp_path -> root
    split: str
    images: Callable[[Path], list[Path]]  # root -> the split's image files (any order)
    mask_of: Callable[[Path], Path]  # image file -> raw mask file
    expected: Callable[[np.ndarray], np.ndarray]  # raw mask -> train ids
    num_classes: int
    bad_values: tuple[int, int]  # raw mask values that must be rejected
    layout_word: str  # a folder name the missing-root message must show
    lossy: bool  # JPEG images: compare pixels loosely
    empty: Callable[[Path], str]  # make one split of the tree empty, return its name
    kwargs: dict[str, Any] = field(default_factory=dict)

    def make(self, root: Path, split: str | None = None, **kw):
        return self.cls(root, self.split if split is None else split, **{**self.kwargs, **kw})


def _empty_dirs(*rel: str) -> Callable[[Path], None]:
    def run(root: Path) -> None:
        for r in rel:
            shutil.rmtree(root / r, ignore_errors=True)
            (root / r).mkdir(parents=True)
    return run


def _cs_empty(root: Path) -> str:
    _empty_dirs("leftImg8bit/test", "gtFine/test")(root)
    return "test"


def _voc_empty(root: Path) -> str:
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("")
    return "val"


def _ade_empty(root: Path) -> str:
    _empty_dirs("images/validation", "annotations/validation")(root)
    return "val"


def _camvid_empty(root: Path) -> str:
    _empty_dirs("val", "valannot")(root)
    return "val"


def _folder_empty(root: Path) -> str:
    (root / "splits" / "val.txt").write_text("")
    return "val"


FOLDER_SPLITS = {"train": ["img_03", "img_01", "img_02", "img_10"], "val": ["img_04", "img_05"]}

CASES = [
    Case("cityscapes", CityscapesDataset,
         lambda t: dt.make_cityscapes(t / "cityscapes", splits=("train", "val")), "train",
         lambda r: list((r / "leftImg8bit" / "train").glob("*/*_leftImg8bit.png")),
         dt.cityscapes_mask_path, lambda raw: _lut(CITYSCAPES_EXPECTED)[raw],
         19, (34, 254), "leftImg8bit", False, _cs_empty),
    Case("voc", VOCDataset, lambda t: dt.make_voc(t), "train",
         lambda r: [r / "JPEGImages" / f"{i}.jpg" for i in dt.VOC_TRAIN_IDS],
         lambda p: p.parents[1] / "SegmentationClass" / f"{p.stem}.png",
         lambda raw: _lut({**{k: k for k in range(21)}, 255: 255})[raw],
         21, (21, 254), "JPEGImages", True, _voc_empty),
    Case("ade20k", ADE20KDataset, lambda t: dt.make_ade20k(t), "train",
         lambda r: list((r / "images" / "training").glob("ADE_train_*.jpg")),
         lambda p: p.parents[2] / "annotations" / p.parent.name / f"{p.stem}.png",
         lambda raw: _lut({0: 255, **{k: k - 1 for k in range(1, 151)}})[raw],
         150, (151, 255), "annotations", True, _ade_empty),
    Case("camvid", CamVidDataset, lambda t: dt.make_camvid(t / "CamVid"), "train",
         lambda r: list((r / "train").glob("*.png")),
         lambda p: p.parents[1] / f"{p.parent.name}annot" / p.name,
         lambda raw: _lut({**{k: k for k in range(11)}, 11: 255})[raw],
         11, (12, 255), "trainannot", False, _camvid_empty),
    Case("folder", FolderDataset, lambda t: dt.make_folder(t / "mydata", splits=FOLDER_SPLITS),
         "train", lambda r: [r / "images" / f"{s}.png" for s in FOLDER_SPLITS["train"]],
         lambda p: p.parents[1] / "masks" / f"{p.stem}.png",
         lambda raw: _lut({0: 0, 1: 1, 2: 2, 255: 255})[raw],
         3, (3, 77), "images", False, _folder_empty, {"classes": list(FOLDER_CLASSES)}),
]


@pytest.fixture(params=CASES, ids=[c.name for c in CASES])
def case(request) -> Case:
    return request.param


def _expected_images(case: Case, root: Path) -> list[Path]:
    return sorted(case.images(root), key=str)


def _key(image: Path) -> str:
    """What an error about a sample must at least name: the file stem (Cityscapes: prefix)."""
    return image.stem.removesuffix("_leftImg8bit")


def _check_image(case: Case, got: np.ndarray, path: Path) -> None:
    want = dt.read_rgb(path)
    assert isinstance(got, np.ndarray) and got.dtype == np.uint8 and got.shape == want.shape
    if case.lossy:  # decoders may differ slightly on JPEG; a BGR swap or transpose would not
        assert np.abs(got.astype(int) - want.astype(int)).mean() < 2.0
    else:
        np.testing.assert_array_equal(got, want)


# --------------------------------------------------------------------------------------------
# Shared tests
# --------------------------------------------------------------------------------------------


def test_items_match_files(case: Case, tmp_path: Path):
    root = case.build(tmp_path)
    ds = case.make(root)
    expected = _expected_images(case, root)
    assert len(ds) == len(expected) > 0
    items = [ds[i] for i in range(len(ds))]
    assert all(isinstance(it["path"], str) for it in items)
    assert [Path(it["path"]).resolve() for it in items] == [p.resolve() for p in expected]
    for it, path in zip(items, expected, strict=True):
        _check_image(case, it["image"], path)
        mask = it["mask"]
        assert isinstance(mask, np.ndarray) and mask.dtype == np.int64
        assert mask.shape == it["image"].shape[:2]
        np.testing.assert_array_equal(mask, case.expected(dt.read_raw(case.mask_of(path))))


def test_classes_and_palette(case: Case, tmp_path: Path):
    ds = case.make(case.build(tmp_path))
    assert isinstance(ds.classes, tuple) and isinstance(ds.palette, tuple)
    assert len(ds.classes) == len(ds.palette) == case.num_classes
    assert all(isinstance(c, str) and c for c in ds.classes)
    assert len(set(ds.classes)) == case.num_classes
    for rgb in ds.palette:
        assert len(rgb) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in rgb)


def test_augmentation_pipeline(case: Case, tmp_path: Path):
    ds = case.make(case.build(tmp_path), transform=_pipeline(7))
    for i in range(len(ds)):
        item = ds[i]
        image, mask = item["image"], item["mask"]
        assert isinstance(image, torch.Tensor) and image.dtype == torch.float32
        assert image.shape == (3, 64, 64)
        assert isinstance(mask, torch.Tensor) and mask.dtype == torch.int64
        assert mask.shape == (64, 64)
        values = set(mask.unique().tolist())
        assert 255 in values  # the 24 x 40 image is at most 48 x 80: rows are always padded
        assert values <= {*range(case.num_classes), 255}
        assert isinstance(item["path"], str)


def test_augmentation_determinism(case: Case, tmp_path: Path):
    root = case.build(tmp_path)
    a, b, c = (case.make(root, transform=_pipeline(s)) for s in (7, 7, 8))
    order = [0, 1, 0, 2, 1, 2]
    ia, ib, ic = ([ds[i] for i in order] for ds in (a, b, c))
    for x, y in zip(ia, ib, strict=True):
        assert torch.equal(x["image"], y["image"]) and torch.equal(x["mask"], y["mask"])
    assert any(x["image"].shape != z["image"].shape or not torch.equal(x["image"], z["image"])
               for x, z in zip(ia, ic, strict=True))


def test_pickle_round_trip(case: Case, tmp_path: Path):
    """DataLoader workers started with spawn (macOS, Windows) pickle the dataset."""
    ds = case.make(case.build(tmp_path))
    clone = pickle.loads(pickle.dumps(ds))
    assert len(clone) == len(ds)
    a, b = ds[1], clone[1]
    assert a["path"] == b["path"]
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["mask"], b["mask"])


def test_missing_root(case: Case, tmp_path: Path):
    root = tmp_path / "no_such_dataset"
    with pytest.raises(DatasetError) as err:
        case.make(root)
    assert "no_such_dataset" in str(err.value)
    assert case.layout_word in str(err.value)  # shows the expected layout


def test_build_dataset_raises_the_dataset_error_itself(tmp_path: Path):
    node = {"_target_": "segohem.data.FolderDataset", "root": str(tmp_path / "nowhere"),
            "split": "train", "classes": ["a", "b"]}
    with pytest.raises(DatasetError, match="nowhere"):  # not Hydra's InstantiationException
        build_dataset(node)


def test_root_with_wrong_layout(case: Case, tmp_path: Path):
    root = tmp_path / "empty_root"
    root.mkdir()
    (root / "something_else").mkdir()
    with pytest.raises(DatasetError, match=re.escape(case.layout_word)):
        case.make(root)


def test_invalid_split_name(case: Case, tmp_path: Path):
    with pytest.raises(ValueError, match="bogus"):
        case.make(case.build(tmp_path), split="bogus")


def test_empty_split(case: Case, tmp_path: Path):
    root = case.build(tmp_path)
    split = case.empty(root)
    with pytest.raises(DatasetError, match=re.escape(split)):
        case.make(root, split=split)


@pytest.mark.parametrize("which", ["image", "mask"])
@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_broken_file(case: Case, tmp_path: Path, which: str, damage: str):
    root = case.build(tmp_path)
    image = _expected_images(case, root)[1]
    target = image if which == "image" else case.mask_of(image)
    if damage == "garbage":
        dt.garbage_file(target)
    else:
        dt.truncate_file(target)
    ds = case.make(root)  # files are read lazily
    ds[0]
    with pytest.raises(DatasetError, match=re.escape(target.name)):
        ds[1]
    ds[2]  # the loader still works for the others


def test_size_mismatch(case: Case, tmp_path: Path):
    root = case.build(tmp_path)
    image = _expected_images(case, root)[1]
    mask = dt.resize_file(case.mask_of(image), (20, 36))
    ds = case.make(root)
    with pytest.raises(DatasetError, match=re.escape(mask.name)) as err:
        ds[1]
    msg = _message(err, tmp_path)
    assert re.search(_size(24, 40), msg), msg
    assert re.search(_size(20, 36), msg), msg


def test_transposed_mask_is_a_size_mismatch(case: Case, tmp_path: Path):
    root = case.build(tmp_path)
    image = _expected_images(case, root)[0]
    mask = dt.resize_file(case.mask_of(image), (40, 24))
    with pytest.raises(DatasetError, match=re.escape(mask.name)):
        case.make(root)[0]


def test_unknown_mask_values(case: Case, tmp_path: Path):
    root = case.build(tmp_path)
    image = _expected_images(case, root)[1]
    mask = dt.set_mask_values(case.mask_of(image), case.bad_values, start=3)
    ds = case.make(root)
    with pytest.raises(DatasetError, match=re.escape(mask.name)) as err:
        ds[1]
    msg = _message(err, tmp_path)
    for v in case.bad_values:
        assert re.search(_num(v), msg), msg


def test_missing_mask(case: Case, tmp_path: Path):
    root = case.build(tmp_path)
    image = _expected_images(case, root)[1]
    case.mask_of(image).unlink()
    with pytest.raises(DatasetError, match=re.escape(_key(image))):
        _load_all(case.make(root))  # at construction or when loaded


def test_skip_bad(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    root = case.build(tmp_path)
    images = _expected_images(case, root)
    bad_image = dt.garbage_file(images[0])
    bad_mask = dt.set_mask_values(case.mask_of(images[2]), case.bad_values[:1])
    capsys.readouterr()
    ds = case.make(root, skip_bad=True)
    out = capsys.readouterr().out
    assert "skipped 2" in out
    assert bad_image.name in out and bad_mask.name in out
    good = [images[1], *images[3:]]
    assert [Path(ds[i]["path"]).resolve() for i in range(len(ds))] == [p.resolve() for p in good]
    with pytest.raises(DatasetError, match=re.escape(bad_image.name)):
        case.make(root)[0]  # default skip_bad=False: raises when loaded


def test_skip_bad_with_nothing_bad_prints_no_skips(case: Case, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]):
    root = case.build(tmp_path)
    ds = case.make(root, skip_bad=True)
    assert len(ds) == len(case.images(root))
    assert not re.search(r"skipped [1-9]", capsys.readouterr().out)


# --------------------------------------------------------------------------------------------
# Cityscapes
# --------------------------------------------------------------------------------------------


def test_cityscapes_exported_table_matches_official():
    from segohem.data.datasets.cityscapes import LABEL_ID_TO_TRAIN_ID

    assert {k: LABEL_ID_TO_TRAIN_ID[k] for k in range(34)} == {
        k: CITYSCAPES_EXPECTED[k] for k in range(34)}
    assert LABEL_ID_TO_TRAIN_ID[-1] == 255
    assert dt.CITYSCAPES_LABEL_TO_TRAIN == CITYSCAPES_EXPECTED  # the builder agrees too


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_cityscapes_every_label_id(tmp_path: Path, split: str):
    root = dt.make_cityscapes(tmp_path, splits=("train", "val", "test"))
    ds = CityscapesDataset(root, split)
    assert len(ds) == 4
    assert {Path(ds[i]["path"]).parent.name for i in range(4)} == set(dt.CITYSCAPES_CITIES[split])
    wrong = {}
    for i in range(len(ds)):
        item = ds[i]
        raw = dt.read_raw(dt.cityscapes_mask_path(item["path"]))
        assert set(np.unique(raw).tolist()) == set(CITYSCAPES_EXPECTED)  # all 35 ids occur
        for label_id, train_id in CITYSCAPES_EXPECTED.items():
            got = set(np.unique(item["mask"][raw == label_id]).tolist())
            if got != {train_id}:
                wrong[label_id] = (train_id, sorted(got))
    assert not wrong, f"labelId: (expected trainId, got): {wrong}"


def test_cityscapes_metadata():
    assert len(CityscapesDataset.classes) == 19
    names = [c.replace("_", " ").lower() for c in CityscapesDataset.classes]
    assert names == list(dt.CITYSCAPES_CLASSES)
    assert tuple(tuple(c) for c in CityscapesDataset.palette) == dt.CITYSCAPES_PALETTE


@pytest.mark.parametrize("mask_type", ["auto", "labelTrainIds"])
def test_cityscapes_train_id_masks(tmp_path: Path, mask_type: str):
    root = dt.make_cityscapes(tmp_path, splits=("val",), mask_type="labelTrainIds")
    assert not list(root.rglob("*_labelIds.png"))
    ds = CityscapesDataset(root, "val", mask_type=mask_type)
    assert len(ds) == 4
    for i in range(len(ds)):
        item = ds[i]
        raw = dt.read_raw(dt.cityscapes_mask_path(item["path"], "labelTrainIds"))
        assert set(np.unique(raw).tolist()) <= {*range(19), 255}
        np.testing.assert_array_equal(item["mask"], raw.astype(np.int64))


def test_cityscapes_mask_type_choice_when_both_exist(tmp_path: Path):
    root = dt.make_cityscapes(tmp_path, splits=("val",), mask_type="both")
    first = sorted((root / "leftImg8bit" / "val").glob("*/*.png"), key=str)[0]
    label_ids = dt.read_raw(dt.cityscapes_mask_path(first))
    # Make the trainIds file distinguishable from the mapped labelIds: all "pole" (5).
    train_file = dt.cityscapes_mask_path(first, "labelTrainIds")
    dt.save_png(train_file, np.full_like(label_ids, 5))
    mapped = _lut(CITYSCAPES_EXPECTED)[label_ids]
    for mask_type, want in (("labelIds", mapped), ("auto", mapped),
                            ("labelTrainIds", np.full(label_ids.shape, 5))):
        ds = CityscapesDataset(root, "val", mask_type=mask_type)
        np.testing.assert_array_equal(ds[0]["mask"], want, err_msg=mask_type)


def test_cityscapes_bad_train_ids(tmp_path: Path):
    root = dt.make_cityscapes(tmp_path, splits=("val",), mask_type="labelTrainIds")
    first = sorted((root / "leftImg8bit" / "val").glob("*/*.png"), key=str)[0]
    mask = dt.set_mask_values(dt.cityscapes_mask_path(first, "labelTrainIds"), [19, 100])
    with pytest.raises(DatasetError, match=re.escape(mask.name)) as err:
        CityscapesDataset(root, "val", mask_type="labelTrainIds")[0]
    msg = _message(err, tmp_path)
    assert re.search(_num(19), msg) and re.search(_num(100), msg), msg


def test_cityscapes_missing_requested_mask_type(tmp_path: Path):
    root = dt.make_cityscapes(tmp_path, splits=("val",), mask_type="labelIds")
    with pytest.raises(DatasetError, match="labelTrainIds"):
        _load_all(CityscapesDataset(root, "val", mask_type="labelTrainIds"))


def test_cityscapes_invalid_mask_type(tmp_path: Path):
    root = dt.make_cityscapes(tmp_path, splits=("val",))
    with pytest.raises(ValueError, match="color"):
        CityscapesDataset(root, "val", mask_type="color")


def test_cityscapes_training_size_tree(tmp_path: Path):
    """The tree the end-to-end run uses: 64 x 128 images with several train classes."""
    root = dt.make_cityscapes(tmp_path, splits=("train", "val"), size=(64, 128), per_city=1)
    ds = CityscapesDataset(root, "train")
    assert len(ds) == 2
    item = ds[0]
    assert item["image"].shape == (64, 128, 3) and item["mask"].shape == (64, 128)
    present = set(np.unique(item["mask"]).tolist()) - {255}
    assert {0, 1, 2, 5, 8, 10, 11, 13} <= present  # road .. car
    assert (item["mask"] != 255).mean() > 0.9


# --------------------------------------------------------------------------------------------
# Pascal VOC
# --------------------------------------------------------------------------------------------


def test_voc_metadata():
    def norm(name: str) -> str:
        return re.sub(r"[ _/-]", "", name.lower())

    assert [norm(c) for c in VOCDataset.classes] == list(dt.VOC_CLASSES)
    assert tuple(tuple(c) for c in VOCDataset.palette) == dt.VOC_PALETTE
    assert VOCDataset.palette[15] == (192, 128, 128)  # person


def test_voc_root_forms(tmp_path: Path):
    voc = dt.make_voc(tmp_path / "data")
    assert voc == tmp_path / "data" / "VOCdevkit" / "VOC2012"
    paths = []
    for root in (voc, voc.parent, voc.parent.parent):
        ds = VOCDataset(root, "val")
        paths.append([Path(ds[i]["path"]).resolve() for i in range(len(ds))])
    assert paths[0] == paths[1] == paths[2]
    assert [p.name for p in paths[0]] == sorted(f"{i}.jpg" for i in dt.VOC_VAL_IDS)


def test_voc_splits(tmp_path: Path):
    voc = dt.make_voc(tmp_path)
    names = {s: sorted(Path(it["path"]).stem for it in VOCDataset(voc, s))
             for s in ("train", "val", "trainval")}
    assert names == {"train": sorted(dt.VOC_TRAIN_IDS), "val": sorted(dt.VOC_VAL_IDS),
                     "trainval": sorted({*dt.VOC_TRAIN_IDS, *dt.VOC_VAL_IDS})}


def test_voc_every_index_and_border(tmp_path: Path):
    voc = dt.make_voc(tmp_path)
    ds = VOCDataset(voc, "trainval")
    for i in range(len(ds)):
        item = ds[i]
        raw = dt.read_raw(voc / "SegmentationClass" / f"{Path(item['path']).stem}.png")
        assert set(np.unique(raw).tolist()) == {*range(21), 255}
        for v in (*range(21), 255):
            assert set(np.unique(item["mask"][raw == v]).tolist()) == {v}


def test_voc_augmented(tmp_path: Path):
    voc = dt.make_voc(tmp_path, augmented=True)
    aug_ids = sorted({*dt.VOC_TRAIN_IDS, *dt.VOC_AUG_EXTRA_IDS})
    for augmented in (None, True):
        ds = VOCDataset(voc, "train", augmented=augmented)
        assert [Path(ds[i]["path"]).stem for i in range(len(ds))] == aug_ids
        for i in range(len(ds)):
            item = ds[i]
            assert Path(item["path"]).parent.name == "JPEGImages"
            raw = dt.read_raw(voc / "SegmentationClassAug" / f"{Path(item['path']).stem}.png")
            np.testing.assert_array_equal(item["mask"], raw.astype(np.int64))
    for split, augmented in (("train", False), ("val", None)):
        ds = VOCDataset(voc, split, augmented=augmented)
        ids = dt.VOC_TRAIN_IDS if split == "train" else dt.VOC_VAL_IDS
        assert [Path(ds[i]["path"]).stem for i in range(len(ds))] == sorted(ids)
        for i in range(len(ds)):
            stem = Path(ds[i]["path"]).stem
            raw = dt.read_raw(voc / "SegmentationClass" / f"{stem}.png")
            np.testing.assert_array_equal(ds[i]["mask"], raw.astype(np.int64))


def test_voc_augmented_required_but_missing(tmp_path: Path):
    voc = dt.make_voc(tmp_path, augmented=False)
    with pytest.raises(DatasetError, match=r"SegmentationClassAug|train_aug"):
        VOCDataset(voc, "train", augmented=True)
    assert len(VOCDataset(voc, "train")) == len(dt.VOC_TRAIN_IDS)  # None: falls back


def test_voc_rgb_masks(tmp_path: Path):
    voc = dt.make_voc(tmp_path, mask_mode="RGB")
    colour_to_id = {tuple(int(c) for c in dt.VOC_COLORMAP[v]): v for v in (*range(21), 255)}
    ds = VOCDataset(voc, "val")
    for i in range(len(ds)):
        item = ds[i]
        rgb = dt.read_raw(voc / "SegmentationClass" / f"{Path(item['path']).stem}.png")
        assert rgb.ndim == 3
        want = np.array([[colour_to_id[tuple(px)] for px in row] for row in rgb.tolist()])
        assert set(np.unique(want).tolist()) == {*range(21), 255}
        np.testing.assert_array_equal(item["mask"], want)


def test_voc_rgb_mask_with_unknown_colour(tmp_path: Path):
    voc = dt.make_voc(tmp_path, mask_mode="RGB")
    first = sorted(dt.VOC_VAL_IDS)[0]
    mask = dt.set_mask_values(voc / "SegmentationClass" / f"{first}.png", [(1, 2, 3)])
    with pytest.raises(DatasetError, match=re.escape(mask.name)):
        VOCDataset(voc, "val")[0]


def test_voc_list_names_missing_image(tmp_path: Path):
    voc = dt.make_voc(tmp_path)
    (voc / "ImageSets" / "Segmentation" / "val.txt").write_text("2007_000033\n2099_999999\n")
    with pytest.raises(DatasetError, match="2099_999999"):
        _load_all(VOCDataset(voc, "val"))


# --------------------------------------------------------------------------------------------
# ADE20K
# --------------------------------------------------------------------------------------------


def test_ade20k_metadata():
    assert len(ADE20KDataset.classes) == len(ADE20KDataset.palette) == 150
    assert ADE20KDataset.classes[0].startswith("wall")
    assert ADE20KDataset.classes[1].startswith("building")
    assert ADE20KDataset.classes[2].startswith("sky")


def test_ade20k_every_value(tmp_path: Path):
    ade = dt.make_ade20k(tmp_path)
    ds = ADE20KDataset(ade, "val")
    assert len(ds) == 2
    for i in range(len(ds)):
        item = ds[i]
        raw = dt.read_raw(ade / "annotations" / "validation" / f"{Path(item['path']).stem}.png")
        assert set(np.unique(raw).tolist()) == set(range(151))
        wrong = [v for v in range(151)
                 if set(np.unique(item["mask"][raw == v]).tolist()) != {255 if v == 0 else v - 1}]
        assert not wrong, f"raw values mapped wrongly: {wrong}"


def test_ade20k_root_forms_and_split_aliases(tmp_path: Path):
    ade = dt.make_ade20k(tmp_path, n_train=3, n_val=2)

    def names(root: Path, split: str) -> list[str]:
        ds = ADE20KDataset(root, split)
        return [Path(ds[i]["path"]).name for i in range(len(ds))]

    train = [f"ADE_train_{k:08d}.jpg" for k in (1, 2, 3)]
    val = [f"ADE_val_{k:08d}.jpg" for k in (1, 2)]
    for root in (ade, ade.parent):
        assert names(root, "train") == names(root, "training") == train
        assert names(root, "val") == names(root, "validation") == val


def test_ade20k_grayscale_jpeg_becomes_rgb(tmp_path: Path):
    ade = dt.make_ade20k(tmp_path)
    dt.convert_file(ade / "images" / "training" / "ADE_train_00000002.jpg", "L")
    image = ADE20KDataset(ade, "train")[1]["image"]
    assert image.shape == (24, 40, 3) and image.dtype == np.uint8
    assert np.array_equal(image[..., 0], image[..., 1])
    assert np.array_equal(image[..., 0], image[..., 2])


# --------------------------------------------------------------------------------------------
# CamVid
# --------------------------------------------------------------------------------------------


def test_camvid_metadata():
    assert [c.lower() for c in CamVidDataset.classes] == [c.lower() for c in dt.CAMVID_CLASSES]
    assert len(CamVidDataset.palette) == 11


def test_camvid_splits_and_every_id(tmp_path: Path):
    root = dt.make_camvid(tmp_path)
    for split, names in dt.CAMVID_NAMES.items():
        ds = CamVidDataset(root, split)
        assert [Path(ds[i]["path"]).name for i in range(len(ds))] == sorted(names)
        for i in range(len(ds)):
            item = ds[i]
            raw = dt.read_raw(root / f"{split}annot" / Path(item["path"]).name)
            assert set(np.unique(raw).tolist()) == set(range(12))
            for v in range(12):
                want = 255 if v == 11 else v
                assert set(np.unique(item["mask"][raw == v]).tolist()) == {want}, v


# --------------------------------------------------------------------------------------------
# Generic folder
# --------------------------------------------------------------------------------------------


def _stems(ds) -> list[str]:
    return [Path(ds[i]["path"]).stem for i in range(len(ds))]


def test_folder_without_splits(tmp_path: Path):
    root = dt.make_folder(tmp_path, stems=("b", "a", "c"))
    for split in ("all", None):
        ds = FolderDataset(root, split, classes=FOLDER_CLASSES)
        assert _stems(ds) == ["a", "b", "c"]
    train, val = (FolderDataset(root, s, classes=FOLDER_CLASSES) for s in ("train", "val"))
    assert sorted(_stems(train) + _stems(val)) == ["a", "b", "c"] and len(_stems(val)) == 1
    with pytest.raises(DatasetError) as err:  # only train / val are held out automatically
        FolderDataset(root, "test", classes=FOLDER_CLASSES)
    msg = str(err.value)
    assert "split_file" in msg and "splits" in msg and "'test'" in msg, msg


def test_folder_split_file_option(tmp_path: Path):
    root = dt.make_folder(tmp_path / "d", splits=FOLDER_SPLITS, list_path="lists/{split}.lst")
    assert not (root / "splits").exists()
    ds = FolderDataset(root, "val", classes=FOLDER_CLASSES, split_file="lists/{split}.lst")
    assert _stems(ds) == sorted(FOLDER_SPLITS["val"])
    absolute = root / "lists" / "train.lst"
    ds = FolderDataset(root, "train", classes=FOLDER_CLASSES, split_file=str(absolute))
    assert _stems(ds) == sorted(FOLDER_SPLITS["train"])
    ds = FolderDataset(root, "whatever", classes=FOLDER_CLASSES, split_file=str(absolute))
    assert _stems(ds) == sorted(FOLDER_SPLITS["train"])  # no {split}: the file as given


def test_folder_split_file_as_path_object(tmp_path: Path):
    root = dt.make_folder(tmp_path / "d", splits=FOLDER_SPLITS, list_path="lists/{split}.lst")
    for split_file in (root / "lists" / "{split}.lst", Path("lists/{split}.lst")):
        ds = FolderDataset(root, "val", classes=FOLDER_CLASSES, split_file=split_file)
        assert _stems(ds) == sorted(FOLDER_SPLITS["val"])


def test_split_lists_with_crlf_blank_lines_and_spaces(tmp_path: Path):
    root = dt.make_folder(tmp_path / "f", splits=FOLDER_SPLITS)
    (root / "splits" / "val.txt").write_bytes(b"img_05\r\n\r\n  img_04  \r\n")
    assert _stems(FolderDataset(root, "val", classes=FOLDER_CLASSES)) == ["img_04", "img_05"]
    voc = dt.make_voc(tmp_path / "v")
    (voc / "ImageSets" / "Segmentation" / "val.txt").write_bytes(
        b"2007_000042\r\n2007_000033\r\n\r\n")
    assert _stems(VOCDataset(voc, "val")) == sorted(dt.VOC_VAL_IDS)


def test_folder_upper_case_extensions(tmp_path: Path):
    root = dt.make_folder(tmp_path, stems=("a", "b"), image_ext=(".JPG", ".PNG"))
    ds = FolderDataset(root, "all", classes=FOLDER_CLASSES)
    assert [Path(ds[i]["path"]).name for i in range(2)] == ["a.JPG", "b.PNG"]


def test_folder_split_file_names_missing_image(tmp_path: Path):
    root = dt.make_folder(tmp_path, splits=FOLDER_SPLITS)
    (root / "splits" / "val.txt").write_text("img_04\nghost_stem\n")
    with pytest.raises(DatasetError, match="ghost_stem"):
        _load_all(FolderDataset(root, "val", classes=FOLDER_CLASSES))


def test_folder_subdirectories(tmp_path: Path):
    root = dt.make_folder(tmp_path, splits=FOLDER_SPLITS, layout="subdirs")
    assert (root / "images" / "train").is_dir() and not (root / "splits").exists()
    for split, stems in FOLDER_SPLITS.items():
        ds = FolderDataset(root, split, classes=FOLDER_CLASSES)
        assert _stems(ds) == sorted(stems)
        for i in range(len(ds)):
            path = Path(ds[i]["path"])
            assert path.parent.name == split
            raw = dt.read_raw(root / "masks" / split / f"{path.stem}.png")
            np.testing.assert_array_equal(ds[i]["mask"], raw.astype(np.int64))


def test_folder_image_extensions_and_junk(tmp_path: Path):
    exts = [".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"]
    stems = [f"s{k}" for k in range(len(exts))]
    root = dt.make_folder(tmp_path, stems=stems, image_ext=exts)
    (root / "images" / "notes.txt").write_text("not an image\n")
    ds = FolderDataset(root, "all", classes=FOLDER_CLASSES)
    assert _stems(ds) == stems
    for i, ext in enumerate(exts):
        item = ds[i]
        assert Path(item["path"]).suffix == ext
        want = dt.read_rgb(Path(item["path"]))
        assert item["image"].shape == want.shape
        assert np.abs(item["image"].astype(int) - want.astype(int)).mean() < 2.0
        raw = dt.read_raw(root / "masks" / f"s{i}.png")
        np.testing.assert_array_equal(item["mask"], raw.astype(np.int64))


def test_folder_image_modes_become_rgb(tmp_path: Path):
    root = dt.make_folder(tmp_path, stems=("a", "b", "c"))
    dt.convert_file(root / "images" / "a.png", "L")
    dt.convert_file(root / "images" / "b.png", "RGBA")
    ds = FolderDataset(root, "all", classes=FOLDER_CLASSES)
    for i in range(3):
        image = ds[i]["image"]
        assert image.shape == (24, 40, 3) and image.dtype == np.uint8
    assert np.array_equal(ds[0]["image"][..., 0], ds[0]["image"][..., 2])
    np.testing.assert_array_equal(ds[1]["image"], dt.read_rgb(root / "images" / "b.png"))


@pytest.mark.parametrize("mask_format", ["auto", "color"])
def test_folder_colour_masks(tmp_path: Path, mask_format: str):
    palette = [(0, 0, 0), (250, 10, 10), (10, 250, 10), (10, 10, 250)]
    root = dt.make_folder(tmp_path, mask_format="color", num_classes=4, palette=palette)
    ds = FolderDataset(root, "all", classes=["a", "b", "c", "d"], palette=palette,
                       mask_format=mask_format)
    assert ds.palette == tuple(tuple(c) for c in palette)
    colour_to_id = {c: k for k, c in enumerate(palette)}
    for i in range(len(ds)):
        item = ds[i]
        rgb = dt.read_raw(root / "masks" / f"{Path(item['path']).stem}.png")
        assert rgb.ndim == 3
        want = np.array([[colour_to_id[tuple(px)] for px in row] for row in rgb.tolist()])
        assert set(np.unique(want).tolist()) == {0, 1, 2, 3}
        np.testing.assert_array_equal(item["mask"], want)


def test_folder_unknown_colour(tmp_path: Path):
    palette = [(0, 0, 0), (250, 10, 10), (10, 250, 10)]
    root = dt.make_folder(tmp_path, mask_format="color", palette=palette)
    mask = dt.set_mask_values(root / "masks" / "b.png", [(9, 9, 9)])
    ds = FolderDataset(root, "all", classes=FOLDER_CLASSES, palette=palette)
    ds[0]
    with pytest.raises(DatasetError, match=re.escape(mask.name)):
        ds[1]


def test_folder_ids_masks_explicit_format(tmp_path: Path):
    root = dt.make_folder(tmp_path)
    ds = FolderDataset(root, "all", classes=FOLDER_CLASSES, mask_format="ids")
    for i in range(len(ds)):
        raw = dt.read_raw(root / "masks" / f"{Path(ds[i]['path']).stem}.png")
        assert set(np.unique(raw).tolist()) == {0, 1, 2, 255}
        np.testing.assert_array_equal(ds[i]["mask"], raw.astype(np.int64))


def test_folder_value_map(tmp_path: Path):
    root = dt.make_folder(tmp_path, raw_values=(0, 100, 200, 255))
    value_map = {0: 0, 100: 1, 200: 255, 255: 2}
    ds = FolderDataset(root, "all", classes=FOLDER_CLASSES, value_map=value_map)
    for i in range(len(ds)):
        raw = dt.read_raw(root / "masks" / f"{Path(ds[i]['path']).stem}.png")
        np.testing.assert_array_equal(ds[i]["mask"], _lut(value_map)[raw])
    mask = dt.set_mask_values(root / "masks" / "c.png", [77])
    with pytest.raises(DatasetError, match=re.escape(mask.name)) as err:
        ds[2]
    assert re.search(_num(77), _message(err, tmp_path)), _message(err, tmp_path)


def test_folder_raw_values_need_value_map(tmp_path: Path):
    root = dt.make_folder(tmp_path, raw_values=(0, 100, 255))
    ds = FolderDataset(root, "all", classes=FOLDER_CLASSES)
    with pytest.raises(DatasetError, match=re.escape("a.png")) as err:
        ds[0]
    assert re.search(_num(100), _message(err, tmp_path)), _message(err, tmp_path)


def test_folder_image_without_mask(tmp_path: Path):
    root = dt.make_folder(tmp_path, stems=("a", "b", "lonely"))
    (root / "masks" / "lonely.png").unlink()
    with pytest.raises(DatasetError, match="lonely"):
        FolderDataset(root, "all", classes=FOLDER_CLASSES)


def test_folder_duplicate_stems(tmp_path: Path):
    root = dt.make_folder(tmp_path, stems=("a", "dupe"))
    dt.save_image(root / "images" / "dupe.jpg", dt.read_rgb(root / "images" / "dupe.png"))
    with pytest.raises(DatasetError, match="dupe"):
        FolderDataset(root, "all", classes=FOLDER_CLASSES)


def test_folder_custom_directory_names(tmp_path: Path):
    root = dt.make_folder(tmp_path, images_dir="rgb", masks_dir="labels")
    ds = FolderDataset(root, "all", classes=FOLDER_CLASSES, images_dir="rgb", masks_dir="labels")
    assert _stems(ds) == ["a", "b", "c", "d"]
    with pytest.raises(DatasetError, match="images"):
        FolderDataset(root, "all", classes=FOLDER_CLASSES)


def test_folder_palette_defaults_to_one_colour_per_class(tmp_path: Path):
    ds = FolderDataset(dt.make_folder(tmp_path), "all", classes=FOLDER_CLASSES)
    assert ds.classes == FOLDER_CLASSES
    assert len(ds.palette) == 3 and len(set(ds.palette)) == 3


# --------------------------------------------------------------------------------------------
# The builders themselves
# --------------------------------------------------------------------------------------------


def test_builders_write_the_real_layouts(tmp_path: Path):
    cs = dt.make_cityscapes(tmp_path / "cs", splits=("train",), per_city=1)
    names = sorted(p.name for p in (cs / "gtFine" / "train" / "aachen").iterdir())
    assert names == ["aachen_000000_000019_gtFine_color.png",
                     "aachen_000000_000019_gtFine_instanceIds.png",
                     "aachen_000000_000019_gtFine_labelIds.png",
                     "aachen_000000_000019_gtFine_polygons.json"]
    assert (cs / "leftImg8bit" / "train" / "aachen" / "aachen_000000_000019_leftImg8bit.png"
            ).is_file()
    voc = dt.make_voc(tmp_path / "v", augmented=True)
    with Image.open(voc / "SegmentationClass" / "2007_000032.png") as im:
        assert im.mode == "P"
        assert tuple(im.getpalette()[15 * 3: 16 * 3]) == (192, 128, 128)
    with Image.open(voc / "SegmentationClassAug" / "2007_000032.png") as im:
        assert im.mode == "L"
    assert (voc / "ImageSets" / "Segmentation" / "train_aug.txt").is_file()
    ade = dt.make_ade20k(tmp_path / "a")
    assert (ade / "annotations" / "validation" / "ADE_val_00000002.png").is_file()
    cam = dt.make_camvid(tmp_path / "c")
    assert (cam / "testannot" / "Seq05VD_f02370.png").is_file()


def test_voc_two_column_train_aug_list(tmp_path: Path):
    """The widely circulated train_aug.txt lists file paths in two columns."""
    voc = dt.make_voc(tmp_path, augmented=True)
    lst = voc / "ImageSets" / "Segmentation" / "train_aug.txt"
    ids = [line.strip() for line in lst.read_text().splitlines() if line.strip()]
    lst.write_text("".join(f"/JPEGImages/{i}.jpg /SegmentationClassAug/{i}.png\n" for i in ids))
    ds = VOCDataset(voc, "train", augmented=True)
    assert sorted(Path(ds[i]["path"]).stem for i in range(len(ds))) == sorted(ids)


def test_folder_one_bit_masks_with_value_map(tmp_path: Path):
    root = dt.make_folder(tmp_path, stems=("a",), num_classes=2, raw_values=(0, 1))
    mask = np.zeros((24, 40), bool)
    mask[5:10, 3:30] = True
    Image.fromarray(mask).save(root / "masks" / "a.png")  # mode "1": reads as 0 / 255
    assert Image.open(root / "masks" / "a.png").mode == "1"
    ds = FolderDataset(root, "all", classes=["bg", "fg"], value_map={0: 0, 255: 1})
    np.testing.assert_array_equal(ds[0]["mask"], mask.astype(np.int64))
    # Without a value_map, 255 is the ignore value (documented: 0/255 masks need the map).
    plain = FolderDataset(root, "all", classes=["bg", "fg"])[0]["mask"]
    np.testing.assert_array_equal(plain, np.where(mask, 255, 0))
