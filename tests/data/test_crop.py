"""The crop rule dataset.cat_max_ratio (mmsegmentation's RandomCrop(cat_max_ratio)): crops
dominated by one class are re-drawn, at most 10 times, from the pipeline's seeded state."""

import albumentations as A
import numpy as np
import pytest
from hydra.utils import instantiate

from segohem.config.checks import ConfigError
from segohem.data.crop import MAX_REDRAWS, CatMaxRatioCrop, dominant_share, random_crop
from tests._support.configs import compose_train

IGNORE = 255


def crops(mask: np.ndarray, ratio: float | None, n: int = 200, seed: int = 0):
    """``n`` crops 32x32 of ``mask``: (share of the dominant class, re-draws) per crop."""
    crop = random_crop(32, 32, cat_max_ratio=ratio, ignore_index=IGNORE)
    pipeline = A.Compose([crop], seed=seed)
    image = np.zeros((*mask.shape, 3), dtype=np.uint8)
    out = []
    for _ in range(n):
        result = pipeline(image=image, mask=mask)
        assert result["mask"].shape == (32, 32)
        out.append((dominant_share(result["mask"], IGNORE), getattr(crop, "redraws", 0)))
    return out


def half_mask() -> np.ndarray:
    """64 x 64: class 1 on the left 32 columns, class 0 on the right. A 32 x 32 crop at x has
    class-1 share (32 - x) / 32: about half of all crops are dominated (>= 0.75)."""
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[:, :32] = 1
    return mask


def test_dominated_crops_are_redrawn():
    plain = crops(half_mask(), None)
    ruled = crops(half_mask(), 0.75)
    assert np.mean([share >= 0.75 for share, _ in plain]) > 0.3  # the rule has work to do
    for share, redraws in ruled:
        assert 0 <= redraws <= MAX_REDRAWS
        if redraws < MAX_REDRAWS:  # accepted by the rule, not kept as the last re-draw
            assert share < 0.75
    assert np.mean([share < 0.75 for share, _ in ruled]) > 0.99
    assert any(redraws > 0 for _, redraws in ruled)


def test_one_class_image_stops_after_ten_redraws():
    mask = np.full((64, 64), 2, dtype=np.uint8)
    mask[:8] = IGNORE  # ignored pixels are no class: still a one-class image
    for share, redraws in crops(mask, 0.75, n=5):
        assert share == 1.0
        assert redraws == MAX_REDRAWS


def test_crops_are_seeded():
    assert crops(half_mask(), 0.75, n=30, seed=3) == crops(half_mask(), 0.75, n=30, seed=3)
    assert crops(half_mask(), 0.75, n=30, seed=3) != crops(half_mask(), 0.75, n=30, seed=4)


def test_dominant_share_ignores_ignore_pixels():
    mask = np.array([[0, 0, 1, IGNORE], [IGNORE, IGNORE, IGNORE, IGNORE]])
    assert dominant_share(mask, IGNORE) == pytest.approx(2 / 3)
    assert dominant_share(np.full((2, 2), IGNORE), IGNORE) == 1.0


@pytest.mark.parametrize("bad", [0, 1.5, -0.2, "high", True])
def test_bad_ratio_names_the_option(bad):
    with pytest.raises(ConfigError, match=r"dataset\.cat_max_ratio"):
        random_crop(32, 32, cat_max_ratio=bad)


def test_config_switches_the_crop(tmp_path):
    base = ["dataset=cityscapes", f"dataset.root={tmp_path}", "dataset.crop_size=[32,32]",
            "dataset.scale_range=[1,1]"]
    off = instantiate(compose_train(base, tmp_path).dataset.train_transform)
    on = instantiate(compose_train([*base, "dataset.cat_max_ratio=0.75"],
                                   tmp_path).dataset.train_transform)
    assert not any(isinstance(t, CatMaxRatioCrop) for t in off.transforms)
    assert any(isinstance(t, A.RandomCrop) for t in off.transforms)
    rule = next(t for t in on.transforms if isinstance(t, CatMaxRatioCrop))
    assert (rule.cat_max_ratio, rule.ignore_index, rule.height) == (0.75, IGNORE, 32)
