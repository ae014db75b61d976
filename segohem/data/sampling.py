"""Rare-class sampling (RCS, DAFormer: Hoyer et al., CVPR 2022): training images drawn so that
classes present in few images are seen more often.

Per epoch, each draw picks a class ``c`` with probability

    P(c) ∝ exp((1 - f_c) / T)

where ``f_c`` is the class's share of the labelled training pixels (``ignore_index`` pixels
are not a class) and ``T`` the temperature (DAFormer's default 0.01; larger ``T`` flattens P
towards uniform over the classes, smaller concentrates it on the rarest), then a uniformly
random training image that contains ``c``. Classes present in no training image get P = 0.

Under DDP the sampler yields the whole epoch's draws on every rank (they depend on
``(seed, epoch)`` only, so the ranks agree) and Lightning shards them: with
``Trainer(use_distributed_sampler=True)`` (the default) Lightning wraps any sampler that is not
a ``DistributedSampler`` in ``lightning.fabric.utilities.distributed.DistributedSamplerWrapper``.
That wrapper materialises our epoch's list, permutes its positions with ``seed + epoch``
(``PL_GLOBAL_SEED``, the run seed) and gives rank ``r`` positions ``r::world_size`` of the
permutation (padded to equal length like ``DistributedSampler``): each rank a disjoint share,
together the whole epoch. Its ``set_epoch`` (called by Lightning's fit loop each epoch, with
the epoch restored from a checkpoint on resume) is forwarded to this sampler. With
``use_distributed_sampler=False`` every rank would train on the full epoch: keep it on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from torch.utils.data import Sampler

from segohem.config.checks import ConfigError

log = logging.getLogger(__name__)

DEFAULT_TEMPERATURE = 0.01
"""DAFormer's T for pixel-frequency ``f_c`` (the same quantity as our ``pixel_share``)."""


SAMPLERS = ("rare_class",)
"""The values of ``data.sampler`` besides null (plain shuffling)."""


def check_temperature(temperature: Any) -> None:
    """ValueError naming ``data.sampler_temperature`` unless it is a finite number > 0."""
    if (isinstance(temperature, bool) or not isinstance(temperature, (int, float))
            or not (temperature > 0 and np.isfinite(temperature))):
        raise ValueError(f"data.sampler_temperature={temperature!r}: expected a number > 0 "
                         f"(DAFormer uses {DEFAULT_TEMPERATURE}; larger is closer to uniform "
                         f"over the classes).")


def check_sampler(name: Any, temperature: Any) -> None:
    """ConfigError naming the option for a ``data.sampler`` / temperature that cannot work."""
    if name is not None and name not in SAMPLERS:
        raise ConfigError(f"data.sampler={name!r}: expected null (shuffle the training set) or "
                          f"one of {list(SAMPLERS)}, e.g. data.sampler=rare_class.")
    if name is not None:
        try:
            check_temperature(temperature)
        except ValueError as err:
            raise ConfigError(str(err)) from None


def rcs_probabilities(presence: np.ndarray, pixel_share: np.ndarray,
                      temperature: float = DEFAULT_TEMPERATURE) -> np.ndarray:
    """``(C,)`` float64 class probabilities ``∝ exp((1 - f_c) / T)``, 0 for classes in no image.

    Args:
        presence: ``(N, C)`` bool, image ``i`` contains class ``c``.
        pixel_share: ``(C,)`` share of the labelled training pixels per class (sums to 1).
        temperature: T > 0.

    Raises:
        ValueError: bad shapes, ``T <= 0``, or no class present in any image.
    """
    presence = np.asarray(presence, dtype=bool)
    share = np.asarray(pixel_share, dtype=np.float64)
    if presence.ndim != 2 or share.shape != (presence.shape[1],):
        raise ValueError(f"presence must be (N, C) and pixel_share (C,); got "
                         f"{presence.shape} and {share.shape}.")
    check_temperature(temperature)
    drawable = presence.any(axis=0)
    if not drawable.any():
        raise ValueError("rare-class sampling: no class is present in any training image "
                         "(all masks empty or ignore): nothing to sample.")
    logits = np.where(drawable, (1.0 - share) / temperature, -np.inf)
    weights = np.exp(logits - logits[drawable].max())  # shifted: no overflow for small T
    return weights / weights.sum()


class RareClassSampler(Sampler[int]):
    """Training-set indices drawn by rare-class sampling (see the module docstring).

    Yields ``num_samples`` indices per epoch (default: the number of training images, so the
    epoch length, and ``min_train_steps``'s estimate of the run length, are those of plain
    shuffling). The draws depend only on ``(seed, epoch)``: call :meth:`set_epoch` before each
    epoch (Lightning does, directly or through its DDP wrapper), so a resumed run draws the
    same later epochs as an uninterrupted one.

    Args:
        presence: ``(N, C)`` bool, training image ``i`` contains class ``c``.
        pixel_share: ``(C,)`` class shares of the labelled training pixels.
        temperature: T of ``P(c) ∝ exp((1 - f_c) / T)``.
        seed: the run seed.
        num_samples: draws per epoch (None: N).
    """

    def __init__(self, presence: np.ndarray, pixel_share: np.ndarray,
                 temperature: float = DEFAULT_TEMPERATURE, seed: int = 0,
                 num_samples: int | None = None) -> None:
        self.presence = np.asarray(presence, dtype=bool)
        self.probabilities = rcs_probabilities(self.presence, pixel_share, temperature)
        self.temperature = float(temperature)
        self.seed = int(seed)
        self.num_samples = len(self.presence) if num_samples is None else int(num_samples)
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {self.num_samples}.")
        self.epoch = 0
        self._images = [np.flatnonzero(column) for column in self.presence.T]

    def set_epoch(self, epoch: int) -> None:
        """Select epoch ``epoch``'s draws (like ``DistributedSampler.set_epoch``)."""
        self.epoch = int(epoch)

    def draws(self) -> tuple[np.ndarray, np.ndarray]:
        """This epoch's ``(classes, images)``: two ``(num_samples,)`` int64 arrays."""
        rng = np.random.default_rng([self.seed, self.epoch])
        classes = rng.choice(len(self.probabilities), size=self.num_samples,
                             p=self.probabilities)
        pick = rng.random(self.num_samples)
        images = np.empty(self.num_samples, dtype=np.int64)
        for c in np.unique(classes):
            where = classes == c
            candidates = self._images[c]
            images[where] = candidates[(pick[where] * len(candidates)).astype(np.int64)]
        return classes.astype(np.int64), images

    def __iter__(self) -> Iterator[int]:
        return iter(self.draws()[1].tolist())

    def __len__(self) -> int:
        return self.num_samples


def build_sampler(name: str | None, stats: Any, temperature: float, seed: int,
                  class_names: Sequence[str] | None = None) -> RareClassSampler | None:
    """The training sampler of ``data.sampler`` (None: plain shuffling) over ``stats``, the
    training set's :class:`~segohem.data.class_stats.ClassStats`; logs ``P(c)``.

    Raises:
        ConfigError: an unknown ``name``, a bad temperature, or no class statistics.
    """
    check_sampler(name, temperature)
    if name is None:
        return None
    if stats is None:
        raise ConfigError(f"data.sampler={name}: needs the training set's class statistics "
                          f"(which images hold which class), and there are none: keep "
                          f"data.class_stats=true and use a dataset that declares its classes, "
                          f"or set data.sampler=null.")
    sampler = RareClassSampler(stats.presence, stats.pixel_share, temperature, seed)
    summary = sampler_summary(sampler, class_names)
    log.info("Rare-class sampling (data.sampler=rare_class, T=%g): %d draws per epoch, "
             "P(class) = %s", temperature, len(sampler),
             describe_probabilities(summary["class_probability"]))
    return sampler


def sampler_summary(sampler: Sampler | None,
                    class_names: Sequence[str] | None = None) -> dict[str, Any]:
    """The ``sampler`` section of ``metrics.json``: ``{"name": "shuffle"}`` without a
    :class:`RareClassSampler`, else its name, temperature, seed and ``P(c)`` by class name
    (``class_<i>`` without names)."""
    if not isinstance(sampler, RareClassSampler):
        return {"name": "shuffle"}
    if class_names is None or len(class_names) != len(sampler.probabilities):
        class_names = [f"class_{i}" for i in range(len(sampler.probabilities))]
    return {"name": "rare_class", "temperature": sampler.temperature, "seed": sampler.seed,
            "class_probability": dict(zip(class_names, sampler.probabilities.tolist(),
                                          strict=True))}


def describe_probabilities(probabilities: Mapping[str, float]) -> str:
    """``name 41.2 %, ...`` for a log line (highest first)."""
    ranked = sorted(probabilities.items(), key=lambda item: -item[1])
    return ", ".join(f"{name} {100.0 * p:.1f} %" for name, p in ranked)
