"""InFeR: regress auxiliary heads to a frozen initial network's outputs (Lyle et al. 2022,
arXiv:2204.09560; docs/interventions.md#infer).

    L_InFeR(θ, θ₀) = E_{x∼B} [ Σ_{i=1..k} (g_i(x; θ) − β g_i(x; θ₀))² ]

g_i are k linear heads on the penultimate features of a network; θ₀ is a frozen copy of the network *and* of the heads
at initialisation, so the loss is exactly 0 at the start and only penalises drift of the features that the random
heads read. Added to the agent's loss as ``coef · Σ_net L_InFeR`` and logged as ``loss/infer``.

Our choices (not fixed for PPO by the paper): k = 10, β = 1, coef = 0.1; heads on both the actor and the critic for
PPO, on the Q-network for DQN (``networks``, null = that default; the paper's agents were DQN-family); PyTorch's
default ``nn.Linear`` initialisation for the heads, drawn from a generator seeded by the run seed (so the agent's own
random stream is the one it would have without InFeR). The heads get their own optimizer ``infer`` with the
hyperparameters of the actor's (DQN: the Q-network's), and the frozen copy is taken at the first minibatch, i.e. after
every ``on_agent_built`` rewiring (shared trunk) and before any update.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from repdyn.interventions import Intervention, RunFacts, register
from repdyn.interventions.aux_common import check_networks

_SEED_OFFSET = 0x1F3E_5000
_DEFAULT_NETWORKS = {"ppo": ["actor", "critic"], "dqn": ["qnet"]}


def infer_loss(pred: torch.Tensor, target: torch.Tensor, beta: float) -> torch.Tensor:
    """mean_n Σ_i (g_i(x_n; θ) − β g_i(x_n; θ₀))² for ``pred`` = g(x; θ) and ``target`` = g(x; θ₀), both [N, k]."""
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {pred.shape} and {target.shape}")
    return (pred - beta * target.detach()).pow(2).sum(-1).mean()


@register
class InFeR(Intervention):
    name: ClassVar[str] = "infer"
    agents: ClassVar[tuple[str, ...]] = ("ppo", "dqn")  # reads the outputs of the networks the agent's update ran

    @dataclasses.dataclass
    class Config:
        k: int = 10  # auxiliary heads per network (our choice)
        beta: float = 1.0  # target scale β (our choice)
        coef: float = 0.1  # loss coefficient (our choice)
        networks: list[str] | None = None  # null: [actor, critic] for PPO, [qnet] for DQN

    @staticmethod
    def check(cfg: Any, run: RunFacts) -> str | None:
        if cfg.k < 1:
            return f"k must be ≥ 1, got {cfg.k}"
        if cfg.coef < 0:
            return f"coef must be ≥ 0, got {cfg.coef}"
        return check_networks(None if cfg.networks is None else list(cfg.networks), run.agent)

    def __init__(self, cfg: Any, run: RunFacts) -> None:
        super().__init__(cfg, run)
        self.networks = list(cfg.networks) if cfg.networks is not None else _DEFAULT_NETWORKS[run.agent]
        self.heads = nn.ModuleDict()
        self.frozen: nn.ModuleDict | None = None  # {net: frozen network copy}
        self.frozen_heads: nn.ModuleDict | None = None

    def on_agent_built(self, agent: Any) -> None:
        self.agent = agent
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.run.seed) + _SEED_OFFSET)
            for net in self.networks:
                self.heads[net] = nn.Linear(agent.networks[net].body.feature_dim, self.cfg.k)
        ref = agent.optimizers["actor" if "actor" in agent.optimizers else "qnet"]
        agent.optimizers[self.name] = type(ref)(self.heads.parameters(), **ref.defaults)

    def _snapshot(self) -> None:
        self.frozen = nn.ModuleDict({n: copy.deepcopy(self.agent.networks[n]) for n in self.networks})
        self.frozen_heads = copy.deepcopy(self.heads)
        for m in (self.frozen, self.frozen_heads):
            m.requires_grad_(False)

    def extra_loss(self, minibatch: Any, outputs: Mapping[str, tuple[torch.Tensor, ...]]) -> dict[str, torch.Tensor]:
        if self.frozen is None:
            self._snapshot()
        obs = minibatch["observation"]
        total = 0.0
        for net in self.networks:
            features = outputs[net][-3]
            with torch.no_grad():
                target = self.frozen_heads[net](self.frozen[net](obs)[-3])
            total = total + infer_loss(self.heads[net](features), target, self.cfg.beta)
        return {self.name: self.cfg.coef * total}

    def state_dict(self) -> dict[str, Any]:
        return {
            "heads": self.heads.state_dict(),
            "frozen": None if self.frozen is None else self.frozen.state_dict(),
            "frozen_heads": None if self.frozen_heads is None else self.frozen_heads.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        self.heads.load_state_dict(state["heads"])
        if state["frozen"] is not None:
            self._snapshot()  # builds modules of the right structure; the saved θ₀ then overwrites them
            self.frozen.load_state_dict(state["frozen"])
            self.frozen_heads.load_state_dict(state["frozen_heads"])
