"""segohem.config.compose: the one way tools, notebooks and tests compose the packaged
configs (Hydra's compose API)."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from segohem.config.compose import CONFIG_MODULE, compose_config


def test_overrides_apply_and_output_dir_stays_hydras_unless_given(tmp_path):
    cfg = compose_config("train", ["loss=topk", "trainer.max_epochs=3"])
    assert cfg.loss._target_.endswith("TopKCELoss")
    assert cfg.trainer.max_epochs == 3
    assert OmegaConf.to_container(cfg.paths)["output_dir"] == "${hydra:runtime.output_dir}"
    assert "hydra" not in cfg

    cfg = compose_config("train", [], tmp_path / "run")
    assert cfg.paths.output_dir == str(tmp_path / "run")
    assert cfg.trainer.default_root_dir == str(tmp_path / "run")  # interpolations follow


@pytest.mark.parametrize("name", ["train", "eval", "predict", "export"])
def test_every_app_config_composes(name):
    assert compose_config(name).task_name == name


def test_hydra_node_on_request():
    cfg = compose_config("train", ["hydra/launcher=slurm_ddp"], hydra=True)
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    assert cfg.hydra.runtime.choices["loss"] == "ohem_dice"  # the default


def test_output_dir_for_a_config_without_paths_says_so(tmp_path):
    with pytest.raises(ValueError, match=r"compose_config\('predict'.*no `paths` group"):
        compose_config("predict", [], tmp_path)


def test_an_initialised_hydra_is_set_aside_and_put_back():
    GlobalHydra.instance().clear()
    with initialize_config_module(version_base="1.3", config_module=CONFIG_MODULE,
                                  job_name="outer"):
        inner = compose_config("train", ["seed=7"])
        assert GlobalHydra.instance().is_initialized()
        outer = compose("train", overrides=["seed=8"])  # the outer state still works
    assert (inner.seed, outer.seed) == (7, 8)
    assert not GlobalHydra.instance().is_initialized()


def test_a_left_over_hydra_state_does_not_block_compose():
    GlobalHydra.instance().clear()
    initialize_config_module(version_base="1.3", config_module=CONFIG_MODULE)  # never exited
    try:
        assert compose_config("train", ["seed=3"]).seed == 3
        assert GlobalHydra.instance().is_initialized()
    finally:
        GlobalHydra.instance().clear()
