"""The Hydra config tree (conf/, shipped as segohem.conf): every option composes and
instantiates, also from an installed wheel; bad input fails early; the train command line."""

import subprocess
import sys

import pytest
import torch
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from omegaconf.errors import ConfigAttributeError, ConfigKeyError

from segohem.data.geometry import resolve_auto_geometry
from segohem.losses import CrossEntropyLoss, MinorityRectificationLoss, OhemCELoss
from segohem.training import ConfigError, check_config, train
from tests._support.configs import (
    REPO,
    compose_config,
    compose_train,
    group_options,
)

OPTIONS = [(group, option) for group, options in group_options().items() for option in options]


def test_every_group_is_present():
    assert set(group_options()) >= {"dataset", "model", "loss", "optimizer", "scheduler",
                                    "trainer", "logger", "callbacks", "experiment", "debug"}


@pytest.mark.parametrize("option", group_options(set())["transforms"])
def test_every_transform_pipeline_is_selectable_and_runs(option, folder_dataset, tmp_path):
    """conf/transforms/: picked by the dataset configs, replaceable from the command line."""
    import numpy as np

    overrides = [*folder_dataset, f"transforms@dataset.train_transform={option}"]
    cfg = compose_train(overrides, tmp_path)
    resolve_auto_geometry(cfg.dataset)
    pipeline = instantiate(cfg.dataset.train_transform)
    out = pipeline(image=np.zeros((70, 90, 3), np.uint8), mask=np.zeros((70, 90), np.uint8))
    assert out["image"].shape[0] == 3 and out["image"].dtype == torch.float32
    assert out["mask"].shape == out["image"].shape[1:]
    assert len(pipeline.transforms) == len(cfg.dataset.train_transform.transforms)


def test_eval_and_predict_share_the_inference_settings():
    for name, extra in (("eval", ["ckpt_path=x.ckpt"]),
                        ("predict", ["ckpt_path=x.ckpt", "input=a", "output=b"])):
        cfg = compose_config(name, [*extra, "eval.mode=slide", "eval.crop_size=[32,32]"])
        assert cfg.eval.mode == "slide" and list(cfg.eval.crop_size) == [32, 32]
        assert cfg.eval.window_batch == 4  # the rest from conf/inference/default.yaml


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_composes_and_instantiates(group, option, dataset_tree, tiny_config, tmp_path):
    if group == "dataset" and option != "synthetic":  # a tiny tree in the real layout
        cfg = compose_train(dataset_tree(option), tmp_path)
    else:
        cfg = tiny_config(f"{group}={option}")
    check_config(cfg)
    node = cfg.get(group) if group not in ("experiment", "debug") else None
    if group == "dataset":
        resolve_auto_geometry(cfg.dataset)  # as segohem-train does (folder: scale_range auto)
        item = instantiate(cfg.dataset.train_set)[0]
        assert item["image"].shape[0] == 3 and item["mask"].dtype == torch.int64
        if option != "synthetic":
            assert item["image"].shape[1:] == (64, 64)  # dataset.crop_size
        val = instantiate(cfg.dataset.val_set)[0]
        assert val["image"].shape[1:] == val["mask"].shape  # whole image, no padding
    elif group == "model":
        model = instantiate(cfg.model).eval()  # eval: ASPP pooling on one image
        with torch.no_grad():
            out = model(torch.randn(1, 3, 64, 64))
        assert out.shape[1] == cfg.dataset.num_classes
    elif group == "loss":
        loss = instantiate(cfg.loss)
        value = loss(torch.randn(2, 6, 8, 8), torch.randint(0, 6, (2, 8, 8)))
        assert torch.isfinite(value)
    elif group == "optimizer":
        instantiate(cfg.optimizer)([torch.nn.Parameter(torch.zeros(1))])
    elif group == "scheduler":
        if node is not None:
            optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
            instantiate(cfg.scheduler)(optimizer, total_steps=10)
    elif group == "trainer" and option == "cpu":
        instantiate(cfg.trainer)
    elif group in ("logger", "callbacks"):
        for sub in (node or {}).values():
            instantiate(sub)


@pytest.mark.parametrize("overrides", [
    ["loss=ohem", "loss.thresh=0.6", "loss.n_min=50000"],
    ["loss=topk", "loss.top_k=0.3"],
    ["loss=ce"],
    ["loss=ohem_dice"],
    ["model=deeplabv3plus", "model.encoder_name=resnet50"],
    ["optimizer=sgd", "optimizer.lr=0.01", "scheduler=poly"],
    ["trainer.max_epochs=5"],
    ["seed=3"],
])
def test_issue_examples_compose(overrides, tmp_path):
    cfg = compose_train(overrides, tmp_path)
    check_config(cfg)
    instantiate(cfg.loss)
    for override in overrides:
        key, value = override.split("=")
        if "." in key:
            assert str(cfg[key.split(".")[0]][key.split(".", 1)[1]]) == value


def test_issue_example_deeplab_resnet50_builds():
    cfg = compose_train(["model=deeplabv3plus", "model.encoder_name=resnet50"])
    model = instantiate(cfg.model).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 6, 64, 64)


@pytest.mark.parametrize(("option", "base"), [("crl", CrossEntropyLoss),
                                              ("ohem_crl", OhemCELoss)])
def test_loss_configs_build_the_rectification_loss(option, base):
    cfg = compose_train([f"loss={option}"])
    loss = instantiate(cfg.loss)
    assert isinstance(loss, MinorityRectificationLoss) and isinstance(loss.base, base)
    assert (loss.k, loss.rho, loss.alpha) == (32, 0.5, 0.5)


def test_unknown_option_and_typo_fail_at_composition():
    with pytest.raises(ConfigCompositionException, match="loss"):
        compose_train(["loss=ohm"])
    with pytest.raises((ConfigCompositionException, ConfigKeyError, ConfigAttributeError),
                       match="thres"):
        compose_train(["loss.thres=0.6"])


def test_bad_thresh_fails_before_training(tiny_config, tmp_path):
    cfg = tiny_config("loss.thresh=1.5")
    with pytest.raises(Exception, match=r"thresh must be a number in \(0, 1\], got 1\.5"):
        train(cfg)
    assert not (tmp_path / "checkpoints").exists()


def test_num_classes_mismatch_fails_before_training(tiny_config, tmp_path):
    cfg = tiny_config("model.num_classes=5")
    with pytest.raises(ConfigError, match=r"model\.num_classes=5 disagrees with "
                                          r"dataset\.num_classes=6"):
        train(cfg)
    assert not (tmp_path / "checkpoints").exists()


def test_missing_checkpoint_fails_before_training(tiny_config):
    cfg = tiny_config("ckpt_path=last")
    with pytest.raises(ConfigError, match=r"no checkpoint file at .*last\.ckpt"):
        train(cfg)


def test_entry_point_imports_no_heavy_modules():
    """`--help` and `--cfg job` stay fast because the entry module imports Hydra only."""
    code = ("import sys, segohem.train; heavy = [m for m in ('torch', 'lightning', "
            "'segmentation_models_pytorch', 'albumentations') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_help_and_cfg_job_and_bad_override(tmp_path):
    cli = [sys.executable, "-m", "segohem.train"]
    out = subprocess.run([*cli, "--help"], capture_output=True, text=True, check=True).stdout
    assert "loss: ce, crl, ohem, ohem_crl, ohem_dice, topk" in out
    out = subprocess.run([*cli, "--cfg", "job", "loss=topk", "loss.top_k=0.3"],
                         capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    assert "top_k: 0.3" in out
    bad = subprocess.run([*cli, "loss.thres=0.6"], capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode != 0 and "thres" in bad.stderr
    assert not (tmp_path / "outputs").exists() or not any((tmp_path / "outputs").rglob("*.ckpt"))


@pytest.mark.slow
def test_configs_work_from_an_installed_wheel(tmp_path):
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", str(REPO), "-w", str(wheels)], check=True,
                   capture_output=True)
    wheel = next(wheels.glob("segohem-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(site), str(wheel)], check=True, capture_output=True)
    code = (
        "import segohem, pathlib, sys\n"
        f"assert pathlib.Path(segohem.__file__).is_relative_to({str(site)!r}), segohem.__file__\n"
        "from hydra import compose, initialize_config_module\n"
        "with initialize_config_module(version_base='1.3', config_module='segohem.conf'):\n"
        "    cfg = compose('train', overrides=['loss=topk', 'model=deeplabv3plus'])\n"
        "assert cfg.loss.top_k == 0.2 and cfg.model.arch == 'DeepLabV3Plus'\n"
        # The sweeper plugin ships in the wheel and Hydra's own plugin scan finds it.
        "from hydra.core.plugins import Plugins\n"
        "from hydra.plugins.sweeper import Sweeper\n"
        "found = [c.__module__ for c in Plugins.instance().discover(Sweeper)]\n"
        "assert 'hydra_plugins.segohem_sweeper.optuna_sweeper' in found, found\n"
    )
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=tmp_path)
    out = subprocess.run([sys.executable, "-m", "segohem.train", "--cfg", "job"], check=True,
                         env=env, cwd=tmp_path, capture_output=True, text=True).stdout
    assert "OhemDiceLoss" in out
