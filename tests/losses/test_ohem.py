"""OhemCELoss: reference semantics, gradients, safety, statistics."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from segohem.losses import OhemCELoss
from tests._support.batches import make_batch, value_and_grad
from tests._support.reference_losses import bisenet_ohem, ohem_reference


def test_worked_example(walkthrough):
    logits = torch.tensor(walkthrough["logits"])
    labels = torch.tensor(walkthrough["labels"])
    expected = walkthrough["expected"]
    loss_fn = OhemCELoss(thresh=walkthrough["thresh"], ignore_index=walkthrough["ignore_index"])

    loss = loss_fn(logits, labels)

    assert loss.item() == pytest.approx(expected["loss"], abs=expected["loss_atol"])
    ce = F.cross_entropy(logits, labels, reduction="none").reshape(-1)
    assert ce.tolist() == pytest.approx(expected["pixel_ce"], abs=1e-4)
    stats = loss_fn.last_stats
    assert stats.valid_pixels.item() == expected["valid_pixels"]
    assert stats.kept_pixels.item() == expected["hard_pixels"]
    assert stats.kept_fraction.item() == pytest.approx(28 / 32)
    assert stats.fallback.item() == 0.0
    assert stats.threshold.item() == pytest.approx(expected["threshold_on_loss"], abs=1e-4)
    assert loss_fn.loss_threshold() == pytest.approx(-math.log(0.7))
    # n_min = 32 // 16 = 2 < 28 hard pixels, so no fallback: mean over the hard pixels.
    hard = ce[ce > expected["threshold_on_loss"]]
    assert hard.numel() == 28
    assert loss.item() == pytest.approx(hard.mean().item(), rel=1e-6)


@pytest.mark.parametrize("thresh", [0.3, 0.7, 0.95, 0.999])
@pytest.mark.parametrize("seed", range(4))
def test_matches_bisenet(thresh, seed):
    logits, labels = make_batch(seed, 2, 5, 12, 10, ignore_fraction=0.2)
    ours = OhemCELoss(thresh=thresh)(logits, labels)
    theirs = bisenet_ohem(logits, labels, thresh)
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-5)


def test_fallback_matches_bisenet_including_ties():
    # Logits on a coarse grid make many pixel losses identical; thresh 0.01 forces the
    # n_min fallback, so ties at the n_min-th value decide which pixels a topk keeps.
    logits, labels = make_batch(0, 2, 3, 16, 16, tie_step=1.0, scale=1.0)
    loss_fn = OhemCELoss(thresh=0.001)
    ours = loss_fn(logits, labels)
    assert loss_fn.last_stats.fallback.item() == 1.0
    ce = F.cross_entropy(logits, labels, reduction="none")
    assert (ce == loss_fn.last_stats.threshold).sum() > 1  # the boundary value is tied
    assert ours.item() == pytest.approx(bisenet_ohem(logits, labels, 0.001).item(), rel=1e-6)


count_specs = st.one_of(
    st.none(), st.integers(0, 80), st.floats(0.001, 1.0, allow_nan=False))


@given(
    seed=st.integers(0, 2**31 - 1),
    batch=st.integers(1, 3),
    classes=st.integers(1, 6),
    height=st.integers(1, 9),
    width=st.integers(1, 9),
    ignore_fraction=st.sampled_from([0.0, 0.3, 0.9, 1.0]),
    tie_step=st.sampled_from([None, None, 0.5, 2.0]),
    thresh=st.one_of(st.floats(0.01, 1.0), st.just(1.0), st.just(0.7)),
    n_min=count_specs,
    per_image=st.booleans(),
    weighted=st.booleans(),
)
def test_property_matches_reference(seed, batch, classes, height, width, ignore_fraction,
                                    tie_step, thresh, n_min, per_image, weighted):
    logits, labels = make_batch(seed, batch, classes, height, width, ignore_fraction, tie_step)
    weight = None
    if weighted:
        weight = torch.rand(classes, generator=torch.Generator().manual_seed(seed)) * 2
        weight[0] = 0.0 if classes > 2 else weight[0]  # a zero-weight class too
    loss_fn = OhemCELoss(thresh=thresh, n_min=n_min, weight=weight, per_image=per_image)

    value, grad = value_and_grad(loss_fn, logits, labels)
    ref_value, ref_grad = value_and_grad(
        lambda x, y: ohem_reference(x, y, thresh, n_min, weight=weight, per_image=per_image),
        logits, labels)

    assert torch.isfinite(value) and torch.isfinite(grad).all()
    torch.testing.assert_close(value, ref_value.float(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("thresh", [0.7, 0.02])
def test_kept_pixels_are_the_hardest(thresh, per_image):
    logits, labels = make_batch(3, 2, 4, 20, 20, ignore_fraction=0.1)
    loss_fn = OhemCELoss(thresh=thresh, per_image=per_image)
    _, grad = value_and_grad(loss_fn, logits, labels)
    ce = F.cross_entropy(logits, labels, ignore_index=255, reduction="none")
    kept = grad.abs().sum(1) > 0
    valid = labels != 255
    assert kept.any()
    assert not (kept & ~valid).any()
    groups = range(2) if per_image else [slice(None)]
    for g in groups:
        kept_g, dropped_g = kept[g], valid[g] & ~kept[g]
        if dropped_g.any():
            # Every kept pixel is at least as hard as every dropped one.
            assert ce[g][kept_g].min() >= ce[g][dropped_g].max()
    if thresh == 0.7:
        assert torch.equal(kept, valid & (ce > -math.log(0.7)))


def test_fallback_keeps_exactly_n_min():
    logits, labels = make_batch(5, 2, 4, 16, 16)
    loss_fn = OhemCELoss(thresh=0.001, n_min=100)
    _, grad = value_and_grad(loss_fn, logits, labels)
    assert loss_fn.last_stats.fallback.item() == 1.0
    assert loss_fn.last_stats.kept_pixels.item() == 100
    assert int((grad.abs().sum(1) > 0).sum()) == 100
    ce = F.cross_entropy(logits, labels, reduction="none").reshape(-1)
    expected = ce.topk(100).values.mean()
    assert loss_fn(logits, labels).item() == pytest.approx(expected.item(), rel=1e-6)
    assert loss_fn.last_stats.threshold.item() == pytest.approx(ce.topk(100).values[-1].item())


@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("weight", [None, [1.0, 2.0, 0.5]])
def test_all_ignored_gives_zero_loss_with_zero_grad(per_image, weight):
    logits = torch.randn(2, 3, 8, 8)
    labels = torch.full((2, 8, 8), 255)
    loss_fn = OhemCELoss(per_image=per_image, weight=weight)
    value, grad = value_and_grad(loss_fn, logits, labels)
    assert value.item() == 0.0
    assert torch.equal(grad, torch.zeros_like(grad))
    assert loss_fn.last_stats.kept_fraction.item() == 0.0
    assert loss_fn.last_stats.valid_pixels.item() == 0.0


def test_per_image_averages_only_images_with_valid_pixels():
    logits, labels = make_batch(1, 3, 4, 8, 8)
    labels[1] = 255
    loss_fn = OhemCELoss(thresh=0.7, per_image=True)
    both = loss_fn(logits, labels)
    image0 = OhemCELoss(thresh=0.7)(logits[:1], labels[:1])
    image2 = OhemCELoss(thresh=0.7)(logits[2:], labels[2:])
    assert both.item() == pytest.approx((image0.item() + image2.item()) / 2, rel=1e-6)


def test_fewer_than_16_valid_pixels():
    # n_min = 10 // 16 = 0: the mean over hard pixels, or 0 if none is hard.
    logits = torch.zeros(1, 2, 4, 4)
    logits[0, 0] = 5.0  # class 0 very likely everywhere
    labels = torch.full((1, 4, 4), 255)
    labels[0, 0, :2] = 1  # 2 hard pixels (p(class 1) ~ 0.007)
    labels[0, 1:3, :4] = 0  # 8 easy pixels
    loss_fn = OhemCELoss(thresh=0.7)
    value = loss_fn(logits, labels)
    ce_hard = F.cross_entropy(logits, labels, ignore_index=255, reduction="none")[0, 0, :2]
    assert value.item() == pytest.approx(ce_hard.mean().item())
    labels[0, 0, :2] = 0  # now nothing is hard: BiSeNet would return NaN
    value, grad = value_and_grad(loss_fn, logits, labels)
    assert value.item() == 0.0 and not grad.any()


def test_thresh_one_keeps_every_pixel_with_nonzero_loss():
    logits, labels = make_batch(2, 1, 3, 6, 6)
    logits[0, :, :2] = 0.0
    logits[0, 0, :2] = 200.0  # these 12 pixels are certain: cross-entropy exactly 0
    labels[0, :2] = 0
    ce = F.cross_entropy(logits, labels, reduction="none")
    assert int((ce == 0).sum()) >= 12
    loss_fn = OhemCELoss(thresh=1.0)
    value = loss_fn(logits, labels)
    assert value.item() == pytest.approx(ce[ce > 0].mean().item(), rel=1e-6)
    assert loss_fn.last_stats.kept_pixels.item() == int((ce > 0).sum())


def test_n_min_larger_than_valid_is_capped():
    logits, labels = make_batch(4, 1, 3, 4, 4, ignore_fraction=0.5)
    valid = int((labels != 255).sum())
    loss_fn = OhemCELoss(thresh=0.01, n_min=10_000)
    value = loss_fn(logits, labels)
    assert loss_fn.last_stats.kept_pixels.item() == valid
    expected = F.cross_entropy(logits, labels, ignore_index=255)
    assert value.item() == pytest.approx(expected.item(), rel=1e-6)


def test_negative_zero_losses_rank_as_zero():
    # A huge margin gives log-probability exactly 0, i.e. a pixel loss of -0.0.
    logits = torch.zeros(1, 2, 1, 40)
    logits[0, 0, 0, :30] = 200.0
    labels = torch.zeros(1, 1, 40, dtype=torch.long)
    labels[0, 0, 30:] = 1  # 10 hard pixels with loss log(2)
    ce = F.cross_entropy(logits, labels, reduction="none")
    assert (ce[0, 0, :30] == 0).all()
    loss_fn = OhemCELoss(thresh=0.001, n_min=20)  # fallback: 10 x log 2 + 10 x 0
    assert loss_fn(logits, labels).item() == pytest.approx(math.log(2) / 2, rel=1e-6)
    assert loss_fn.last_stats.threshold.item() == 0.0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_low_and_high_precision_logits_are_computed_in_float32(dtype):
    logits, labels = make_batch(6, 2, 5, 8, 8, ignore_fraction=0.1)
    logits = logits.to(dtype)
    value = OhemCELoss()(logits, labels)
    assert value.dtype == torch.float32
    expected = OhemCELoss()(logits.float(), labels)
    assert value.item() == pytest.approx(expected.item(), rel=1e-6)


def test_autocast_bf16_on_cpu_is_finite_and_float32():
    model = torch.nn.Conv2d(3, 5, 1)
    images = torch.randn(2, 3, 8, 8)
    labels = torch.randint(0, 5, (2, 8, 8))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(images)
        assert logits.dtype == torch.bfloat16
        value = OhemCELoss()(logits, labels)
    value.backward()
    assert value.dtype == torch.float32
    assert torch.isfinite(model.weight.grad).all()


def test_accepts_other_integer_label_dtypes_and_3d_inputs():
    logits, labels = make_batch(7, 2, 4, 6, 6)
    expected = OhemCELoss()(logits, labels)
    assert OhemCELoss()(logits, labels.to(torch.int32)).item() == expected.item()
    flat = OhemCELoss()(logits.reshape(2, 4, 36), labels.reshape(2, 36))
    assert flat.item() == pytest.approx(expected.item())


def test_weight_buffer_follows_module_and_state_dict():
    loss_fn = OhemCELoss(weight=[1.0, 2.0])
    assert loss_fn.weight.dtype == torch.float32
    assert "weight" in loss_fn.state_dict()
    assert loss_fn.double().weight is not None


def test_stats_are_detached_tensors():
    logits, labels = make_batch(8, 2, 3, 8, 8)
    loss_fn = OhemCELoss()
    loss_fn(logits.requires_grad_(), labels)
    stats = loss_fn.last_stats.as_dict("train/ohem_")
    assert set(stats) == {"train/ohem_kept_fraction", "train/ohem_fallback",
                          "train/ohem_threshold", "train/ohem_valid_pixels",
                          "train/ohem_kept_pixels"}
    for value in stats.values():
        assert isinstance(value, torch.Tensor) and not value.requires_grad and value.dim() == 0


@pytest.mark.parametrize("thresh", [0.7, 0.001])
def test_per_image_on_large_images_equals_mining_each_image_alone(thresh):
    # 2 x 130 x 130 pixels per image: the histogram path (the sort path is for < 2**14).
    logits, labels = make_batch(9, 2, 5, 130, 130, ignore_fraction=0.2, tie_step=0.5)
    labels[1, :, :60] = 255
    value, grad = value_and_grad(OhemCELoss(thresh, per_image=True), logits, labels)
    parts = [value_and_grad(OhemCELoss(thresh), logits[i:i + 1], labels[i:i + 1])
             for i in range(2)]
    assert value.item() == pytest.approx((parts[0][0] + parts[1][0]).item() / 2, rel=1e-5)
    torch.testing.assert_close(grad, torch.cat([g for _, g in parts]) / 2)


@pytest.mark.parametrize("convert", [torch.nn.Module.double, torch.nn.Module.half,
                                     torch.nn.Module.bfloat16])
def test_weights_stay_float32_after_module_dtype_conversion(convert):
    # Lightning's "64-true" / "16-true" / "bf16-true" precisions convert every buffer.
    logits, labels = make_batch(10, 2, 3, 8, 8, ignore_fraction=0.2)
    weight = [0.5, 2.0, 1.0]
    expected = OhemCELoss(weight=weight)(logits, labels)
    for per_image in (False, True):
        loss_fn = convert(OhemCELoss(weight=weight, per_image=per_image))
        value = loss_fn(logits, labels)
        assert value.dtype == torch.float32
        if not per_image:
            assert value.item() == pytest.approx(expected.item(), rel=1e-2)


def test_deterministic_algorithms_mode():
    logits, labels = make_batch(11, 2, 4, 16, 16, ignore_fraction=0.1)
    expected = value_and_grad(OhemCELoss(0.05), logits, labels)
    torch.use_deterministic_algorithms(True)
    try:
        value, grad = value_and_grad(OhemCELoss(0.05), logits, labels)
    finally:
        torch.use_deterministic_algorithms(False)
    assert torch.equal(value, expected[0]) and torch.equal(grad, expected[1])
