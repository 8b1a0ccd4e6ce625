"""The ``metrics`` config group schema: which metrics run, at which cadence and sample sizes (docs/metrics.md).

Cadences are fractions of the training budget (Moalla et al. 2024 App. B, arXiv:2405.00662: log every 0.1%, capacity
every 2.5% = 41 points). Options live in ``conf/metrics/{default,full,none}.yaml``. ``scheduled`` switches on, by
name, the scheduled metrics that have no field of their own here (:mod:`repdyn.metrics.registry` says why).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["MetricsConfig", "Q_REDUCTIONS"]

Q_REDUCTIONS = ("max", "mean", "taken")


@dataclass
class MetricsConfig:
    representation: bool = True  # docs/metrics.md#representation-metrics (trust region: always on)
    every: float = 0.001  # fraction of the budget between representation log points
    delta: float = 0.01  # rank threshold δ
    dormant_tau: float = 0.025  # τ of τ-dormant units (Sokar et al. 2023)
    replay_samples: int = 1000  # replay-based agents (DQN): representation metrics on this many replay states
    capacity: bool = True  # docs/metrics.md#capacity-loss
    capacity_every: float = 0.025
    capacity_samples: int | None = None  # None → env family default (ALE 36,000, MuJoCo 4,000)
    capacity_epochs: int | None = None  # None → env family default (ALE 1, MuJoCo 4)
    ntk: bool = False  # docs/metrics.md#empirical-ntk: eNTK trace / entropy / alignment
    ntk_every: float = 0.025
    ntk_samples: int = 1000
    ntk_q_reduction: str = "max"  # Q-networks: max | mean | taken
    update_rank: bool = False  # docs/metrics.md#update-rank: update-rank matrix
    update_rank_every: float = 0.025
    update_rank_k: int = 256
    update_rank_probe: int = 256
    update_rank_q_reduction: str = "max"
    # registered scheduled metric → cadence (fraction of the budget); a name's presence switches the metric on
    scheduled: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise one ValueError naming the field and the allowed values (also callable on a merged DictConfig's
        object form: ``OmegaConf.to_object(cfg.metrics).validate()``)."""
        for name in ("every", "capacity_every", "ntk_every", "update_rank_every"):
            v = getattr(self, name)
            if not 0 < v <= 1:
                raise ValueError(f"metrics.{name} must be a fraction of the budget in (0, 1], got {v!r}")
        for name, v in self.scheduled.items():
            if not 0 < v <= 1:
                raise ValueError(f"metrics.scheduled.{name} must be a fraction of the budget in (0, 1], got {v!r}")
        if not 0 <= self.delta < 1:
            raise ValueError(f"metrics.delta must be in [0, 1), got {self.delta!r}")
        if not self.dormant_tau >= 0:
            raise ValueError(f"metrics.dormant_tau must be >= 0, got {self.dormant_tau!r}")
        for name in ("capacity_samples", "capacity_epochs"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ValueError(f"metrics.{name} must be >= 1 or null (family default), got {v!r}")
        for name in ("replay_samples", "ntk_samples", "update_rank_k", "update_rank_probe"):
            if getattr(self, name) < 1:
                raise ValueError(f"metrics.{name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("ntk_q_reduction", "update_rank_q_reduction"):
            if getattr(self, name) not in Q_REDUCTIONS:
                raise ValueError(f"metrics.{name} must be one of {list(Q_REDUCTIONS)}, got {getattr(self, name)!r}")
