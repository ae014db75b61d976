"""Per-class hard pixels for the minority rectification loss: which classes are minority
classes, their hard positives and negatives, and the logits rows at those pixels.

All of it is sync-free with static shapes (``k`` is a Python int), so it compiles to one
graph.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor


def minority_classes(counts: Tensor, rho: float) -> Tensor:
    """Which classes of a batch are *minority* classes (sync-free).

    Classes are taken in increasing order of their pixel count (ties: lower class id
    first) while the cumulative count stays ``<= rho * valid``; of those, classes with
    fewer than 2 pixels are dropped (absent classes count 0 and never qualify).

    Args:
        counts: ``(C,)`` int64 valid pixels per class.
        rho: fraction of the valid pixels the minority classes may cover together.

    Returns:
        ``(C,)`` bool.
    """
    order = torch.sort(counts, stable=True).indices
    cumulative = counts[order].cumsum(0).to(torch.float64)
    limit = rho * counts.sum().to(torch.float64)
    within = torch.zeros_like(counts, dtype=torch.bool).scatter(0, order, cumulative <= limit)
    return within & (counts >= 2)


def row_top_k(score: Tensor, k: int, chunk: int = 512) -> tuple[Tensor, Tensor]:
    """``score.topk(k, dim=1)`` of ``score (R, N)``, by chunks when the rows are long.

    Each row is cut into chunks of ``m`` entries (``m``: the largest power of two dividing
    ``N``, at most ``chunk``); the ``k`` largest entries lie in the ``k`` chunks with the
    largest maxima (a chunk holding none of them has a maximum no larger than the ``k``-th
    largest value), so one ``amax`` pass and a top-k over ``k * m`` candidates replace the
    top-k over ``N`` entries (3-4x faster on CPU for ``k=32, N=2**19``). Same values as
    ``topk``; ties may pick other indices.

    Returns:
        ``(values, indices)``, ``(R, k)`` each, in decreasing order of value.
    """
    rows, n = score.shape
    m = min(chunk, n & -n)
    if m < 64 or n // m <= k:
        return score.topk(k, dim=1)
    chunks = score.view(rows, n // m, m)
    best = chunks.amax(2).topk(k, dim=1).indices                              # (R, k)
    candidates = chunks.gather(1, best[:, :, None].expand(rows, k, m)).reshape(rows, k * m)
    values, position = candidates.topk(k, dim=1)
    return values, best.gather(1, position // m) * m + position % m


def top_k_over_batch(score: Tensor, k: int) -> Tensor:
    """Flat pixel indices ``(C, k)`` into ``(B * P)`` of the ``k <= B * P`` largest entries of
    each class of ``score (B, C, P)`` (contiguous) over all images (top-k per image and
    class, merged), in decreasing order of score."""
    batch, classes, pixels = score.shape
    values, index = row_top_k(score.view(batch * classes, pixels), min(k, pixels))
    index = index.view(batch, classes, -1) + (
        torch.arange(batch, device=score.device) * pixels)[:, None, None]
    values = values.view(batch, classes, -1).transpose(0, 1).reshape(classes, -1)
    best = values.topk(k, dim=1).indices
    return index.transpose(0, 1).reshape(classes, -1).gather(1, best)


@torch.no_grad()
def hard_pixels(log_prob: Tensor, labels: Tensor, in_range: Tensor, k: int
                ) -> tuple[Tensor, Tensor]:
    """Per class ``c``, the ``k`` pixels of class ``c`` with the lowest ``log p_c`` (hard
    positives) and the ``k`` pixels of other classes with the highest ``log p_c`` (hard
    negatives), over all images.

    Two top-k passes over one ``(B, C, P)`` buffer, ``log_prob`` itself, ranked in place:
    non-candidates are set to ``-inf``; for the negatives, the pixel's own class and
    ignored pixels; for the positives, the own-class entries then hold ``max(-log p, tiny)
    > 0``, above every ``log p <= 0`` of the other classes, so each class's candidates come
    first in its top-k (slots past a class's pixel count hold other pixels: the caller
    masks them). Ties may pick different pixels with the same score.

    On return, ``log_prob`` holds its input values at every in-range pixel's own class,
    ``-inf`` at every entry of the other pixels, and elsewhere ``max(log p, finfo.min)``:
    all that :func:`~segohem.losses._pixel_ce.pixel_cross_entropy` reads of a lent buffer.

    Args:
        log_prob: ``(B, C, P)`` float32 log-softmax, modified in place as described.
        labels: ``(B, P)`` int64.
        in_range: ``(B, P)`` bool, valid pixels with a label in ``[0, C)``.
        k: pixels per class, ``1 <= k <= B * P``.

    Returns:
        ``(positives, negatives)``: ``(C, k)`` int64 flat indices into ``B * P`` each.
    """
    safe = torch.where(in_range, labels, 0)[:, None]                          # (B, 1, P)
    own = log_prob.gather(1, safe)                                            # (B, 1, P)
    # Finite real scores, so that -inf marks exactly the non-candidates (logits of -inf).
    log_prob.clamp_min_(torch.finfo(log_prob.dtype).min)
    log_prob.masked_fill_(~in_range[:, None], -math.inf)
    log_prob.scatter_(1, safe, -math.inf)
    negatives = top_k_over_batch(log_prob, k)
    tiny = torch.finfo(log_prob.dtype).tiny
    log_prob.scatter_(1, safe, torch.where(in_range[:, None], (-own).clamp_min(tiny), -math.inf))
    positives = top_k_over_batch(log_prob, k)
    log_prob.scatter_(1, safe, torch.where(in_range[:, None], own, -math.inf))
    return positives, negatives


class _PixelRowsSparseGrad(torch.autograd.Function):
    """``logits[image, :, *coords]`` with a sparse COO gradient: ``O(N C)`` in backward,
    where indexing allocates a zero-filled ``(B, C, *spatial)`` gradient that autograd then
    adds to the other gradients of the logits (two full passes, page-faulted on CPU)."""

    @staticmethod
    def forward(ctx: Any, logits: Tensor, image: Tensor, *coords: Tensor) -> Tensor:
        ctx.save_for_backward(image, *coords)
        ctx.shape = logits.shape
        return logits[(image, slice(None), *coords)]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_rows: Tensor) -> tuple[Tensor | None, ...]:
        image, *coords = ctx.saved_tensors
        rows, classes = grad_rows.shape
        class_ids = torch.arange(classes, device=grad_rows.device).repeat(rows)
        index = torch.stack([image.repeat_interleave(classes), class_ids,
                             *(c.repeat_interleave(classes) for c in coords)])
        grad = torch.sparse_coo_tensor(index, grad_rows.reshape(-1), ctx.shape,
                                       check_invariants=False)
        return (grad,) + (None,) * (1 + len(coords))


def pixel_rows(logits: Tensor, index: Tensor, sparse_grad: bool = False) -> Tensor:
    """The class logits of the pixels at flat indices ``index``.

    Args:
        logits: ``(B, C, *spatial)``.
        index: ``(N,)`` int64 flat indices into ``B * prod(spatial)``.
        sparse_grad: on CPU in eager mode, give ``logits`` a sparse gradient, which autograd
            adds into the other (dense) gradients of the logits at ``O(N C)`` cost. Only
            when something else back-propagates a dense gradient into ``logits`` too (a
            sparse gradient alone would reach the model's layers or ``logits.grad``).

    Returns:
        ``(N, C)`` in the logits' dtype, differentiable.
    """
    spatial = logits.shape[2:]
    image, offset = index // math.prod(spatial), index % math.prod(spatial)
    coords = torch.unravel_index(offset, spatial)
    sparse = (sparse_grad and logits.device.type == "cpu" and logits.requires_grad
              and torch.is_grad_enabled() and not torch.compiler.is_compiling())
    if sparse:
        return _PixelRowsSparseGrad.apply(logits, image, *coords)
    return logits[(image, slice(None), *coords)]
