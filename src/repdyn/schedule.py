"""When a run logs, measures and checkpoints: schedules in env steps, as fractions of the budget.

Every schedule is due at the first batch end at or past each multiple of its fraction of the budget (from the first
batch on, except checkpoints, whose first is one interval in), and at the end of training (docs/metrics.md#conventions).
:class:`Schedule` holds the log schedule, one per scheduled metric (repdyn.metrics.registry) and the checkpoint
schedule, and is part of a run's checkpoint, so a resumed run logs at exactly the steps an uninterrupted one does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


class Cadence:
    """A schedule in env steps: due at the first batch end at or past each multiple of ``fraction × total``
    (starting at ``first``), and at the end of training."""

    def __init__(self, fraction: float, total: int, first: float = 0.0) -> None:
        self.interval, self.total, self.next = fraction * total, total, first

    def due(self, env_steps: int) -> bool:
        return env_steps >= self.next or env_steps >= self.total

    def advance(self, env_steps: int) -> None:
        while self.next <= env_steps:
            self.next += self.interval


class Schedule:
    """Named cadences (``log`` and one per scheduled metric) and the checkpoint cadence of one run."""

    def __init__(self, total: int, fractions: Mapping[str, float], checkpoint_every: float) -> None:
        self.cadences = {name: Cadence(f, total) for name, f in fractions.items()}
        self.checkpoints = Cadence(checkpoint_every, total, first=checkpoint_every * total)

    def drop(self, name: str) -> None:
        """Stop scheduling ``name`` (a metric the agent cannot provide)."""
        del self.cadences[name]

    def due(self, env_steps: int) -> set[str]:
        """The names due at this batch end."""
        return {k for k, c in self.cadences.items() if c.due(env_steps)}

    def starts_at_zero(self, name: str, env_steps: int) -> bool:
        """Nothing trained yet and ``name`` not yet measured: its step-0 point is still to be taken."""
        return env_steps == 0 and self.cadences[name].next == 0

    def advance(self, names: Iterable[str], env_steps: int) -> None:
        for k in names:
            self.cadences[k].advance(env_steps)

    def checkpoint_due(self, env_steps: int) -> bool:
        return self.checkpoints.due(env_steps)

    def advance_checkpoints(self, env_steps: int) -> None:
        self.checkpoints.advance(env_steps)

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint's ``counters`` entries (their names are those of earlier checkpoints, which still resume)."""
        return {"cadences": {k: c.next for k, c in self.cadences.items()}, "checkpoints": self.checkpoints.next}

    def load_state_dict(self, counters: Mapping[str, Any]) -> None:
        for k, nxt in counters["cadences"].items():
            if k in self.cadences:  # a metric switched off since is ignored
                self.cadences[k].next = nxt
        self.checkpoints.next = counters["checkpoints"]
