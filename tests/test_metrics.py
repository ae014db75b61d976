"""SegmentationMetrics / metrics_from_confusion against an independent numpy reference."""

import math
import re
import warnings

import numpy as np
import pytest
import torch

from segohem.metrics import SegmentationMetrics, format_iou_table, metrics_from_confusion

IGNORE = 255


# ---------------------------------------------------------------------------- reference


def np_confusion(preds: np.ndarray, target: np.ndarray, num_classes: int,
                 ignore_index: int = IGNORE) -> np.ndarray:
    """Confusion matrix (rows = ground truth) of class-id arrays, ignored pixels dropped."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    keep = target != ignore_index
    np.add.at(cm, (target[keep], preds[keep]), 1)
    return cm


def np_metrics(cm: np.ndarray) -> dict[str, np.ndarray | float]:
    """Textbook IoU / accuracy, class by class, NaN for classes without a denominator."""
    n = cm.shape[0]
    iou, acc = np.full(n, np.nan), np.full(n, np.nan)
    for k in range(n):
        tp = cm[k, k]
        fn = cm[k, :].sum() - tp
        fp = cm[:, k].sum() - tp
        if tp + fp + fn > 0:
            iou[k] = tp / (tp + fp + fn)
        if tp + fn > 0:
            acc[k] = tp / (tp + fn)
    present_iou, present_acc = iou[~np.isnan(iou)], acc[~np.isnan(acc)]
    total = cm.sum()
    return {
        "IoU": iou,
        "mIoU": present_iou.mean() if present_iou.size else np.nan,
        "Acc": acc,
        "mAcc": present_acc.mean() if present_acc.size else np.nan,
        "aAcc": np.trace(cm) / total if total else np.nan,
    }


def assert_matches(result: dict, expected: dict) -> None:
    assert set(result) == {"IoU", "mIoU", "Acc", "mAcc", "aAcc"}
    for key, want in expected.items():
        got = result[key]
        assert got.dtype == torch.float32, key
        np.testing.assert_allclose(got.numpy(), np.asarray(want, dtype=np.float64),
                                   rtol=1e-6, atol=1e-7, equal_nan=True, err_msg=key)


def random_batch(gen: torch.Generator, classes: int, used: list[int] | None = None,
                 batch: int = 2, height: int = 7, width: int = 9, ignore: float = 0.2,
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``(B, C, H, W)`` and target ``(B, H, W)`` drawn from the ``used`` classes.

    The logits favour the target class (so the IoUs are not all tiny) and never pick a
    class outside ``used``.
    """
    used_t = torch.tensor(used if used is not None else list(range(classes)))
    target = used_t[torch.randint(0, len(used_t), (batch, height, width), generator=gen)]
    logits = torch.randn(batch, classes, height, width, generator=gen)
    logits += 1.5 * torch.nn.functional.one_hot(target, classes).permute(0, 3, 1, 2)
    unused = torch.ones(classes, dtype=torch.bool)
    unused[used_t] = False
    logits[:, unused] = -1e4
    drop = torch.rand(batch, height, width, generator=gen) < ignore
    return logits, torch.where(drop, IGNORE, target)


# ---------------------------------------------------------------------------- values


def test_hand_computed_example():
    # 2x3 image, 4 classes, one ignored pixel; class 3 appears nowhere.
    target = torch.tensor([[[0, 0, 1],
                            [1, 2, 255]]])
    preds = torch.tensor([[[0, 1, 1],
                           [1, 1, 0]]])
    # Valid pixels (gt -> pred): 0->0, 0->1, 1->1, 1->1, 2->1.
    metric = SegmentationMetrics(num_classes=4)
    metric.update(preds, target)
    expected_cm = torch.tensor([[1, 1, 0, 0],
                                [0, 2, 0, 0],
                                [0, 1, 0, 0],
                                [0, 0, 0, 0]])
    assert metric.confmat.dtype == torch.int64
    assert torch.equal(metric.confmat, expected_cm)
    out = metric.compute()
    # IoU: class 0: 1 / (1 + 0 + 1); class 1: 2 / (2 + 2 + 0); class 2: 0 / (0 + 0 + 1).
    nan = math.nan
    torch.testing.assert_close(out["IoU"], torch.tensor([0.5, 0.5, 0.0, nan]), equal_nan=True)
    torch.testing.assert_close(out["mIoU"], torch.tensor(1 / 3))  # class 3 excluded
    torch.testing.assert_close(out["Acc"], torch.tensor([0.5, 1.0, 0.0, nan]), equal_nan=True)
    torch.testing.assert_close(out["mAcc"], torch.tensor(0.5))
    torch.testing.assert_close(out["aAcc"], torch.tensor(0.6))  # 3 of 5 valid pixels
    assert out["mIoU"].shape == ()
    assert_matches(out, np_metrics(expected_cm.numpy()))


def test_accumulates_over_batches_like_reference():
    gen = torch.Generator().manual_seed(0)
    classes = 6
    metric = SegmentationMetrics(classes)
    all_preds, all_target = [], []
    for _ in range(5):
        logits, target = random_batch(gen, classes)
        metric.update(logits, target)
        all_preds.append(logits.argmax(1).numpy().ravel())
        all_target.append(target.numpy().ravel())
    cm = np_confusion(np.concatenate(all_preds), np.concatenate(all_target), classes)
    assert torch.equal(metric.confmat, torch.from_numpy(cm))
    assert_matches(metric.compute(), np_metrics(cm))


def test_classes_absent_from_a_batch_or_everywhere():
    gen = torch.Generator().manual_seed(1)
    classes = 6
    metric = SegmentationMetrics(classes)
    cm = np.zeros((classes, classes), dtype=np.int64)
    # Class 5 never appears (target or prediction); class 4 only in the second batch;
    # class 3 only in the first.
    for used in ([0, 1, 2, 3], [0, 1, 2, 4], [0, 1]):
        logits, target = random_batch(gen, classes, used=used)
        metric.update(logits, target)
        cm += np_confusion(logits.argmax(1).numpy(), target.numpy(), classes)
    out = metric.compute()
    assert_matches(out, np_metrics(cm))
    assert math.isnan(out["IoU"][5]) and math.isnan(out["Acc"][5])
    assert not torch.isnan(out["IoU"][:5]).any()
    torch.testing.assert_close(out["mIoU"], out["IoU"][:5].mean())
    torch.testing.assert_close(out["mAcc"], out["Acc"][:5].mean())


def test_predicted_but_absent_class_counts_as_zero_iou():
    cm = torch.tensor([[3, 1], [0, 0]])  # class 1 predicted once, never in ground truth
    out = metrics_from_confusion(cm)
    torch.testing.assert_close(out["IoU"], torch.tensor([0.75, 0.0]))
    torch.testing.assert_close(out["mIoU"], torch.tensor(0.375))
    assert math.isnan(out["Acc"][1])
    torch.testing.assert_close(out["mAcc"], torch.tensor(0.75))


def test_logits_and_class_ids_give_identical_results():
    gen = torch.Generator().manual_seed(2)
    from_logits, from_ids = SegmentationMetrics(5), SegmentationMetrics(5)
    for _ in range(3):
        logits, target = random_batch(gen, 5)
        from_logits.update(logits, target)
        from_ids.update(logits.argmax(1).to(torch.int32), target.to(torch.uint8))
    probs_metric = SegmentationMetrics(5)
    probs_metric.update(logits.softmax(1).half(), target)
    assert torch.equal(from_logits.confmat, from_ids.confmat)
    for key, value in from_logits.compute().items():
        torch.testing.assert_close(value, from_ids.compute()[key], equal_nan=True, rtol=0, atol=0)
    assert probs_metric.confmat.sum() == (target != IGNORE).sum()


def test_reset():
    gen = torch.Generator().manual_seed(3)
    metric = SegmentationMetrics(4)
    metric.update(*random_batch(gen, 4))
    assert metric.confmat.sum() > 0
    metric.reset()
    assert torch.equal(metric.confmat, torch.zeros(4, 4, dtype=torch.int64))
    logits, target = random_batch(gen, 4)
    metric.update(logits, target)
    cm = np_confusion(logits.argmax(1).numpy(), target.numpy(), 4)
    assert_matches(metric.compute(), np_metrics(cm))


def test_forward_returns_batch_metrics_and_accumulates():
    gen = torch.Generator().manual_seed(4)
    metric = SegmentationMetrics(4)
    batches = [random_batch(gen, 4) for _ in range(2)]
    cms = [np_confusion(x.argmax(1).numpy(), y.numpy(), 4) for x, y in batches]
    for (logits, target), cm in zip(batches, cms, strict=True):
        assert_matches(metric(logits, target), np_metrics(cm))
    assert_matches(metric.compute(), np_metrics(cms[0] + cms[1]))


def test_all_pixels_ignored_and_empty_matrix():
    metric = SegmentationMetrics(3)
    metric.update(torch.zeros(2, 4, 4, dtype=torch.long), torch.full((2, 4, 4), IGNORE))
    assert metric.confmat.sum() == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division warnings
        out = metrics_from_confusion(metric.confmat)
    for key in ("IoU", "Acc"):
        assert out[key].shape == (3,) and torch.isnan(out[key]).all()
    for key in ("mIoU", "mAcc", "aAcc"):
        assert out[key].shape == () and torch.isnan(out[key])


def test_ignore_index_options():
    target = torch.tensor([[[0, 1, 2], [-1, 1, 0]]])
    preds = torch.tensor([[[0, 1, 1], [2, 1, 1]]])
    neg = SegmentationMetrics(3, ignore_index=-1)
    neg.update(preds, target)
    assert torch.equal(neg.confmat, torch.from_numpy(
        np_confusion(preds.numpy(), target.numpy(), 3, ignore_index=-1)))
    # An in-range ignore_index drops that class's ground truth; its predictions stay FPs.
    zero = SegmentationMetrics(3, ignore_index=0)
    zero.update(preds, torch.where(target < 0, 0, target))
    assert torch.equal(zero.confmat, torch.tensor([[0, 0, 0], [0, 2, 0], [0, 1, 0]]))


def test_out_of_range_values_are_dropped_not_miscounted():
    target = torch.tensor([[[0, 7, 1], [-3, 1, 0]]])
    preds = torch.tensor([[[0, 1, 9], [1, -2, 1]]])
    metric = SegmentationMetrics(3)
    metric.update(preds, target)
    # Only the pixels with both values in range count: (0, 0) and (0, 1).
    expected = torch.zeros(3, 3, dtype=torch.int64)
    expected[0, 0] = expected[0, 1] = 1
    assert torch.equal(metric.confmat, expected)


def test_deterministic_mode_is_fine():
    gen = torch.Generator().manual_seed(5)
    logits, target = random_batch(gen, 4)
    metric = SegmentationMetrics(4)
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        metric.update(logits, target)
    finally:
        torch.use_deterministic_algorithms(previous)
    assert torch.are_deterministic_algorithms_enabled() == previous
    cm = np_confusion(logits.argmax(1).numpy(), target.numpy(), 4)
    assert torch.equal(metric.confmat, torch.from_numpy(cm))


# ---------------------------------------------------------------------------- DDP


def split_data(seed: int):
    gen = torch.Generator().manual_seed(seed)
    batches = [random_batch(gen, 5, used=used) for used in ([0, 1, 2], [1, 3], [0, 4], [2])]
    full = SegmentationMetrics(5)
    for batch in batches:
        full.update(*batch)
    ranks = [SegmentationMetrics(5), SegmentationMetrics(5)]
    for i, batch in enumerate(batches):
        ranks[i % 2].update(*batch)
    return full, ranks


def test_ddp_sum_of_rank_states_equals_single_process():
    full, (rank0, rank1) = split_data(6)
    assert not torch.equal(rank0.confmat, rank1.confmat)
    summed = metrics_from_confusion(rank0.confmat + rank1.confmat)
    assert torch.equal(rank0.confmat + rank1.confmat, full.confmat)
    for key, value in full.compute().items():
        torch.testing.assert_close(summed[key], value, equal_nan=True, rtol=0, atol=0)


def test_ddp_merge_state_and_sync_reduce_by_sum():
    full, (rank0, rank1) = split_data(7)
    rank0.merge_state(rank1)
    assert torch.equal(rank0.confmat, full.confmat)

    # torchmetrics' own sync path, with a fake all-gather standing in for 2 ranks.
    full, (rank0, rank1) = split_data(7)
    local = rank0.confmat.clone()

    def gather(tensor, group=None):
        return [tensor, rank1.confmat]

    rank0.sync(dist_sync_fn=gather, distributed_available=lambda: True)
    assert torch.equal(rank0.confmat, full.confmat)
    rank0.unsync()
    assert torch.equal(rank0.confmat, local)


# ---------------------------------------------------------------------------- errors


@pytest.mark.parametrize("num_classes", [0, -2, 2.5, True, "3", None])
def test_bad_num_classes(num_classes):
    match = "num_classes must be an int >= 1, got " + re.escape(repr(num_classes))
    with pytest.raises(ValueError, match=match):
        SegmentationMetrics(num_classes)


@pytest.mark.parametrize("ignore_index", [1.5, "255", None, False])
def test_bad_ignore_index(ignore_index):
    with pytest.raises(ValueError, match=r"ignore_index must be an int, got"):
        SegmentationMetrics(3, ignore_index=ignore_index)


def test_channel_mismatch_names_both():
    metric = SegmentationMetrics(4)
    with pytest.raises(ValueError, match=r"5 channels.*num_classes=4"):
        metric.update(torch.randn(2, 5, 3, 3), torch.zeros(2, 3, 3, dtype=torch.long))


@pytest.mark.parametrize(("preds", "target", "match"), [
    (torch.randn(2, 4, 3, 3), torch.zeros(2, 3, 4, dtype=torch.long),
     r"\(2, 4, 3, 3\).*\(2, 3, 3\).*\(2, 3, 4\)"),
    (torch.zeros(2, 3, 3, dtype=torch.long), torch.zeros(2, 3, 4, dtype=torch.long),
     r"\(2, 3, 3\).*\(2, 3, 4\)"),
    (torch.randn(2, 3, 3), torch.zeros(2, 3, 3, dtype=torch.long), r"channels"),
    (torch.randn(4), torch.zeros(4, dtype=torch.long), r"\(B, C, H, W\), got shape \(4,\)"),
    (torch.randn(2, 4, 3, 3), torch.zeros(2, 3, 3), r"target must be an integer.*float32"),
    (torch.zeros(2, 3, 3, dtype=torch.bool), torch.zeros(2, 3, 3, dtype=torch.long),
     r"torch.bool"),
])
def test_bad_inputs(preds, target, match):
    with pytest.raises(ValueError, match=match):
        SegmentationMetrics(4).update(preds, target)


@pytest.mark.parametrize("confmat", [torch.zeros(3), torch.zeros(2, 3), torch.zeros(0, 0)])
def test_metrics_from_confusion_rejects_non_square(confmat):
    with pytest.raises(ValueError, match=r"square .* got shape"):
        metrics_from_confusion(confmat)


# ---------------------------------------------------------------------------- table


def test_format_iou_table():
    out = metrics_from_confusion(torch.tensor([[1, 1, 0, 0],
                                               [0, 2, 0, 0],
                                               [0, 1, 0, 0],
                                               [0, 0, 0, 0]]))
    table = format_iou_table(out, ["road", "sidewalk", "car", "train"])
    lines = table.splitlines()
    assert lines[0].split("|")[0].strip() == "class"
    rows = {line.split("|")[0].strip(): [c.strip() for c in line.split("|")[1:]]
            for line in lines[2:6]}
    assert rows == {"road": ["50.00", "50.00"], "sidewalk": ["50.00", "100.00"],
                    "car": ["0.00", "0.00"], "train": ["-", "-"]}
    assert lines[-1] == "mIoU 33.33 | mAcc 50.00 | aAcc 60.00"
    with pytest.raises(ValueError, match="3 class names for 4"):
        format_iou_table(out, ["a", "b", "c"])


# ---------------------------------------------------------------------------- GPU


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("deterministic", [False, True])
def test_update_does_not_sync_on_cuda(deterministic):
    gen = torch.Generator().manual_seed(8)
    batches = [random_batch(gen, 6, height=64, width=96) for _ in range(3)]
    cm = sum(np_confusion(x.argmax(1).numpy(), y.numpy(), 6) for x, y in batches)
    metric = SegmentationMetrics(6).cuda()
    cuda_batches = [(x.cuda(), y.cuda()) for x, y in batches]
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(deterministic)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for logits, target in cuda_batches:
            metric.update(logits, target)
            metric.update(logits.argmax(1), target)
    finally:
        torch.cuda.set_sync_debug_mode("default")
        torch.use_deterministic_algorithms(previous)
    assert torch.equal(metric.confmat.cpu(), torch.from_numpy(2 * cm))
    assert_matches({k: v.cpu() for k, v in metric.compute().items()}, np_metrics(2 * cm))
