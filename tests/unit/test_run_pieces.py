"""The pieces a training run is made of, on their own: episode statistics, record sinks, progress counters."""

from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict

from repdyn.agents.base import Diverged
from repdyn.episode_stats import EpisodeStats
from repdyn.loggers.history import read_history
from repdyn.record_sinks import RecordSinks
from repdyn.run_state import Progress


def _batch(done: list[bool], reward: list[float], length: list[int]) -> TensorDict:
    n = len(done)
    nxt = TensorDict(
        {
            "done": torch.tensor(done).view(n, 1),
            "episode_reward": torch.tensor(reward).view(n, 1),
            "step_count": torch.tensor(length).view(n, 1),
        },
        batch_size=[n],
    )
    return TensorDict({"next": nxt}, batch_size=[n])


def test_episode_stats_average_the_ended_episodes_since_the_last_record() -> None:
    stats = EpisodeStats()
    stats.add(_batch([True, False, True], [1.0, 5.0, 3.0], [10, 2, 30]))
    stats.add(_batch([False, True, False], [0.0, 8.0, 0.0], [1, 20, 1]))
    assert stats.pop_record() == {"env/return": 4.0, "env/length": 20.0, "env/episodes": 3.0}
    assert stats.pop_record() == {}  # nothing ended since


def test_record_sinks_write_the_history_keep_the_tail_and_refuse_non_finite_values(tmp_path) -> None:
    sinks = RecordSinks(tmp_path, total=100)
    sinks.open(False, logger_cfg=_NoLogger(), run_name="t", config={}, overrides=[])
    sinks.log(50, {"loss": 1.0})
    sinks.log(96, {"loss": 2.0, "perf/sps": math.inf})  # perf/* timings are exempt from the check
    with pytest.raises(Diverged):
        sinks.log(100, {"loss": math.nan})
    assert [r["step"] for r in read_history(tmp_path / "history.jsonl")] == [50, 96]
    assert sinks.last_record["_step"] == 96 and sinks.tail == {"loss": [2.0], "perf/sps": [math.inf]}
    summary = sinks.summary("diverged", counters=Progress(total=100, env_steps=100).counters(), overrides=["a=1"])
    assert (summary["status"], summary["env_steps"], summary["final"]["loss"]) == ("diverged", 100, 2.0)
    sinks.close(summary)


class _NoLogger:
    backend, mode = "none", "disabled"
