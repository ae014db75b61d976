"""Online hard example mining cross-entropy (CoinCheung/BiSeNet semantics, made safe)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from torch import Tensor

from segohem.losses._mining import resolve_count
from segohem.losses._mining_ce import MiningCrossEntropy, MiningOptions
from segohem.losses._validate import Count, check_count, check_probability

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack from Python 3.11


class OhemCELoss(MiningCrossEntropy):
    """Cross-entropy averaged over the hard pixels only.

    A valid pixel is *hard* when its cross-entropy exceeds ``-log(thresh)``, i.e. the
    predicted probability of its true class is below ``thresh``. The loss is the mean
    cross-entropy over the hard pixels; when fewer than ``n_min`` pixels are hard it is
    the mean of the ``n_min`` largest per-pixel losses instead (CoinCheung/BiSeNet's
    ``OhemCELoss``). Pixels labelled ``ignore_index`` never count.

    Shapes: ``logits (B, C, H, W)`` (any float dtype, computed in float32, so it is AMP
    safe; any number of spatial dims works), ``labels (B, H, W)`` integer class ids in
    ``[0, C)`` or ``ignore_index``. Returns a float32 scalar.

    ``n_min``:
        ``None`` -> ``valid // 16`` (BiSeNet's rule, ``valid`` = non-ignored pixels of
        the batch, or of the image with ``per_image=True``); an ``int`` -> that many
        pixels; a ``float`` in (0, 1] -> ``floor(n_min * valid)``. It is capped at
        ``valid``. From other toolkits: mmsegmentation's ``min_kept`` is per image (use
        ``per_image=True, n_min=min_kept``, or ``n_min=min_kept * B`` for batch mining);
        PaddleSeg's and HRNet's ``min_kept`` are per GPU batch (``n_min=min_kept``).

    Weights:
        With ``weight`` (per class, as in ``F.cross_entropy``), hardness is still judged
        on the unweighted cross-entropy (``thresh`` stays a probability), and the loss is
        the weighted mean over the kept pixels, ``sum_i w[y_i] * ce_i / sum_i w[y_i]``
        (the normalisation of ``F.cross_entropy``'s ``'mean'``, restricted to the kept
        pixels); 0 if the kept weights sum to 0.

    Ties:
        In the fallback, pixels whose loss equals the ``n_min``-th largest value share
        the remaining rank equally: without ``weight`` the value is the mean of the
        ``n_min`` largest losses under any tie-break; with ``weight`` (tied pixels of
        different classes) it is the average over the possible tie-breaks. The gradient
        is the symmetric one.

    Non-finite logits give a non-finite loss (nothing is silently dropped).

    Degenerate batches:
        A batch (per image: an image) without a valid pixel contributes a zero loss that
        still backpropagates (zero gradients): never NaN, never an exception. With
        ``n_min=None`` and fewer than 16 valid pixels ``n_min`` is 0, so the loss is the
        mean over the hard pixels, or 0 with zero gradients when none is hard (where
        BiSeNet's version returns NaN).

    Synchronisation:
        Forward and backward never wait for the device: the ``n_min``-th largest loss is
        found by a fixed two-pass radix select (:mod:`segohem.losses._select`). The only
        sync is the label range check (``check_labels=True``, the default), which must
        read one flag back to raise a ``ValueError``; turn it off when the data pipeline
        already validates labels (segohem's datasets do).

    Args:
        thresh: probability threshold in (0, 1]; hard = p(true class) < thresh.
        n_min: minimum number of kept pixels (see above).
        **options: ``ignore_index``, ``weight``, ``per_image``, ``check_labels``,
            ``sync_across_ranks`` (:class:`~segohem.losses._mining_ce.MiningCrossEntropy`).

    Attributes:
        last_stats: :class:`~segohem.losses.MiningStats` of the last call (detached).
    """

    fallback_rule = ("n_min fallback", "the threshold decided",
                     "dominated: the threshold rarely kept n_min pixels; raise loss.thresh or "
                     "lower loss.n_min")
    """The end-of-run ``Mining:`` line's words for the ``fallback`` statistic: the fallback,
    the verdict when the threshold decided, the one when the fallback dominated."""

    def __init__(self, thresh: float = 0.7, n_min: Count = None,
                 **options: Unpack[MiningOptions]) -> None:
        super().__init__(**options)
        self.thresh = check_probability(
            "thresh", thresh, hint=" It is the probability of the true class below which a "
            "pixel is hard; typical values are 0.5-0.9.")
        self.n_min = check_count("n_min", n_min)

    def loss_threshold(self) -> float:
        """``-log(thresh)`` in nats: pixels with a larger cross-entropy are hard."""
        return -math.log(self.thresh) + 0.0  # + 0.0 turns -0.0 (thresh=1) into 0.0

    def min_kept(self, n_valid: Tensor) -> Tensor:
        return resolve_count(self.n_min, n_valid)

    def extra_repr(self) -> str:
        return (f"thresh={self.thresh}, n_min={self.n_min}, ignore_index={self.ignore_index}, "
                f"per_image={self.per_image}, weighted={self.weight is not None}")
