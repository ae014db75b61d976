"""ModelCheckpoint that remembers the best score when a run resumes into a new folder."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint


class BestModelCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint``, except that resuming from a checkpoint written in
    another folder keeps the best score so far: Lightning drops it when ``dirpath``
    changed, so the new folder's ``best.ckpt`` would be the best of the resumed epochs
    only. (The old best file stays where it was; a new one is written on improvement.)"""

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        if self.best_model_score is None and state_dict.get("best_model_score") is not None:
            self.best_model_score = state_dict["best_model_score"]
            self.kth_value = state_dict.get("kth_value", self.kth_value)
