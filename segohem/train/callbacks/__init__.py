"""Lightning callbacks and plugins of the training app."""

from segohem.train.callbacks.amp import SkippedStepCounter
from segohem.train.callbacks.best_checkpoint import BestModelCheckpoint
from segohem.train.callbacks.checkpoint_io import AtomicCheckpointIO
from segohem.train.callbacks.hparams import HparamsLogger
from segohem.train.callbacks.images import SegmentationImageLogger
from segohem.train.callbacks.metrics_writer import MetricsWriter
from segohem.train.callbacks.min_steps import MinTrainSteps
from segohem.train.callbacks.rank_check import RankConfigCheck
from segohem.train.callbacks.report import RunReport
from segohem.train.callbacks.sampled_share import SampledClassShare

__all__ = [
    "AtomicCheckpointIO",
    "BestModelCheckpoint",
    "HparamsLogger",
    "MetricsWriter",
    "MinTrainSteps",
    "RankConfigCheck",
    "RunReport",
    "SampledClassShare",
    "SegmentationImageLogger",
    "SkippedStepCounter",
]
