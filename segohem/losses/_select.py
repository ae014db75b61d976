"""Sync-free k-th largest value of non-negative float32 losses (radix select).

``torch.topk`` / ``torch.kthvalue`` need ``k`` as a Python int, and OHEM's ``k``
(e.g. ``valid_pixels // 16``) lives on the device, so using them would force a
host-device sync; sorting every pixel is 2-4x the cost of the loss itself.

Instead, the float32 bit pattern of a non-negative float is order-preserving
when read as an int32, so two histogram passes find the k-th largest value
exactly with a fixed amount of work and no data-dependent shapes:

1. histogram of the high 16 bits (sign is 0, so 2**15 bins) -> the bin that
   holds the k-th largest value and the count of values above that bin;
2. histogram of the low 16 bits of the values inside that bin -> the exact bits.

``-0.0`` (which ``nll_loss`` emits for a pixel with log-probability 0) has the
sign bit set; its int pattern is clamped to 0 so it ranks equal to ``+0.0``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from segohem.losses._determinism import order_independent_atomics

_HI_BINS = 1 << 15  # bits 30..16 (the sign bit is 0 after clamping)
_LO_BINS = 1 << 16  # bits 15..0
SORT_BELOW_PIXELS = 1 << 14
"""Rows shorter than this are ranked by a row-wise sort when there are several rows (per-
image mining of small images): the histograms cost ~2**17 bins per row whatever its
length, which for many short rows is far more than sorting them (measured on CPU: 256
rows of 1024 values, 360 ms by histogram vs 6 ms by sort)."""


class KthLargest(NamedTuple):
    """Result of :func:`kth_largest`, one entry per group, all shape ``(G,)``."""

    value: Tensor
    """float32, the k-th largest counted value (meaningless where ``k == 0``)."""
    n_greater: Tensor
    """int64, number of counted values strictly greater than ``value``."""
    n_equal: Tensor
    """int64, number of counted values equal to ``value``."""


def row_histogram(keys: Tensor, bins: int) -> Tensor:
    """Per-row histogram of ``(G, P)`` int32 keys in ``[0, bins)`` -> ``(G, bins)`` int64."""
    groups = keys.shape[0]
    if groups > 1:
        # int32 keys unless the offsets would overflow (static, from the shapes).
        dtype = torch.int32 if groups * bins < 2**31 else torch.int64
        offsets = torch.arange(groups, device=keys.device, dtype=dtype) * bins
        keys = keys.to(dtype) + offsets[:, None]
    flat = keys.reshape(-1)
    if flat.device.type == "cpu" and not torch.compiler.is_compiling():
        # Fastest on CPU. Not used elsewhere: on CUDA bincount reads max(keys) back to
        # the host, and the compiler cannot prove its output size is static.
        hist = torch.bincount(flat, minlength=groups * bins)
    else:
        count_dtype = torch.int32 if flat.numel() < 2**31 else torch.int64
        hist = torch.zeros(groups * bins, dtype=count_dtype, device=flat.device)
        with order_independent_atomics(flat.device):  # integer adds are exact
            hist.index_add_(0, flat, torch.ones_like(flat, dtype=count_dtype))
        hist = hist.to(torch.int64)
    return hist.view(groups, bins)



def _select_bin(hist: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
    """Find, per row, the highest bin ``b`` with ``count(bins >= b) >= k``.

    Args:
        hist: ``(G, M)`` int64 bin counts.
        k: ``(G,)`` int64 ranks (1 = largest); for ``k == 0`` the top bin is returned.

    Returns:
        ``(bin, n_above)``: ``(G,)`` int64 bin index and the count in bins above it.
    """
    at_or_above = hist.flip(1).cumsum(1).flip(1)  # non-increasing along dim 1
    chosen = (at_or_above >= k[:, None]).sum(1) - 1
    padded = torch.nn.functional.pad(at_or_above, (0, 1))
    n_above = padded.gather(1, (chosen + 1)[:, None]).squeeze(1)
    return chosen, n_above


def kth_largest(values: Tensor, k: Tensor, n_excluded: Tensor | None = None,
                reduce: Callable[[Tensor], Tensor] | None = None) -> KthLargest:
    """Exact k-th largest value per row, without host-device sync.

    Excluded entries (e.g. ignored pixels) must hold ``0.0`` or ``-0.0``; ``n_excluded``
    of the zeros in each row are then left out of the ranking, which spares a mask.

    Args:
        values: ``(G, P)`` float32, non-negative (``-0.0`` counts as ``0.0``).
        k: ``(G,)`` int64 rank per row, ``0 <= k <= P - n_excluded``; 1 is the largest.
        n_excluded: ``(G,)`` int64 number of zero entries per row that do not count.
        reduce: optional sum across processes (e.g. DDP ranks) applied to both histograms:
            then each row is ranked as if the rows of all processes were concatenated
            (``k`` counts over all of them) and every process gets the same result.

    Returns:
        :class:`KthLargest` with ``(G,)`` tensors. Ties are reported through
        ``n_equal`` so callers can share the boundary rank among tied entries.
    """
    if values.dtype != torch.float32:
        raise TypeError(f"kth_largest expects float32 values, got {values.dtype}")
    groups, pixels = values.shape
    if groups > 1 and pixels < SORT_BELOW_PIXELS and reduce is None:
        return _kth_largest_by_sort(values.detach(), k, n_excluded)
    bits = values.detach().view(torch.int32).clamp_min(0)

    high = bits >> 16
    hist_hi = row_histogram(high, _HI_BINS)
    if n_excluded is not None:
        hist_hi[:, 0] -= n_excluded
    if reduce is not None:
        hist_hi = reduce(hist_hi)
    bin_hi, n_above_hi = _select_bin(hist_hi, k)

    # Pass 2: low 16 bits of the values inside bin_hi. XOR with the bin's prefix leaves
    # exactly those values below 2**16 (their low bits); any other value becomes
    # 2**16 + (its high bits XOR the prefix), which keeps the discard bins spread out (a
    # histogram whose keys all hit one counter is several times slower on CPU), and
    # min/xor/shift are cheaper than a masked select.
    mixed = bits ^ (bin_hi.to(torch.int32) << 16)[:, None]
    keys = torch.minimum(mixed, (mixed >> 16).add_(_LO_BINS))
    hist_lo = row_histogram(keys, _LO_BINS + _HI_BINS)[:, :_LO_BINS]
    if n_excluded is not None:
        hist_lo[:, 0] -= torch.where(bin_hi == 0, n_excluded, 0)
    if reduce is not None:
        hist_lo = reduce(hist_lo)
    bin_lo, n_above_lo = _select_bin(hist_lo, k - n_above_hi)

    kth_bits = ((bin_hi << 16) | bin_lo).to(torch.int32)
    n_equal = hist_lo.gather(1, bin_lo[:, None]).squeeze(1)
    return KthLargest(kth_bits.view(torch.float32), n_above_hi + n_above_lo, n_equal)


def _kth_largest_by_sort(values: Tensor, k: Tensor, n_excluded: Tensor | None) -> KthLargest:
    """:func:`kth_largest` by a row-wise descending sort (static shapes, no sync).

    Excluded entries are zeros, so they sort below every counted positive value and tie
    with counted zeros; only ``n_equal`` needs correcting when the k-th value is 0.
    """
    ordered = values.sort(dim=1, descending=True).values
    kth = ordered.gather(1, (k - 1).clamp_min(0)[:, None]).squeeze(1).abs()  # -0.0 -> 0.0
    n_greater = (values > kth[:, None]).sum(1)
    n_equal = (values == kth[:, None]).sum(1)
    if n_excluded is not None:
        n_equal = n_equal - torch.where(kth == 0, n_excluded, 0)
    return KthLargest(kth, n_greater, n_equal)
