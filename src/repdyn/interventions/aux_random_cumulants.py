"""Random-cumulant auxiliary heads (Lyle et al. 2021, "On the Effect of Auxiliary Tasks on Representation Dynamics",
arXiv:2102.13089, §5 and §6; docs/interventions.md#random-cumulants).

M heads h_m on a network's penultimate features, each a TD(0) prediction of its own random cumulant:

    y_m = c_m(s) + γ (1 − terminated) h_m(s'),   c(s) = scale · g(s)

with g a fixed, randomly initialised network of the observation (the agent's architecture with an M-output head,
never trained) and the bootstrap h_m(s') the head's own prediction at the next observation under the current network,
without gradient. The paper's theory (Table 1) shows that random cumulants keep the features away from collapse when
the reward is zero (Φ_∞ = (I − γP)^{-1}Z ≠ 0), which is why it proposes them for sparse-reward environments.

Our choices: M = 10, coef = 1, scale = 1, γ = the agent's γ; g is built by ``repdyn.agents.networks.build_body`` with
the run's ``model`` section and head gain 1, drawn after the heads from the same seeded generator.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from torch import nn

from repdyn.agents.networks import build_body
from repdyn.interventions import RunFacts, register
from repdyn.interventions.aux_common import AuxConfig, AuxHeads, td_targets


def random_cumulants(cumulant_net: nn.Module, obs: torch.Tensor, scale: float) -> torch.Tensor:
    """c(s) = scale · g(s), [N, M], for the fixed random network g (model contract: ``g(obs)[0]`` is the output)."""
    with torch.no_grad():
        return scale * cumulant_net(obs)[0]


@register
class AuxRandomCumulants(AuxHeads):
    name: ClassVar[str] = "aux_random_cumulants"
    seed_offset: ClassVar[int] = 0x2A0C_1000
    needs_next: ClassVar[bool] = True

    @dataclasses.dataclass
    class Config(AuxConfig):
        heads: int = 10  # M
        cumulant_scale: float = 1.0
        gamma: float | None = None  # null: the agent's γ

    @staticmethod
    def check(cfg: Any, run: RunFacts) -> str | None:
        if cfg.heads < 1:
            return f"heads must be ≥ 1, got {cfg.heads}"
        if not cfg.cumulant_scale > 0:
            return f"cumulant_scale must be > 0, got {cfg.cumulant_scale}"
        if cfg.gamma is not None and not 0.0 <= cfg.gamma <= 1.0:
            return f"gamma must be in [0, 1], got {cfg.gamma}"
        return AuxHeads.check_common(cfg, run)

    def head_outputs(self, agent: Any) -> int:
        return self.cfg.heads

    def build_extra(self, agent: Any) -> None:
        self.cumulant_net = build_body(self.run.model, tuple(agent.obs_shape), self.cfg.heads, 1.0)
        self.cumulant_net.requires_grad_(False)
        gamma = self.cfg.gamma if self.cfg.gamma is not None else float(self.run.gamma)
        self.gammas = torch.full((self.cfg.heads,), gamma)

    def pred_and_target(self, minibatch: Any, net: str, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = random_cumulants(self.cumulant_net, minibatch["observation"], self.cfg.cumulant_scale)
        target = td_targets(c, self.gammas, minibatch["next", "terminated"], self.next_predictions(minibatch, net))
        return self.heads[net](features), target

    def state_dict(self) -> dict[str, Any]:
        # the cumulant network is saved too: a resumed run reads the saved g, not a re-draw
        return {**super().state_dict(), "cumulant_net": self.cumulant_net.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if state:
            self.cumulant_net.load_state_dict(state["cumulant_net"])
