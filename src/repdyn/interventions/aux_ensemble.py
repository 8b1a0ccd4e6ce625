"""Value-ensemble auxiliary heads (Lyle et al. 2021, "On the Effect of Auxiliary Tasks on Representation Dynamics",
arXiv:2102.13089, Table 1 "ensemble"; docs/interventions.md#value-ensemble).

M heads on a network's penultimate features from independent initialisations, each regressing the agent's own value
target y (no gradient):

* PPO: each head h_m(s) ∈ ℝ regresses ``value_target``, the GAE(γ, λ) return the critic is trained on.
* DQN: each head has one output per action; the taken action's output h_m(s, a) regresses the TD target of
  ``agent.td_targets``: y = r + γ (1 − terminated) max_a' Q_target(s', a') (the double-DQN target with
  ``agent.double_dqn``), the target of the agent's own TD loss, recomputed on the same minibatch.

The loss is squared error for both agents (the DQN agent's own TD loss may be Huber). Heads differ only by their
initialisation, so they differ only in the transient: the paper's "ensemble" task. Our choices: M = 10, coef = 1.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch

from repdyn.interventions import RunFacts, register
from repdyn.interventions.aux_common import AuxConfig, AuxHeads


def taken_action_values(out: torch.Tensor, action: torch.Tensor, heads: int) -> torch.Tensor:
    """[N, M·|A|] head outputs (head-major) → [N, M]: each head's value of the taken ``action`` [N]."""
    per_head = out.reshape(out.shape[0], heads, -1)
    idx = action.long().reshape(-1, 1, 1).expand(-1, heads, 1)
    return per_head.gather(-1, idx).squeeze(-1)


@register
class AuxEnsemble(AuxHeads):
    name: ClassVar[str] = "aux_ensemble"
    seed_offset: ClassVar[int] = 0x2A0C_2000

    @dataclasses.dataclass
    class Config(AuxConfig):
        heads: int = 10  # M

    @staticmethod
    def check(cfg: Any, run: RunFacts) -> str | None:
        if cfg.heads < 1:
            return f"heads must be ≥ 1, got {cfg.heads}"
        return AuxHeads.check_common(cfg, run)

    def head_outputs(self, agent: Any) -> int:
        self.q_heads = self.run.agent == "dqn"
        return self.cfg.heads * (agent.n_actions if self.q_heads else 1)

    def pred_and_target(self, minibatch: Any, net: str, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.heads[net](features)
        if self.q_heads:
            pred = taken_action_values(out, minibatch["action"], self.cfg.heads)
            target = self.agent.td_targets(minibatch)
        else:
            pred, target = out, minibatch["value_target"]
        return pred, target.reshape(-1, 1).expand_as(pred)
