"""Compose the training config in tests (Hydra compose API, tiny settings)."""

from pathlib import Path

from omegaconf import DictConfig

from segohem.config.compose import compose_config  # the tests import it from here

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "conf"
TINY = [
    "dataset.image_size=[64,64]",
    "dataset.train_set.num_samples=64",
    "dataset.val_set.num_samples=16",
    "dataset.num_workers=0",
    "trainer.max_epochs=1",
    "min_train_steps=null",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]


def compose_train(overrides: list[str], output_dir: Path | None = None) -> DictConfig:
    """The ``train`` config with ``overrides``; ``paths.output_dir`` set to ``output_dir``
    (``${hydra:runtime.output_dir}`` does not resolve under the compose API)."""
    return compose_config("train", overrides, output_dir)


NESTED_GROUPS = {"hydra", "inference", "transforms"}
"""Groups that ``train.yaml``'s command line does not select as ``group=option``: Hydra's
own, the inference settings of eval / predict (``eval``), and the augmentation pipelines
that dataset configs pick (``transforms@dataset.train_transform=<option>``)."""


def group_options(exclude: set[str] = NESTED_GROUPS) -> dict[str, list[str]]:
    """Every config group and its options, read from conf/. A file whose name starts with
    ``_`` is a base that options extend (e.g. conf/dataset/_base.yaml), not an option."""
    return {group.name: sorted(p.stem for p in group.glob("*.yaml") if not p.stem.startswith("_"))
            for group in sorted(CONF.iterdir()) if group.is_dir() and group.name not in exclude}


def real_dataset_overrides(option: str, data_dir: Path) -> list[str]:
    """Build a tiny tree of dataset ``option`` (its real layout) in ``data_dir`` and return
    the overrides that train on it with tiny settings."""
    from tests._support import data_trees

    size = (64, 96)
    root = {
        "cityscapes": lambda: data_trees.make_cityscapes(data_dir, size=size),
        "voc": lambda: data_trees.make_voc(data_dir / "VOCdevkit" / "VOC2012", size=size),
        "ade20k": lambda: data_trees.make_ade20k(data_dir, size=size),
        "camvid": lambda: data_trees.make_camvid(data_dir, size=size),
        "folder": lambda: data_trees.make_folder(
            data_dir, stems=("a", "b", "c", "d"), splits={"train": ["a", "b", "c"],
                                                          "val": ["d"]}, size=size),
    }[option]()
    extra = ["dataset.num_classes=3", "dataset.class_names=[a,b,c]"] if option == "folder" else []
    return [f"dataset={option}", f"dataset.root={root}", *extra, "dataset.crop_size=[64,64]",
            "dataset.batch_size=2", "dataset.num_workers=0", "trainer.max_epochs=1",
            "min_train_steps=null",
            "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]
