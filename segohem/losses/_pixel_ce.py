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
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from segohem.losses._determinism import order_independent_atomics


class _PixelCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, logits: Tensor, labels: Tensor, valid: Tensor) -> Tensor:
        log_prob = F.log_softmax(logits, dim=1, dtype=torch.float32)
        safe = torch.where(valid, labels, 0).unsqueeze(1)
        ce = torch.where(valid, log_prob.gather(1, safe).squeeze(1).neg(), 0.0)
        ctx.save_for_backward(log_prob, safe, valid)
        ctx.logits_dtype = logits.dtype
        ctx.consumed = False
        return ce

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_ce: Tensor) -> tuple[Tensor, None, None]:
        if ctx.consumed:
            raise RuntimeError(
                "segohem's per-pixel cross-entropy turns its saved log-softmax into the "
                "gradient in place, so its graph can be backpropagated only once; compute "
                "the loss again instead of using retain_graph=True.")
        ctx.consumed = True
        log_prob, safe, valid = ctx.saved_tensors
        scale = torch.where(valid, grad_ce, 0.0).unsqueeze(1)  # (B, 1, *spatial)
        grad = log_prob.exp_().mul_(scale)
        # Subtract the one-hot term: one write per pixel, so the atomics are exact.
        with order_independent_atomics(grad.device):
            grad.scatter_add_(1, safe, scale.neg())
        return grad.to(ctx.logits_dtype), None, None


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
    return _PixelCrossEntropy.apply(logits, labels, valid)
