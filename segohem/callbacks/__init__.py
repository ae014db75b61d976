"""Lightning callbacks and plugins of the training app."""

from segohem.callbacks.amp import SkippedStepCounter
from segohem.callbacks.best_checkpoint import BestModelCheckpoint
from segohem.callbacks.checkpoint_io import AtomicCheckpointIO
from segohem.callbacks.hparams import HparamsLogger
from segohem.callbacks.images import SegmentationImageLogger
from segohem.callbacks.metrics_writer import MetricsWriter
from segohem.callbacks.min_steps import MinTrainSteps
from segohem.callbacks.optuna_pruning import OptunaPruning
from segohem.callbacks.rank_check import RankConfigCheck

__all__ = [
    "AtomicCheckpointIO",
    "BestModelCheckpoint",
    "HparamsLogger",
    "MetricsWriter",
    "MinTrainSteps",
    "OptunaPruning",
    "RankConfigCheck",
    "SegmentationImageLogger",
    "SkippedStepCounter",
]
