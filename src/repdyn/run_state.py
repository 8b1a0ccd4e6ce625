"""Everything a resume restores, gathered from the parts of a run that hold it, and given back to them.

A checkpoint (``checkpoints/last.pt``, and ``step_<n>.pt`` on schedule; :mod:`repdyn.checkpoint`) holds: the agent
(networks, optimizers, replay), the interventions' states, the counters (env steps, batches, the
:class:`repdyn.schedule.Schedule`, the scheduled metrics' probe generator, the episode statistics, the last record and
the last-5% values, the wall time so far), the RNG states, the obs-norm statistics, the simulator states
(:mod:`repdyn.envs.state`), the collector's carried observation (:mod:`repdyn.collection`, the one adapter for
torchrl's private collector state) and the W&B run id. The layout is the one earlier run dirs hold: a resume of a run
started before this module existed reads it unchanged.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from repdyn import checkpoint as ckpt
from repdyn.collection import collector_state, load_collector_state

if TYPE_CHECKING:
    from repdyn.episode_stats import EpisodeStats
    from repdyn.record_sinks import RecordSinks
    from repdyn.run_parts import RunParts


@dataclass
class Progress:
    """How far a run is: env steps and batches done, and wall time over all its segments (resumes included)."""

    total: int  # the budget, train.total_frames
    env_steps: int = 0
    batches: int = 0
    wall_before: float = 0.0  # wall time of earlier segments of a resumed run
    wall_start: float = field(default_factory=time.time)

    def wall_time(self) -> float:
        """Seconds spent in this run over all its segments."""
        return self.wall_before + time.time() - self.wall_start

    def counters(self) -> dict[str, Any]:
        """The summary's counters."""
        return {"env_steps": self.env_steps, "batches": self.batches, "wall_time": self.wall_time()}


class RunState:
    """The resumable state of one run: :meth:`state_dict` / :meth:`load_state_dict` in the checkpoint layout,
    :meth:`save` to ``checkpoint_dir``, and the copy of the state at the start of the batch under way, which a stop
    signal writes instead (:meth:`abandon_batch`). ``seed`` re-seeds an env whose simulator is not captured (ALE)."""

    def __init__(
        self,
        parts: RunParts,
        progress: Progress,
        episodes: EpisodeStats,
        sinks: RecordSinks,
        *,
        seed: int,
        checkpoint_dir: Path,
    ) -> None:
        self.parts, self.progress, self.episodes, self.sinks = parts, progress, episodes, sinks
        self.seed, self.checkpoint_dir = int(seed), checkpoint_dir
        self.batch_start: dict[str, Any] | None = None  # a copy of the state at the start of the batch under way

    def state_dict(self) -> dict[str, Any]:
        from repdyn.envs.state import get_env_state

        p, parts, sinks = self.progress, self.parts, self.sinks
        return {
            "agent": parts.agent.state_dict(),
            "interventions": parts.hooks.state_dict(),
            "counters": {
                "env_steps": p.env_steps,
                "batches": p.batches,
                **parts.schedule.state_dict(),
                "probe_gen": parts.probe_gen.get_state(),
                "episodes": self.episodes.values,
                "tail": sinks.tail,
                "last_record": sinks.last_record,
                "wall_time": p.wall_time(),
            },
            "rng": ckpt.rng_state(),
            "env_transform": parts.env.transform.state_dict(),
            "env_sim": get_env_state(parts.env),
            "carrier": collector_state(parts.collector),
            "wandb_id": sinks.wandb_id,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        from repdyn.envs.state import set_env_state

        parts, sinks = self.parts, self.sinks
        parts.agent.load_state_dict(state["agent"])
        parts.hooks.load_state_dict(state["interventions"])
        c = state["counters"]
        self.progress.env_steps, self.progress.batches = c["env_steps"], c["batches"]
        parts.schedule.load_state_dict(c)
        parts.probe_gen.set_state(c["probe_gen"])
        self.episodes.values, sinks.tail, sinks.last_record = c["episodes"], c["tail"], c["last_record"]
        self.progress.wall_before = c["wall_time"]
        parts.env.transform.load_state_dict(state["env_transform"])
        exact = set_env_state(parts.env, state["env_sim"])
        if not exact:  # ALE: the simulator is not captured; re-seed deterministically from (seed, env steps)
            parts.env.set_seed(self.seed + self.progress.env_steps)
        load_collector_state(parts.collector, state["carrier"] if exact else None)
        ckpt.set_rng_state(state["rng"])
        sinks.wandb_id = state["wandb_id"]

    def save(self, keep: bool) -> None:
        """Write ``last.pt`` (and ``step_<env steps>.pt`` when ``keep``)."""
        ckpt.save(self.checkpoint_dir, self.state_dict(), keep_step=self.progress.env_steps if keep else None)

    def mark_batch_start(self, copy_state: bool) -> bool:
        """Keep a copy of the state as the batch under way starts, when ``copy_state`` (an on-policy agent, whose
        long batches a stop signal abandons); returns whether a copy is held."""
        self.batch_start = copy.deepcopy(self.state_dict()) if copy_state else None
        return self.batch_start is not None

    def abandon_batch(self) -> None:
        """A stop signal abandoned the batch under way: checkpoint the state it started from (a resume redoes the
        batch exactly) and put the counters the summary reports back to that state."""
        state = self.batch_start
        ckpt.save(self.checkpoint_dir, state)
        c = state["counters"]
        self.progress.env_steps, self.progress.batches = c["env_steps"], c["batches"]
        self.sinks.tail, self.sinks.last_record = c["tail"], c["last_record"]
