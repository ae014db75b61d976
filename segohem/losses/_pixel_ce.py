"""Per-pixel cross-entropy whose backward reuses the saved log-softmax as the gradient.

``F.cross_entropy(..., reduction="none")`` saves the log-softmax ``(B, C, H, W)`` for
backward, and its backward allocates two more tensors of that size (the zero-filled
``nll_loss`` gradient and the ``log_softmax`` gradient). Here the backward turns the
saved log-softmax into the gradient in place,

    d ce / d logits = softmax(logits) - onehot(label) = exp(log_softmax) - onehot,

so no float32 ``(B, C, H, W)`` tensor is allocated in backward (with half-precision
logits, the half-precision gradient itself is the only new one): lower peak memory, and
on CPU (where fresh large buffers are page-faulted in) about half the time of
``F.cross_entropy``. Forward values are bit-identical to ``F.cross_entropy``.

Because the saved buffer is consumed, the graph cannot be backpropagated twice
(``retain_graph=True`` followed by a second backward raises), and double backward and
``torch.func`` transforms (``grad``, ``vmap``) are not supported.

A caller that needs the log-softmax of the same logits for something else (the minority
rectification loss ranks pixels on it) computes it once and lends it to the loss inside
:func:`lend_log_softmax`: the per-pixel cross-entropy then uses that buffer instead of
computing its own, and consumes it in backward as usual.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from segohem.losses._determinism import order_independent_atomics

_LENT: ContextVar[tuple[Tensor, Tensor] | None] = ContextVar("segohem_lent_log_softmax",
                                                              default=None)


@contextlib.contextmanager
def lend_log_softmax(logits: Tensor, log_prob: Tensor) -> Iterator[None]:
    """Within the block, :func:`pixel_cross_entropy` of exactly ``logits`` (the same tensor
    object) uses ``log_prob`` instead of computing the log-softmax again.

    Args:
        logits: ``(B, C, *spatial)``.
        log_prob: ``F.log_softmax(logits, 1, dtype=torch.float32)`` computed by the caller,
            detached. The loss takes it over: it is turned into the gradient in backward, so
            the caller must be done with it before backward. Its entries may differ from the
            log-softmax where their gradient and the loss do not depend on them: ``-inf``
            (or any value with ``exp(value) == 0``) on pixels that are not ``valid``.

    A no-op while compiling (the loss then computes its own log-softmax).
    """
    if torch.compiler.is_compiling():
        yield
        return
    token = _LENT.set((logits, log_prob))
    try:
        yield
    finally:
        _LENT.reset(token)


_CONSUMED = ("segohem's per-pixel cross-entropy turns its saved log-softmax into the gradient "
             "in place, so its graph can be backpropagated only once; compute the loss again "
             "instead of using retain_graph=True.")


class _PixelCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, logits: Tensor, labels: Tensor, valid: Tensor,
                log_prob: Tensor | None) -> Tensor:
        if log_prob is None:
            log_prob = F.log_softmax(logits, dim=1, dtype=torch.float32)
        safe = torch.where(valid, labels, 0).unsqueeze(1)
        ce = torch.where(valid, log_prob.gather(1, safe).squeeze(1).neg(), 0.0)
        ctx.save_for_backward(log_prob, safe, valid)
        ctx.logits_dtype = logits.dtype
        ctx.consumed = False
        return ce

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_ce: Tensor) -> tuple[Tensor, None, None, None]:
        if ctx.consumed:
            raise RuntimeError(_CONSUMED)
        ctx.consumed = True
        log_prob, safe, valid = ctx.saved_tensors
        scale = torch.where(valid, grad_ce, 0.0).unsqueeze(1)  # (B, 1, *spatial)
        grad = log_prob.exp_().mul_(scale)
        # Subtract the one-hot term: one write per pixel, so the atomics are exact.
        with order_independent_atomics(grad.device):
            grad.scatter_add_(1, safe, scale.neg())
        return grad.to(ctx.logits_dtype), None, None, None


class _PixelCrossEntropyAndClassSums(torch.autograd.Function):
    """:class:`_PixelCrossEntropy` that also returns ``S_c = sum over valid pixels of
    softmax_c`` ``(C,)``; the backward adds ``S``'s gradient into the same in-place buffer:

        d/dz_k = g (p_k - [k = y]) + v p_k (G_k - sum_c G_c p_c)

    (``g`` = d loss / d ce of the pixel, ``G`` = d loss / d S, ``v`` = valid). Class by class
    over the saved buffer (each slice in cache), so no temporary of the logits' size is
    allocated in forward or backward."""

    @staticmethod
    def forward(ctx: Any, logits: Tensor, labels: Tensor, valid: Tensor,
                log_prob: Tensor | None) -> tuple[Tensor, Tensor]:
        if log_prob is None:
            log_prob = F.log_softmax(logits, dim=1, dtype=torch.float32)
        safe = torch.where(valid, labels, 0).unsqueeze(1)
        ce = torch.where(valid, log_prob.gather(1, safe).squeeze(1).neg(), 0.0)
        sums = _masked_prob_sums(log_prob, valid)
        ctx.save_for_backward(log_prob, safe, valid)
        ctx.logits_dtype = logits.dtype
        ctx.consumed = False
        return ce, sums

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_ce: Tensor, grad_sums: Tensor
                 ) -> tuple[Tensor, None, None, None]:
        if ctx.consumed:
            raise RuntimeError(_CONSUMED)
        ctx.consumed = True
        log_prob, safe, valid = ctx.saved_tensors
        scale = torch.where(valid, grad_ce, 0.0).unsqueeze(1)  # (B, 1, *spatial)
        grad, v = log_prob, valid.unsqueeze(1).to(torch.float32)
        dot = torch.zeros_like(scale)  # sum_c G_c p_c, accumulated class by class while the
        for c in range(grad.shape[1]):  # slice is in cache: no temporary of the logits' size
            dot.addcmul_(grad[:, c:c + 1].exp_(), grad_sums[c])
        base = torch.addcmul(scale, v, dot, value=-1.0)
        coef = torch.empty_like(base)
        for c in range(grad.shape[1]):
            grad[:, c:c + 1].mul_(torch.addcmul(base, v, grad_sums[c], out=coef))
        with order_independent_atomics(grad.device):
            grad.scatter_add_(1, safe, scale.neg())
        return grad.to(ctx.logits_dtype), None, None, None


_SUM_CHUNK = 1 << 16
"""Pixels per chunk when summing probabilities: small temporaries, no buffer of the logits'
size (fresh large buffers are page-faulted in on every call on CPU)."""


def _masked_prob_sums(log_prob: Tensor, valid: Tensor) -> Tensor:
    """``(C,)`` float32 ``sum over valid pixels of exp(log_prob)``, in chunks of pixels."""
    flat, weight = log_prob.flatten(2), valid.flatten(1).to(torch.float32)
    sums = log_prob.new_zeros(log_prob.shape[1])
    for b in range(flat.shape[0]):
        for start in range(0, flat.shape[2], _SUM_CHUNK):
            stop = start + _SUM_CHUNK
            sums = sums + flat[b, :, start:stop].exp() @ weight[b, start:stop]
    return sums


def pixel_cross_entropy(logits: Tensor, labels: Tensor, valid: Tensor) -> Tensor:
    """Unweighted per-pixel cross-entropy in float32.

    Args:
        logits: ``(B, C, *spatial)`` any floating dtype (computed in float32: AMP safe).
        labels: ``(B, *spatial)`` int64 class ids; entries outside ``valid`` may hold anything.
        valid: ``(B, *spatial)`` bool, the pixels that count (``labels != ignore_index``).

    Returns:
        ``(B, *spatial)`` float32 losses in nats, exactly 0 where ``valid`` is False.

    Raises:
        RuntimeError: (CPU) a valid label outside ``[0, C)``; on CUDA that is a device assert.
    """
    lent = None if torch.compiler.is_compiling() else _LENT.get()
    log_prob = lent[1] if lent is not None and lent[0] is logits else None
    return _PixelCrossEntropy.apply(logits, labels, valid, log_prob)


def pixel_cross_entropy_and_class_sums(logits: Tensor, labels: Tensor, valid: Tensor
                                       ) -> tuple[Tensor, Tensor]:
    """:func:`pixel_cross_entropy` plus the softmax probability of each class summed over the
    valid pixels, ``(C,)`` float32 (differentiable; the soft Dice term's ``|P|``), from the same
    log-softmax buffer."""
    lent = None if torch.compiler.is_compiling() else _LENT.get()
    log_prob = lent[1] if lent is not None and lent[0] is logits else None
    return _PixelCrossEntropyAndClassSums.apply(logits, labels, valid, log_prob)
