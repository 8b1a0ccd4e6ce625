"""Shrink & Perturb (Ash & Adams 2020, "On Warm-Starting Neural Network Training", NeurIPS, arXiv:1910.08475;
docs/interventions.md#shrink-and-perturb).

Every ``period`` env steps, every parameter of every network becomes

    θ ← λ θ + σ ε,   ε drawn from the network's initial distribution (a fresh init on the stored generator).

Ash & Adams shrink the weights by λ and add Gaussian noise; drawing the perturbation from the initialiser instead
keeps its scale per layer right (LayerNorm gains included) and with λ + σ = 1 is the interpolation toward a fresh
network used in RL by D'Oro et al. 2023 ("Sample-Efficient Reinforcement Learning by Breaking the Replay Ratio
Barrier", ICLR). Optimizer state is kept (the paper does not reset it). λ = 1, σ = 0 is the identity.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any, ClassVar

import torch

from repdyn.interventions import RunFacts, register
from repdyn.interventions.reinit import PeriodicReinit, bodies, fresh_copy

_SEED_OFFSET = 0x5A9D_0000


@torch.no_grad()
def shrink_perturb_(params: Iterable[torch.Tensor], noise: Iterable[torch.Tensor], lam: float, sigma: float) -> None:
    """θ ← λ θ + σ ε in place, pairing each parameter with its noise tensor ε (Ash & Adams 2020 §4)."""
    for p, eps in zip(params, noise, strict=True):
        p.mul_(lam).add_(eps, alpha=sigma)


@register
class ShrinkPerturb(PeriodicReinit):
    name: ClassVar[str] = "shrink_perturb"
    seed_offset: ClassVar[int] = _SEED_OFFSET

    @dataclasses.dataclass
    class Config:
        period: int = 10_000  # env steps between applications (our choice)
        shrink: float = 0.8  # λ (our choice)
        perturb: float = 0.2  # σ (our choice; λ + σ = 1 interpolates toward a fresh init)

    @classmethod
    def check(cls, cfg: Any, run: RunFacts) -> str | None:
        if not 0 <= cfg.shrink <= 1:
            return f"shrink must be in [0, 1], got {cfg.shrink}"
        if cfg.perturb < 0:
            return f"perturb must be ≥ 0, got {cfg.perturb}"
        return cls.check_period(cfg, run)

    def apply(self, agent: Any) -> None:
        for body in bodies(agent).values():
            noise = fresh_copy(body, self.generator)
            shrink_perturb_(body.parameters(), noise.parameters(), self.cfg.shrink, self.cfg.perturb)
