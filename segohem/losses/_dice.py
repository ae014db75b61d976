"""The multiclass soft Dice loss of ``segmentation_models_pytorch.losses.DiceLoss`` from per-class
sums, without its one-hot and softmax tensors of the logits' size.

SMP's ``DiceLoss("multiclass", ignore_index=i)`` (smooth 0, eps 1e-7) is, per class ``c`` over
the valid pixels of the whole batch, ``1 - I_c / max((P_c + N_c) / 2, eps)`` for the classes
present in the labels (0 for the others), averaged over all ``C`` classes, where ``P_c`` sums
the softmax probability of ``c``, ``N_c`` counts the pixels labelled ``c`` and ``I_c`` sums the
probability of ``c`` on those pixels (SMP computes ``I`` as ``(P + N - |p - onehot|_1) / 2``, the
same number). ``P`` comes from the cross-entropy kernel's own log-softmax
(:func:`~segohem.losses._pixel_ce.pixel_cross_entropy_and_class_sums`) and ``I`` from the
per-pixel cross-entropy (``p(true class) = exp(-ce)``), so the term costs a few passes over the
``(B, *spatial)`` pixels instead of SMP's many over ``(B, C, *spatial)``. Sync-free and
deterministic: on CPU one ``index_add`` (in index order), elsewhere one reduction per class
(no float atomics).
"""

from __future__ import annotations

import torch
from torch import Tensor

SMP_EPS = 1e-7
"""``DiceLoss``'s default ``eps``: the denominator's floor."""


def soft_dice_from_sums(prob_sums: Tensor, ce: Tensor, labels: Tensor, valid: Tensor,
                        eps: float = SMP_EPS) -> Tensor:
    """SMP's multiclass soft Dice loss (scalar, float32) from per-class sums.

    Args:
        prob_sums: ``(C,)`` float32 softmax probability of each class summed over the valid
            pixels (differentiable).
        ce: per-pixel cross-entropy in nats, any shape with ``labels.numel()`` elements
            (differentiable), its values on invalid pixels unused.
        labels: ``(B, *spatial)`` int64 class ids, anything where not ``valid``.
        valid: ``(B, *spatial)`` bool.
        eps: floor of ``(P_c + N_c) / 2``.
    """
    num_classes = prob_sums.shape[0]
    labels, valid = labels.reshape(-1), valid.reshape(-1)
    p_true = torch.where(valid, torch.exp(-ce.reshape(-1)), 0.0)
    masked = torch.where(valid, labels, num_classes)  # num_classes: no class
    if p_true.device.type == "cpu":  # one pass; CPU index_add adds in index order
        bins = p_true.new_zeros(num_classes + 1)
        inter = bins.index_add(0, masked, p_true)[:num_classes]
        count = bins.index_add(0, masked, valid.to(torch.float32))[:num_classes]
    else:  # float atomics would make the sums order-dependent: one reduction per class
        hit = [masked == c for c in range(num_classes)]
        inter = torch.stack([torch.where(h, p_true, 0.0).sum() for h in hit])
        count = torch.stack([h.sum() for h in hit]).to(torch.float32)
    score = inter / (0.5 * (prob_sums + count)).clamp_min(eps)
    return torch.where(count > 0, 1.0 - score, 0.0).mean()
