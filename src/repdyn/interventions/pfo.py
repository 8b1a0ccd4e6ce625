"""Proximal Feature Optimization (PFO) on the actor's penultimate pre-activations (Moalla et al. 2024 §4, Eq. 2).

PFO extends PPO's trust region to feature space: an L2 penalty between the actor's pre-activations under the current
parameters θ and under π_old, the policy that collected the batch. π_old's pre-activations are evaluated once over the
collected batch before the update (``("actor", "preact")``, see ``PPOAgent.evaluate_rollout``), so no frozen copy is
kept and the penalty is 0 (up to float rounding) on the first minibatch of every batch. Pre-activations rather than
activations are regularised because dead units pass no gradient (arXiv:2405.00662 §4).

Reduction: Eq. 2 writes a squared norm, but the coefficients of App. B (Tables 2-3) were calibrated with the authors'
released code, which averages the squared difference over units and then over samples; we follow the code so the
paper's coefficients keep their meaning (a sum over units would scale ``pfo_all`` on the Nature CNN by ~20,000).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from repdyn.interventions import Intervention, RunFacts, register


def pfo_loss(preact: torch.Tensor, preact_old: torch.Tensor) -> torch.Tensor:
    """L_PFO = mean_n mean_d (z_θ(s_n)_d − z_old(s_n)_d)² (Moalla §4 Eq. 2, unit-averaged as in the authors' code).

    ``preact`` [N, D] under θ (carries the gradient), ``preact_old`` [N, D] evaluated on the batch under π_old.
    """
    if preact.shape != preact_old.shape:
        raise ValueError(f"preact and preact_old must have the same shape, got {preact.shape} and {preact_old.shape}")
    return (preact - preact_old.detach()).pow(2).mean()


@register
class PFO(Intervention):
    """``loss/pfo`` = c · L_PFO on the penultimate pre-activation; c from the env family when ``coef`` is null.

    Defaults (Moalla App. B Tables 2-3): ALE 1; MLP with tanh 1, with ReLU 10. Classic control uses the MLP rule (our
    choice: the paper has no classic-control runs). Other activations have no paper default and need ``coef`` set.
    """

    name: ClassVar[str] = "pfo"
    agents: ClassVar[tuple[str, ...]] = ("ppo",)  # needs π_old's stored pre-activations: an on-policy actor
    key: ClassVar[str] = "preact"  # rollout key under "actor"
    output_index: ClassVar[int] = -2  # position in the ActorNet output tuple (…, features, preact, preacts_all)
    cnn_coef: ClassVar[float] = 1.0
    mlp_coefs: ClassVar[dict[str, float]] = {"tanh": 1.0, "relu": 10.0}

    @dataclasses.dataclass
    class Config:
        coef: float | None = None  # null: the paper's default for the env family / activation

    @classmethod
    def default_coef(cls, run: RunFacts) -> float | None:
        if run.env_family == "atari":
            return cls.cnn_coef
        return cls.mlp_coefs.get(run.model.activation)

    @classmethod
    def check(cls, cfg: Any, run: RunFacts) -> str | None:
        if cfg.coef is not None and cfg.coef < 0:
            return f"coef must be ≥ 0 (or null for the paper default), got {cfg.coef}"
        if cfg.coef is None and cls.default_coef(run) is None:
            return (
                f"no paper default coefficient for model.activation={run.model.activation!r} on "
                f"env.family={run.env_family!r} (defaults exist for atari, and tanh/relu MLPs); set "
                f"intervention.{cls.name}.coef"
            )
        return None

    def __init__(self, cfg: Any, run: RunFacts) -> None:
        super().__init__(cfg, run)
        self.coef = float(cfg.coef if cfg.coef is not None else self.default_coef(run))

    def on_agent_built(self, agent: Any) -> None:
        agent.keep_rollout_reps = True  # π_old's pre-activations in every batch (PPOAgent.evaluate_rollout)

    def extra_loss(self, minibatch: Any, outputs: Mapping[str, tuple[torch.Tensor, ...]]) -> dict[str, torch.Tensor]:
        current = outputs["actor"][self.output_index]
        return {self.name: self.coef * pfo_loss(current, minibatch["actor", self.key])}
