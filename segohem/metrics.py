"""Dataset-level semantic-segmentation metrics from an accumulated confusion matrix.

:class:`SegmentationMetrics` is a ``torchmetrics.Metric`` that sums one ``(C, C)`` int64
confusion matrix (rows: ground truth, columns: prediction) over the whole validation set
(and across DDP ranks), then derives IoU / accuracy from it once, in
:func:`metrics_from_confusion`. Averaging per-batch IoUs instead would weight small
batches and rare classes wrongly; the dataset-level confusion matrix is what Cityscapes,
mmsegmentation and PaddleSeg report.

``update`` never waits for the device (no ``.item()``, no boolean-mask indexing, no
``bincount``): the counts are one fixed-size ``index_add_`` whose extra bin swallows the
ignored pixels. :func:`format_iou_table` renders it as the per-class table of
:func:`segohem.report.metrics_json.summary_table`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from segohem.losses._determinism import order_independent_atomics
from segohem.report.metrics_json import metrics_summary, summary_table

__all__ = ["SegmentationMetrics", "format_iou_table", "metrics_from_confusion"]


def _ratio(numerator: Tensor, denominator: Tensor) -> Tensor:
    """``numerator / denominator`` in float64, NaN (no warning) where the denominator is 0."""
    safe = torch.where(denominator > 0, denominator, torch.ones_like(denominator))
    return torch.where(denominator > 0, numerator / safe,
                       torch.full_like(numerator, math.nan))


def _masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``values`` where ``mask`` holds (0-dim), NaN if ``mask`` is all False."""
    total = torch.where(mask, values, torch.zeros_like(values)).sum()
    return _ratio(total, mask.sum().to(values.dtype))


def metrics_from_confusion(confmat: Tensor) -> dict[str, Tensor]:
    """IoU and accuracy from a confusion matrix.

    Args:
        confmat: ``(C, C)`` counts (any real dtype, normally int64), rows = ground truth,
            columns = prediction.

    Returns:
        float32 tensors on ``confmat``'s device (computed in float64):

        * ``"IoU"`` ``(C,)``: ``TP / (TP + FP + FN)``; NaN where that union is 0 (class
          neither present nor predicted). A class that is predicted but never present has
          IoU 0.
        * ``"mIoU"`` ``()``: mean IoU over the classes with a non-zero union (absent
          classes do not count: Cityscapes / mmsegmentation convention); NaN if no class
          has one (empty matrix).
        * ``"Acc"`` ``(C,)``: per-class accuracy (recall) ``TP / (TP + FN)``; NaN where the
          class has no ground-truth pixel.
        * ``"mAcc"`` ``()``: mean ``Acc`` over the classes with ground-truth pixels; NaN if
          there are none.
        * ``"aAcc"`` ``()``: overall pixel accuracy ``trace / total``; NaN if total is 0.

    Raises:
        ValueError: if ``confmat`` is not a square 2-D real tensor.
    """
    if confmat.dim() != 2 or confmat.shape[0] != confmat.shape[1] or confmat.numel() == 0:
        raise ValueError(
            f"confmat must be a non-empty square (C, C) matrix, got shape {tuple(confmat.shape)}.")
    if confmat.is_complex() or confmat.dtype == torch.bool:
        raise ValueError(f"confmat must hold real counts, got dtype {confmat.dtype}.")
    cm = confmat.detach().to(torch.float64)
    tp = cm.diagonal()
    gt = cm.sum(dim=1)  # TP + FN
    predicted = cm.sum(dim=0)  # TP + FP
    union = gt + predicted - tp
    iou = _ratio(tp, union)
    acc = _ratio(tp, gt)
    out = {
        "IoU": iou,
        "mIoU": _masked_mean(iou, union > 0),
        "Acc": acc,
        "mAcc": _masked_mean(acc, gt > 0),
        "aAcc": _ratio(tp.sum(), cm.sum()),
    }
    return {name: value.to(torch.float32) for name, value in out.items()}


class SegmentationMetrics(Metric):
    """Dataset-level IoU, mIoU, per-class / mean / overall pixel accuracy.

    Accumulates a ``(C, C)`` int64 confusion matrix ``confmat`` (rows = ground truth,
    columns = prediction) over every :meth:`update`; it is summed across DDP ranks before
    :meth:`compute`, which returns :func:`metrics_from_confusion` of it (a dict of float32
    tensors: ``IoU`` and ``Acc`` of shape ``(C,)``, scalars ``mIoU``, ``mAcc``, ``aAcc``).
    The per-class entries are not scalars, so log the scalars (e.g.
    ``self.log("val/mIoU", m["mIoU"])``) rather than the whole dict.

    Args:
        num_classes: number of classes ``C`` (int >= 1).
        ignore_index: target value of pixels that are skipped (default 255). It may also be
            a class id in ``[0, C)``: that class's ground-truth pixels are then skipped, but
            predictions of it on other pixels still count as its false positives.
        **kwargs: passed to ``torchmetrics.Metric`` (``sync_on_compute``,
            ``dist_sync_fn``, ...).

    Inputs of :meth:`update`:
        * ``preds``: ``(B, C, H, W)`` floating-point logits or probabilities (arg-maxed
          over dim 1), or ``(B, H, W)`` integer class ids. Any number of spatial dims works.
        * ``target``: ``(B, H, W)`` integer class ids in ``[0, C)`` or ``ignore_index``.

    Out-of-range values are not reported, because checking them would make ``update``
    wait for the device: the data pipeline must guarantee valid labels (the losses'
    ``check_labels`` does). They cannot corrupt memory or other classes' counts though:
    a pixel whose target is outside ``[0, C)`` (other than ``ignore_index``), or whose
    predicted class id is outside ``[0, C)``, is treated as ignored and counted nowhere.
    Arg-maxed logits are always in range.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    confmat: Tensor

    def __init__(self, num_classes: int, ignore_index: int = 255, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if (isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral)
                or num_classes < 1):
            raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}.")
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral):
            raise ValueError(f"ignore_index must be an int, got {ignore_index!r}.")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.add_state(
            "confmat",
            default=torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64),
            dist_reduce_fx="sum",
        )

    def _check_inputs(self, preds: Tensor, target: Tensor) -> None:
        """Static checks only (shapes and dtypes): they never read device memory."""
        if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
            raise ValueError(
                f"target must be an integer tensor of class ids, got dtype {target.dtype}.")
        if preds.is_floating_point():
            if preds.dim() < 2:
                raise ValueError(
                    f"floating-point preds must be logits of shape (B, C, H, W), got shape "
                    f"{tuple(preds.shape)}.")
            if preds.shape[1] != self.num_classes:
                raise ValueError(
                    f"preds have {preds.shape[1]} channels (shape {tuple(preds.shape)}) but "
                    f"num_classes={self.num_classes}.")
            expected = (preds.shape[0], *preds.shape[2:])
            if tuple(target.shape) != expected:
                raise ValueError(
                    f"logits of shape {tuple(preds.shape)} need a target of shape {expected}, "
                    f"got target of shape {tuple(target.shape)}.")
        elif preds.is_complex() or preds.dtype == torch.bool:
            raise ValueError(
                f"preds must be floating-point logits (B, C, H, W) or integer class ids "
                f"(B, H, W), got dtype {preds.dtype}.")
        elif preds.shape != target.shape:
            raise ValueError(
                f"class-id preds of shape {tuple(preds.shape)} must have the target's shape, "
                f"got target of shape {tuple(target.shape)}.")

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add one batch to the confusion matrix (see the class docstring for shapes)."""
        self._check_inputs(preds, target)
        c = self.num_classes
        pred = preds.argmax(dim=1) if preds.is_floating_point() else preds.long()
        target = target.long()
        valid = ((target != self.ignore_index) & (target >= 0) & (target < c)
                 & (pred >= 0) & (pred < c))
        # Invalid pixels go to the extra bin c * c, dropped below: a fixed-size scatter
        # instead of boolean-mask indexing, so nothing waits for the device.
        idx = torch.where(valid, target * c + pred, c * c).reshape(-1)
        count_dtype = torch.int32 if idx.numel() < 2**31 else torch.int64
        counts = torch.zeros(c * c + 1, dtype=count_dtype, device=idx.device)
        with order_independent_atomics(idx.device):  # integer adds are exact
            counts.index_add_(0, idx, torch.ones_like(idx, dtype=count_dtype))
        self.confmat += counts[:-1].view(c, c).to(torch.int64)

    def compute(self) -> dict[str, Tensor]:
        """:func:`metrics_from_confusion` of the accumulated (and DDP-summed) matrix."""
        return metrics_from_confusion(self.confmat)


def format_iou_table(metrics: Mapping[str, Any], class_names: Sequence[str]) -> str:
    """:func:`~segohem.report.metrics_json.summary_table` of :func:`metrics_from_confusion`'s output
    (``"IoU"``, ``"Acc"``: ``(C,)`` tensors or sequences; scalars ``"mIoU"``, ``"mAcc"``,
    ``"aAcc"``), in class-id order. Reads the values back to the host.

    Raises:
        ValueError: if the number of names does not match the number of classes.
    """
    iou = torch.as_tensor(metrics["IoU"]).detach().reshape(-1).tolist()
    acc = torch.as_tensor(metrics["Acc"]).detach().reshape(-1).tolist()
    if not (len(class_names) == len(iou) == len(acc)):
        raise ValueError(
            f"got {len(class_names)} class names for {len(iou)} IoU and {len(acc)} Acc values.")
    values = {**metrics, "IoU": iou, "Acc": acc}
    return summary_table(metrics_summary(values, class_names), class_names)
