"""The Hydra config tree (conf/, shipped as segohem.conf): every option composes and
instantiates, also from an installed wheel; bad input fails early; the train command line."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError

from segohem.data import SyntheticDataset
from segohem.data.geometry import resolve_auto_geometry
from segohem.infer.core import InferenceConfig, predict_scores
from segohem.infer.predict.run import inference_config
from segohem.losses import MinorityRectificationLoss, OhemCELoss, TopKCELoss
from segohem.train.run import ConfigError, check_config, train
from tests._support.configs import (
    CONF,
    NESTED_GROUPS,
    REPO,
    compose_config,
    compose_train,
    group_options,
)

OPTIONS = [(group, option) for group, options in group_options().items() for option in options]


def test_every_group_is_selected_by_train_yaml():
    """Each group folder of conf/ (but the nested ones) is in train.yaml's defaults list, so
    that ``group=option`` selects it on the command line, and each group the list names has
    its folder of options (the parametrizations below are not empty)."""
    defaults = OmegaConf.to_container(OmegaConf.load(CONF / "train.yaml").defaults)
    selected = {group for entry in defaults if isinstance(entry, dict) for group in entry}
    assert set(group_options()) == selected - NESTED_GROUPS
    assert all(group_options().values()) and OPTIONS


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
    """conf/inference/ is the ``eval`` node of both commands: the same overrides give both the
    same settings, which build an InferenceConfig that slides windows (a pointwise model:
    overlapping windows give the whole-image scores)."""
    overrides = ["eval.mode=slide", "eval.crop_size=[32,32]"]
    nodes = [compose_config(name, [*extra, *overrides]).eval
             for name, extra in (("eval", ["ckpt_path=x.ckpt"]),
                                 ("predict", ["ckpt_path=x.ckpt", "input=a", "output=b"]))]
    assert nodes[0] == nodes[1]
    inference = inference_config(nodes[1])  # as segohem-predict builds it
    assert inference.mode == "slide" and tuple(inference.crop_size) == (32, 32)
    torch.manual_seed(0)
    model, images = torch.nn.Conv2d(3, 4, 1), torch.randn(1, 3, 64, 96)
    torch.testing.assert_close(predict_scores(model, images, inference),
                               predict_scores(model, images, InferenceConfig("whole")))


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
    elif group == "trainer" and option in ("auto", "cpu"):
        instantiate(cfg.trainer)
    elif group in ("logger", "callbacks"):
        for sub in (node or {}).values():
            instantiate(sub)


ISSUE_EXAMPLES = {
    "ohem": ["loss=ohem", "loss.thresh=0.6", "loss.n_min=50000"],
    "topk": ["loss=topk", "loss.top_k=0.3"],
    "ce": ["loss=ce"],
    "ohem_dice": ["loss=ohem_dice"],
    "deeplab_resnet50": ["model=deeplabv3plus", "model.encoder_name=resnet50"],
    "sgd_poly": ["optimizer=sgd", "optimizer.lr=0.01", "scheduler=poly"],
    "epochs": ["trainer.max_epochs=5"],
    "seed": ["seed=3"],
}


def augmented(cfg, n: int = 6) -> list[np.ndarray]:
    """``n`` passes of one synthetic image through a fresh instance of the train pipeline."""
    pipeline = instantiate(cfg.dataset.train_transform)
    image = SyntheticDataset(split="train", image_size=(32, 32))[0]["image"]
    return [pipeline(image=image)["image"].numpy() for _ in range(n)]


@pytest.mark.parametrize("name", list(ISSUE_EXAMPLES))
def test_issue_examples_build_what_they_say(name, tmp_path):
    """The issue's command-line examples: each composes, passes check_config, and the objects
    the run builds from it carry the overridden values."""
    overrides = ISSUE_EXAMPLES[name]
    cfg = compose_train(overrides, tmp_path)
    check_config(cfg)
    loss = instantiate(cfg.loss)
    logits, labels = torch.randn(2, 6, 8, 8, requires_grad=True), torch.randint(0, 6, (2, 8, 8))
    loss(logits, labels).backward()
    assert torch.isfinite(logits.grad).all()
    param = torch.nn.Parameter(torch.zeros(1))
    if name == "ohem":
        assert isinstance(loss, OhemCELoss) and (loss.thresh, loss.n_min) == (0.6, 50000)
    elif name == "topk":
        assert isinstance(loss, TopKCELoss) and loss.top_k == 0.3
    elif name == "deeplab_resnet50":  # the network SMP builds for these arguments
        import segmentation_models_pytorch as smp

        built = instantiate(cfg.model).state_dict()
        reference = smp.create_model("DeepLabV3Plus", "resnet50", encoder_weights=None,
                                     classes=cfg.dataset.num_classes).state_dict()
        assert {k: v.shape for k, v in built.items()} == {
            k: v.shape for k, v in reference.items()}
    elif name == "sgd_poly":
        optimizer = instantiate(cfg.optimizer)([param])
        assert isinstance(optimizer, torch.optim.SGD)
        assert optimizer.param_groups[0]["lr"] == 0.01
        schedule = instantiate(cfg.scheduler)(optimizer, total_steps=120)
        rates = []
        for _ in range(120):
            rates.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            schedule.step()
        assert max(rates) == pytest.approx(0.01) and rates[-1] < rates[len(rates) // 2]
    elif name == "epochs":
        assert instantiate(cfg.trainer, logger=False).max_epochs == 5
    elif name == "seed":  # the augmentation pipeline is seeded by it: reproducible, seed-bound
        first, again = augmented(cfg), augmented(compose_train(overrides, tmp_path))
        other = augmented(compose_train(["seed=4"], tmp_path))
        assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
        assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_issue_example_deeplab_resnet50_builds():
    cfg = compose_train(["model=deeplabv3plus", "model.encoder_name=resnet50"])
    model = instantiate(cfg.model).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 6, 64, 64)


@pytest.mark.parametrize(("option", "standalone"), [("crl", "ce"), ("ohem_crl", "ohem")])
def test_rectification_configs_wrap_the_standalone_loss(option, standalone):
    """loss=crl / ohem_crl: the rectification around loss=ce / loss=ohem's config (their
    ``defaults`` place conf/loss/ce.yaml / ohem.yaml at ``loss.base``: no copied keys, see
    test_shared_keys_live_once), whose term it adds on a batch with a rare class."""
    cfg = compose_train([f"loss={option}"])
    standalone_cfg = compose_train([f"loss={standalone}"])
    assert cfg.loss.base == standalone_cfg.loss  # the same node, every key and value
    loss = instantiate(cfg.loss)
    alone = instantiate(standalone_cfg.loss)
    assert isinstance(loss, MinorityRectificationLoss) and type(loss.base) is type(alone)
    assert loss.base.ignore_index == loss.ignore_index == cfg.dataset.ignore_index
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 6, 16, 16, generator=gen)
    labels = torch.randint(0, 5, (2, 16, 16), generator=gen)
    labels[:, :3, :3] = 5  # 18 of 512 pixels: a minority class
    assert torch.equal(loss.base(logits, labels), alone(logits, labels))
    value = loss.train()(logits, labels)
    stats = loss.last_rectification
    assert stats.minority_classes >= 1 and stats.alpha > 0 and stats.rectification > 0
    assert not torch.equal(value, alone(logits, labels))


def own_keys(node: object, prefix: str = "") -> dict[str, object]:
    """``{dotted key: raw value}`` of every leaf of a loaded YAML file (lists are leaves)."""
    if not isinstance(node, dict):
        return {prefix[:-1]: node}
    return {k: v for key, value in node.items() if key != "defaults"
            for k, v in own_keys(value, f"{prefix}{key}.").items()}


def bases(group: str, name: str, package: str = "") -> list[tuple[str, str, str]]:
    """The same-group files that conf/<group>/<name>.yaml extends through its defaults list
    (``- ce``, ``- ohem@base``), directly or not: ``(file, package, extending file)``."""
    raw = OmegaConf.to_container(OmegaConf.load(CONF / group / f"{name}.yaml"))
    found = []
    for entry in raw.get("defaults", []):
        if isinstance(entry, str) and entry != "_self_":
            base, _, at = entry.partition("@")
            found += [(base, f"{package}{at}." if at else package, name),
                      *bases(group, base, f"{package}{at}." if at else package)]
    return found


EXTENDS = {  # option: the base files it must extend (directly or through another base)
    **{f"dataset/{o}": {"_base"} for o in group_options()["dataset"]},
    **{f"dataset/{o}": {"_base", "_on_disk"} for o in group_options()["dataset"]
       if o != "synthetic"},
    "loss/ohem": {"ce"}, "loss/topk": {"ce"}, "loss/ohem_dice": {"ohem", "ce"},
    "loss/crl": {"ce"}, "loss/ohem_crl": {"crl", "ohem", "ce"},
    **{f"debug/{o}": {"default"} for o in group_options()["debug"] if o != "default"},
    "trainer/ddp": {"gpu", "default"},
}


@pytest.mark.parametrize("path", sorted(str(p.relative_to(CONF)) for p in CONF.glob("*/*.yaml")))
def test_shared_keys_live_once(path):
    """Keys that several configs share live in one base file, which the others extend
    (``defaults: [_base, _self_]``, ``[ohem, _self_]``, ``[ce@base, _self_]``): no file
    restates a key of a file it extends with the same value (only real changes), and the
    options listed in EXTENDS do extend their bases (a new dataset config without _base
    would copy its keys)."""
    group, name = path.removesuffix(".yaml").split("/")
    mine = own_keys(OmegaConf.to_container(OmegaConf.load(CONF / path)))
    for base, package, via in bases(group, name):
        inherited = own_keys(OmegaConf.to_container(OmegaConf.load(CONF / group / f"{base}.yaml")),
                             package)
        if via == name:  # the file's own keys against each file it extends
            restated = {k: v for k, v in mine.items() if k in inherited and inherited[k] == v}
            assert not restated, (f"conf/{path} restates {restated} of conf/{group}/{base}"
                                  f".yaml, which it extends: drop these lines")
    assert EXTENDS.get(f"{group}/{name}", set()) <= {base for base, _, _ in bases(group, name)}


ON_DISK = {  # option: crop_size, scale_range, val_batch_size, num_workers
    "ade20k": ([512, 512], [0.5, 2.0], 1, 4),
    "camvid": ([352, 480], [0.5, 2.0], 8, 4),
    "cityscapes": ([512, 1024], [0.5, 2.0], 1, 8),
    "folder": ("auto", "auto", 1, 4),
    "voc": ([512, 512], [0.5, 2.0], 1, 4),
}


@pytest.mark.parametrize("option", group_options()["dataset"])
def test_dataset_options_compose_to_their_values(option):
    """What each dataset config gets from _base.yaml / _on_disk.yaml (the values each file
    stated before they were shared), and val_set: train_set's arguments with the val split
    and transform."""
    cfg = compose_train([f"dataset={option}"]).dataset
    data = OmegaConf.to_container(cfg)
    assert (data["ignore_index"], data["labels_validated"], data["batch_size"],
            data["pin_memory"]) == (255, True, 8, None)
    pipelines = {"train_transform": "scale_crop_flip_jitter", "val_transform": "whole_image"}
    if option == "synthetic":
        assert (data["root"], data["num_workers"]) == (None, 2)
        assert not {"skip_bad", "persistent_workers", "val_batch_size", "crop_size"} & set(data)
        pipelines["train_transform"] = "flip_jitter"
    else:
        assert OmegaConf.is_missing(cfg, "root") and data["skip_bad"] is False
        assert data["persistent_workers"] is True
        assert (data["crop_size"], data["scale_range"], data["val_batch_size"],
                data["num_workers"]) == ON_DISK[option]
    for key, pipeline in pipelines.items():
        chosen = compose_train([f"dataset={option}", f"transforms@dataset.{key}={pipeline}"])
        assert cfg[key] == chosen.dataset[key], (key, pipeline)
    train_set, val_set = data["train_set"], data["val_set"]
    assert train_set["_target_"].startswith("segohem.data.")
    assert ("skip_bad" in train_set) == (option != "synthetic")
    changed = {"split": "${dataset.val_split}" if option == "folder" else "val",
               "transform": "${dataset.val_transform}"}
    if option == "synthetic":
        changed["num_samples"] = 64
    assert val_set == {**train_set, **changed}
    assert train_set["transform"] == "${dataset.train_transform}"


def test_loss_options_compose_to_their_values():
    """Each loss config: the keys it gets from the file it extends (the values each stated
    before), plus its own. The one change: crl's and ohem_crl's base now have ``weight: null``
    as loss=ce / loss=ohem do (the copies had dropped it; null is the classes' default)."""
    cfg = {o: OmegaConf.to_container(compose_train([f"loss={o}"]).loss)
           for o in group_options()["loss"]}
    ce = {"ignore_index": "${dataset.ignore_index}", "weight": None,
          "check_labels": "${segohem.check_labels:${oc.select:dataset.labels_validated,false}}"}
    mining = {**ce, "per_image": False, "sync_across_ranks": False}
    ohem = {**mining, "_target_": "segohem.losses.OhemCELoss", "thresh": 0.7, "n_min": None}
    rectification = {"_target_": "segohem.losses.MinorityRectificationLoss", "k": 32,
                     "rho": 0.5, "margin": 1.0, "score": "log_prob", "alpha": 0.5, "eta": 0.01,
                     "imbalance_measure": "redistribution",
                     "ignore_index": "${dataset.ignore_index}"}
    assert cfg["ce"] == {**ce, "_target_": "segohem.losses.CrossEntropyLoss"}
    assert cfg["ohem"] == ohem
    assert cfg["ohem_dice"] == {**ohem, "_target_": "segohem.losses.OhemDiceLoss",
                                "dice_weight": 0.5, "ce_weight": 1.0}
    assert cfg["topk"] == {**mining, "_target_": "segohem.losses.TopKCELoss", "top_k": 0.2,
                           "warmup_steps": 0}
    assert cfg["crl"] == {**rectification, "base": cfg["ce"]}
    assert cfg["ohem_crl"] == {**rectification, "base": ohem}


def test_debug_and_trainer_options_compose_to_their_values():
    """debug/*: data in the main process (debug/default.yaml) plus each one's run length;
    trainer=ddp: trainer=gpu's accelerator and precision plus its DDP keys."""
    runs = {"default": {}, "fdr": {"fast_dev_run": True},
            "limit": {"max_epochs": 2, "limit_train_batches": 4, "limit_val_batches": 2},
            "overfit": {"max_epochs": 30, "overfit_batches": 2}}
    assert set(runs) == set(group_options()["debug"])
    for option, trainer in runs.items():
        cfg = compose_train([f"debug={option}"])
        assert cfg.dataset.num_workers == 0, option
        assert {k: cfg.trainer[k] for k in trainer} == trainer, option
    gpu, ddp = (OmegaConf.to_container(compose_train([f"trainer={o}"]).trainer)
                for o in ("gpu", "ddp"))
    assert (gpu["accelerator"], gpu["precision"]) == ("gpu", "16-mixed")
    assert ddp == {**gpu, "devices": -1, "strategy": ddp["strategy"], "sync_batchnorm": True,
                   "num_nodes": 1}


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
    code = ("import sys, segohem.cli.train; heavy = [m for m in ('torch', 'lightning', "
            "'segmentation_models_pytorch', 'albumentations') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_help_and_cfg_job_and_bad_override(tmp_path):
    cli = [sys.executable, "-m", "segohem.cli.train"]
    out = subprocess.run([*cli, "--help"], capture_output=True, text=True, check=True).stdout
    listed = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
    for group, options in group_options().items():  # every option found in conf/
        # Hydra lists a group's every file: the bases (conf/dataset/_base.yaml ...) come first
        assert [o for o in listed[group].split(", ") if not o.startswith("_")] == options
    overrides = ["loss=topk", "loss.top_k=0.3"]
    out = subprocess.run([*cli, "--cfg", "job", *overrides],
                         capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    assert yaml.safe_load(out) == OmegaConf.to_container(compose_train(overrides))
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
    overrides = ["loss=topk", "model=deeplabv3plus"]
    code = (
        "import json, pathlib, segohem\n"
        f"assert pathlib.Path(segohem.__file__).is_relative_to({str(site)!r}), segohem.__file__\n"
        "from hydra.utils import instantiate\n"
        "from omegaconf import OmegaConf\n"
        "from segohem.config.compose import compose_config\n"
        f"cfg = compose_config('train', {overrides!r})\n"
        "instantiate(cfg.loss)\n"
        "print(json.dumps(OmegaConf.to_container(cfg)))\n"
    )
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=tmp_path,
                         capture_output=True, text=True).stdout
    # the wheel ships every config file: it composes what the source tree composes
    assert json.loads(out) == OmegaConf.to_container(compose_train(overrides))
    out = subprocess.run([sys.executable, "-m", "segohem.cli.train", "--cfg", "job"], check=True,
                         env=env, cwd=tmp_path, capture_output=True, text=True).stdout
    assert yaml.safe_load(out) == OmegaConf.to_container(compose_train([]))
