"""Read what a run wrote to TensorBoard: the HPARAMS tab's columns of an event file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.plugins.hparams import plugin_data_pb2


def hparams_of(run_dir: Path) -> tuple[dict[str, Any], list[str], set[str]]:
    """The hyperparameters (name -> value), the metric tags and the hyperparameters marked
    ``differs`` of the HPARAMS summaries in the event files under ``run_dir``."""
    hparams: dict[str, Any] = {}
    metrics: list[str] = []
    differs: set[str] = set()
    for path in sorted(Path(run_dir).rglob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name != "hparams":
                    continue
                data = plugin_data_pb2.HParamsPluginData.FromString(
                    value.metadata.plugin_data.content)
                if data.HasField("session_start_info"):
                    for name, v in data.session_start_info.hparams.items():
                        hparams[name] = getattr(v, v.WhichOneof("kind"))
                if data.HasField("experiment"):
                    metrics += [m.name.tag for m in data.experiment.metric_infos]
                    differs |= {h.name for h in data.experiment.hparam_infos if h.differs}
    return hparams, metrics, differs
