"""Schema of the ``metrics`` config group: which metrics run, on which cadence and sample sizes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class MetricsConfig:
    representation: bool = True  # SPEC §1 metrics at batch start/end/diff, at every log point
    every: float = 0.001  # fraction of the budget between representation-metric points
    delta: float = 0.01
    dormant_tau: float = 0.025
    capacity: bool = True
    capacity_every: float = 0.025
    capacity_samples: int | None = None  # None → the env family default (env.capacity_samples)
    capacity_epochs: int | None = None
    ntk: bool = False
    ntk_samples: int = 1000
    ntk_q_reduction: str = "max"
    update_rank: bool = False
    update_rank_k: int = 256
    update_rank_probe: int = 256
    update_rank_q_reduction: str = "max"
