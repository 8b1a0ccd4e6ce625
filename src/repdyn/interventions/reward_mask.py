"""Reward mask: each training reward independently replaced by 0 with probability p (Moalla et al. 2024 §4).

Moalla et al. turn the dense ALE/Phoenix into a sparse-reward game this way (p = 0.9, App. Fig. 35). The mask acts at
``on_batch_collected`` on ``("next", "reward")`` only, before advantages / targets are computed; the env's
``episode_reward`` accumulator (torchrl ``RewardSum``) already ran during collection, so ``env/return`` stays the raw
(unmasked) return. The mask has its own generator, seeded from the run seed and checkpointed, so a resume is exact
and the global RNG (action sampling) is the same as without the intervention.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch

from repdyn.interventions import Intervention, RunFacts, register

_SEED_OFFSET = 0x5EED_3A5C  # decorrelates the mask stream from the run's other seeded streams


def mask_rewards(reward: torch.Tensor, p: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(reward · m, m)`` with m_i ~ Bernoulli(1 − p) i.i.d. per element (m_i = 0: reward i is masked)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")
    keep = torch.rand(reward.shape, generator=generator, device=reward.device) >= p
    return reward * keep.to(reward.dtype), keep


@register
class RewardMask(Intervention):
    name: ClassVar[str] = "reward_mask"

    @dataclasses.dataclass
    class Config:
        p: float = 0.9  # probability that a reward is replaced by 0

    @staticmethod
    def check(cfg: Any, run: RunFacts) -> str | None:
        if not 0.0 <= cfg.p <= 1.0:
            return f"p must be a probability in [0, 1], got {cfg.p}"
        return None

    def __init__(self, cfg: Any, run: RunFacts) -> None:
        super().__init__(cfg, run)
        self.generator = torch.Generator().manual_seed(int(run.seed) + _SEED_OFFSET)

    def on_batch_collected(self, batch: Any, agent: Any) -> dict[str, float]:
        masked, keep = mask_rewards(batch["next", "reward"], self.cfg.p, self.generator)
        batch.set(("next", "reward"), masked)
        return {"reward_mask/masked_fraction": 1.0 - keep.float().mean().item()}

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "generator" in state:
            self.generator.set_state(state["generator"])
