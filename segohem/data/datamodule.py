"""``SegmentationDataModule``: train / val datasets -> DataLoaders."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.fabric.utilities.seed import pl_worker_init_function
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset, get_worker_info

from segohem.data.class_stats import (
    ClassStats,
    dataset_classes,
    split_statistics,
    stats_table,
    stats_warnings,
)
from segohem.data.sampling import (
    DEFAULT_TEMPERATURE,
    RareClassSampler,
    build_sampler,
    check_sampler,
    sampler_summary,
)
from segohem.data.split import HeldOutSplit, setup_held_out

log = logging.getLogger(__name__)


def seed_worker_transform(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: Lightning's worker seeding, then a distinct seed for
    the dataset's augmentation pipeline in each worker.

    albumentations 2 keeps its own random state inside ``Compose`` (seeded once from the
    config); every worker receives a copy of it, so without this all workers would repeat
    the same augmentation sequence (and, without persistent workers, every epoch too).
    PyTorch's per-worker seed derives from the run seed, so runs stay reproducible.
    """
    pl_worker_init_function(worker_id)
    info = get_worker_info()
    transform = getattr(info.dataset, "transform", None) if info is not None else None
    if hasattr(transform, "set_random_seed"):
        transform.set_random_seed(info.seed % 2**32)


class SegmentationDataModule(pl.LightningDataModule):
    """Wraps ready-made datasets whose items are ``{"image", "mask", "path"}`` dicts.

    Under DDP Lightning adds the distributed training sampler; validation uses an
    unrepeated one (see :meth:`_val_sampler`); ``batch_size`` is per device.

    Args:
        train_set: training dataset (transforms already attached).
        val_set: validation dataset.
        batch_size: training samples per device and step.
        val_batch_size: validation samples per device and step (None: ``batch_size``); 1 for
            datasets whose full-size validation images differ in size (VOC, ADE20K).
        num_workers: DataLoader worker processes (0: load in the main process).
        pin_memory: pin host memory; None: on when the trainer runs on a GPU.
        persistent_workers: keep workers alive between epochs (when num_workers > 0).
        drop_last: drop the last incomplete training batch (BatchNorm dislikes batches of 1).
        class_stats: compute the class statistics of both splits in ``setup("fit")`` (once per
            run; rank 0 first under DDP, the other ranks then read its cache): ``train_stats``
            / ``val_stats`` (:class:`~segohem.data.class_stats.ClassStats`, None before or
            without), logged as a table with warnings about image-rare classes and classes
            absent from val, read by the loss's class counts and ``metrics.json``.
        stats_cache_dir: their cache folder (None: ``$SEGOHEM_CACHE_DIR/class_stats`` or
            ``~/.cache/segohem/class_stats``).
        sampler: the training sampler: None (shuffle) or ``"rare_class"``
            (:class:`~segohem.data.sampling.RareClassSampler` over ``train_stats``: as many
            draws per epoch as training images; under DDP Lightning's wrapper shards them).
        sampler_temperature: rare_class's T (``P(c) ∝ exp((1 - pixel share) / T)``).
        seed: the run seed, from which the sampler's draws of each epoch follow.

    Attributes:
        resume_from: the checkpoint a fit resumes from (``segohem-train`` sets it): its
            held-out split lists replace a freshly drawn split.
        held_out: after ``setup("fit")``, the held-out split of a folder without split files
            (:func:`~segohem.data.split.setup_held_out`: drawn, or the resumed checkpoint's;
            written to ``<default_root_dir>/splits/`` by rank 0), else None; the module stores
            it in its checkpoints.
    """

    def __init__(self, train_set: Dataset, val_set: Dataset, batch_size: int = 8,
                 num_workers: int = 2, pin_memory: bool | None = None,
                 persistent_workers: bool = True, drop_last: bool = True,
                 val_batch_size: int | None = None, class_stats: bool = True,
                 stats_cache_dir: str | None = None, sampler: str | None = None,
                 sampler_temperature: float = DEFAULT_TEMPERATURE, seed: int = 0) -> None:
        super().__init__()
        check_sampler(sampler, sampler_temperature)
        if batch_size < 1:
            raise ValueError(f"dataset.batch_size must be >= 1, got {batch_size}.")
        if val_batch_size is not None and val_batch_size < 1:
            raise ValueError(f"dataset.val_batch_size must be >= 1, got {val_batch_size}.")
        if num_workers < 0:
            raise ValueError(f"dataset.num_workers must be >= 0, got {num_workers}.")
        self.train_set, self.val_set = train_set, val_set
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size or batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers and num_workers > 0
        self.drop_last = drop_last
        self.class_stats = class_stats
        self.stats_cache_dir = Path(stats_cache_dir).expanduser() if stats_cache_dir else None
        self.train_stats: ClassStats | None = None
        self.val_stats: ClassStats | None = None
        self.resume_from: str | None = None
        self.held_out: HeldOutSplit | None = None
        self.sampler, self.sampler_temperature, self.seed = sampler, sampler_temperature, seed
        self.train_sampler: RareClassSampler | None = None

    def setup(self, stage: str) -> None:
        """Before a fit (once): :attr:`held_out`, then :attr:`train_stats` /
        :attr:`val_stats` (see ``class_stats``)."""
        if stage == "fit" and self.trainer is not None and self.held_out is None:
            self.held_out = setup_held_out(self.train_set, self.val_set, self.resume_from,
                                           self.trainer.default_root_dir,
                                           self.trainer.is_global_zero)
        if stage != "fit" or not self.class_stats or self.train_stats is not None:
            return
        names = dataset_classes(self.train_set)
        if not names:
            log.info("No class statistics: %r declares no `classes`.", self.train_set)
            return
        trainer = self.trainer
        first = trainer is None or trainer.is_global_zero
        stats = None
        try:  # rank 0 decodes and fills the cache, then the other ranks read it
            if first:
                stats = self._statistics(names, report=True)
        finally:
            if trainer is not None and trainer.world_size > 1:
                trainer.strategy.barrier("segohem_class_stats")
        self.train_stats, self.val_stats = stats or self._statistics(names, report=False)

    def _statistics(self, names: list[str], report: bool) -> tuple[ClassStats,
                                                                   ClassStats | None]:
        ignore = int(getattr(self.train_set, "ignore_index", 255))
        train, val = split_statistics(self.train_set, self.val_set, len(names), ignore,
                                      self.stats_cache_dir)
        if report:
            log.info("Class statistics (share of the labelled pixels; images that contain the "
                     "class):\n%s", stats_table(names, train, val))
            for line in stats_warnings(names, train, val):
                log.warning(line)
        return train, val

    def _pin(self) -> bool:
        if self.pin_memory is not None:
            return self.pin_memory
        trainer = self.trainer
        return bool(trainer is not None
                    and trainer.accelerator.__class__.__name__ == "CUDAAccelerator")

    def _val_sampler(self, dataset: Dataset) -> Any:
        """Under DDP: each validation sample on exactly one rank.

        Lightning's default ``DistributedSampler`` pads the validation set with repeated
        samples so that every rank gets the same number, which counts those samples twice in
        a dataset-level confusion matrix. ``UnrepeatedDistributedSampler`` gives ranks
        uneven shares instead; the metric states are summed once at epoch end, so the
        2-process mIoU equals the 1-process one exactly. (Nothing in validation may issue a
        per-step collective: the losses mine per rank in eval mode.)
        """
        trainer = self.trainer
        if trainer is None or trainer.world_size < 2:
            return None
        return UnrepeatedDistributedSampler(dataset, num_replicas=trainer.world_size,
                                            rank=trainer.global_rank, shuffle=False)

    def _loader(self, dataset: Dataset, train: bool) -> DataLoader:
        sampler = self._train_sampler() if train else self._val_sampler(dataset)
        return DataLoader(dataset, batch_size=self.batch_size if train else self.val_batch_size,
                          shuffle=train and sampler is None, sampler=sampler,
                          drop_last=train and self.drop_last and len(dataset) > self.batch_size,
                          num_workers=self.num_workers, pin_memory=self._pin(),
                          persistent_workers=self.persistent_workers,
                          worker_init_fn=seed_worker_transform if self.num_workers else None)

    def _train_sampler(self) -> RareClassSampler | None:
        """``data.sampler``'s sampler, built once from ``train_stats`` (Lightning sets its
        epoch); None for plain shuffling."""
        if self.sampler is not None and self.train_sampler is None:
            self.train_sampler = build_sampler(self.sampler, self.train_stats,
                                               self.sampler_temperature, self.seed,
                                               dataset_classes(self.train_set))
        return self.train_sampler

    @property
    def sampler_summary(self) -> dict[str, Any]:
        """``metrics.json``'s ``data.sampler``: the training sampler and its temperature."""
        return sampler_summary(self.train_sampler, dataset_classes(self.train_set))

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, train=False)
