"""Episode statistics of a run: the returns and lengths of the episodes that ended since the last record.

torchrl's ``RewardSum`` / ``StepCounter`` write ``episode_reward`` / ``step_count`` (and ``episode_reward_raw`` when a
reward transform keeps the raw reward) into each transition; the episodes that end in a batch are read at its ``done``
flags. The lists are resumable state: a record averages every episode since the previous record, across a resume.
"""

from __future__ import annotations

from typing import Any

import numpy as np

KEYS = ("return", "length", "return_raw")


class EpisodeStats:
    """Ended episodes' ``return`` / ``length`` / ``return_raw`` since the last record
    (docs/metrics.md#episode-statistics)."""

    def __init__(self) -> None:
        self.values: dict[str, list[float]] = {k: [] for k in KEYS}

    def add(self, batch: Any) -> None:
        """Append the episodes that ended in ``batch``."""
        done = batch["next", "done"].squeeze(-1)
        if done.any():
            self.values["return"] += batch["next", "episode_reward"][done].squeeze(-1).tolist()
            self.values["length"] += batch["next", "step_count"][done].squeeze(-1).tolist()
            if ("next", "episode_reward_raw") in batch.keys(True):
                self.values["return_raw"] += batch["next", "episode_reward_raw"][done].squeeze(-1).tolist()

    def pop_record(self) -> dict[str, float]:
        """``env/*`` means of the episodes so far (nothing for a key without episodes), then start over."""
        rec = {f"env/{k}": float(np.mean(v)) for k, v in self.values.items() if v}
        if self.values["return"]:
            rec["env/episodes"] = float(len(self.values["return"]))
        self.values = {k: [] for k in self.values}
        return rec
