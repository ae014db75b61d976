"""Compose the training config in tests (Hydra compose API, tiny settings)."""

from pathlib import Path

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict

CONF = Path(__file__).resolve().parents[1] / "conf"
TINY = [
    "dataset.image_size=[64,64]",
    "dataset.train_set.num_samples=64",
    "dataset.val_set.num_samples=16",
    "dataset.num_workers=0",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]


def compose_train(overrides: list[str], output_dir: Path | None = None) -> DictConfig:
    """The ``train`` config with ``overrides``; ``paths.output_dir`` set to ``output_dir``
    (``${hydra:runtime.output_dir}`` does not resolve under the compose API)."""
    GlobalHydra.instance().clear()
    with initialize_config_module(version_base="1.3", config_module="segohem.conf"):
        cfg = compose("train", overrides=overrides)
    if output_dir is not None:
        with open_dict(cfg):
            cfg.paths.output_dir = str(output_dir)
    return cfg


def group_options() -> dict[str, list[str]]:
    """Every config group and its options, read from conf/."""
    return {group.name: sorted(p.stem for p in group.glob("*.yaml"))
            for group in sorted(CONF.iterdir()) if group.is_dir() and group.name != "hydra"}
