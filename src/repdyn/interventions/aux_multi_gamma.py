"""Multiple-discount auxiliary heads (Lyle et al. 2021, "On the Effect of Auxiliary Tasks on Representation Dynamics",
arXiv:2102.13089, Table 1 "multiple γs"; docs/interventions.md#multiple-discounts).

One head h_k per discount γ_k of ``gammas`` on a network's penultimate features, each a TD(0) prediction of the
training reward (as left by the ``on_batch_collected`` hooks, e.g. ``reward_mask``) discounted by its own γ_k:

    y_k = r + γ_k (1 − terminated) h_k(s')

with the head's own bootstrap at the next observation under the current network, without gradient. The heads are
state values of the policy that collected the data (PPO: the rollout policy; DQN: the replay's mixture of past
ε-greedy policies), for both agents. Our choices: γ ∈ {0.5, 0.9, 0.99}, coef = 1.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch

from repdyn.interventions import RunFacts, register
from repdyn.interventions.aux_common import AuxConfig, AuxHeads, td_targets


@register
class AuxMultiGamma(AuxHeads):
    name: ClassVar[str] = "aux_multi_gamma"
    seed_offset: ClassVar[int] = 0x2A0C_3000
    needs_next: ClassVar[bool] = True

    @dataclasses.dataclass
    class Config(AuxConfig):
        gammas: list[float] = dataclasses.field(default_factory=lambda: [0.5, 0.9, 0.99])  # one head each

    @staticmethod
    def check(cfg: Any, run: RunFacts) -> str | None:
        if not cfg.gammas:
            return "gammas must be a non-empty list"
        bad = [g for g in cfg.gammas if not 0.0 <= g <= 1.0]
        if bad:
            return f"gammas must all be in [0, 1], got {list(cfg.gammas)}"
        return AuxHeads.check_common(cfg, run)

    def head_outputs(self, agent: Any) -> int:
        return len(self.cfg.gammas)

    def build_extra(self, agent: Any) -> None:
        self.gammas = torch.tensor([float(g) for g in self.cfg.gammas])

    def pred_and_target(self, minibatch: Any, net: str, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        reward = minibatch["next", "reward"].reshape(-1, 1).expand(-1, len(self.gammas))
        target = td_targets(reward, self.gammas, minibatch["next", "terminated"], self.next_predictions(minibatch, net))
        return self.heads[net](features), target
