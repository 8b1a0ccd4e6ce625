"""Shared actor-critic trunk (Moalla et al. 2024 §4 "Sharing the actor-critic trunk", Fig. 6; arXiv:2405.00662).

Actor and critic share every layer except their output heads, and both the policy and the value loss backpropagate
into the trunk. Applied at ``on_agent_built`` (before the collector exists): the actor's hidden layers become the trunk,
the actor's and critic's heads sit on it, and the critic's own hidden layers are dropped. The PPO update already sums
all losses into one backward pass, so "both losses reach the trunk" needs no loop change.

Each parameter sits in exactly one optimizer — ``trunk``, ``actor`` (policy head), ``critic`` (value head) — so it is
stepped once per minibatch. (A peer implementation builds one optimizer over each of ``policy.parameters()`` and
``value.parameters()``, both of which contain the trunk, and so steps it twice per minibatch with two Adam states.)
New optimizers copy the hyperparameters of the ones they replace, so ``adam_beta2`` composes in either order.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from repdyn.interventions import Intervention, register


class SharedTrunkBody(nn.Module):
    """A head on a (shared) trunk, with the model contract ``forward(x) -> (out, features, preacts)``."""

    def __init__(self, trunk: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.trunk, self.head = trunk, head
        self.feature_dim = trunk.feature_dim

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
        _, features, preacts = self.trunk(x)
        return self.head(features), features, preacts


def _params(opt: torch.optim.Optimizer) -> list[nn.Parameter]:
    return [p for g in opt.param_groups for p in g["params"]]


@register
class SharedTrunk(Intervention):
    """Rewire the PPO agent's actor and critic onto one trunk; optimizers ``trunk``, ``actor``, ``critic``."""

    name: ClassVar[str] = "shared_trunk"
    agents: ClassVar[tuple[str, ...]] = ("ppo",)  # actor-critic only

    def on_agent_built(self, agent: Any) -> None:
        actor_body, critic_body = agent.actor.body, agent.critic.body
        if not isinstance(actor_body, nn.Module) or getattr(actor_body, "head", None) is None:
            raise ValueError("shared_trunk: the actor body must be a model with a head (repdyn.models MLP/NatureCNN)")
        actor_head, critic_head = actor_body.head, critic_body.head
        actor_body.head = None  # MLP/NatureCNN without a head return their features: the trunk
        trunk = actor_body
        agent.actor.body = SharedTrunkBody(trunk, actor_head)
        agent.critic.body = SharedTrunkBody(trunk, critic_head)
        old = agent.optimizers
        rebuilt = {
            "trunk": type(old["actor"])(trunk.parameters(), **old["actor"].defaults),
            "actor": type(old["actor"])(actor_head.parameters(), **old["actor"].defaults),
            "critic": type(old["critic"])(critic_head.parameters(), **old["critic"].defaults),
        }
        # optimizers other interventions added (e.g. InFeR heads) are kept as they are
        agent.optimizers = {**rebuilt, **{k: o for k, o in old.items() if k not in ("actor", "critic")}}
        seen = [id(p) for o in agent.optimizers.values() for p in _params(o)]
        if len(seen) != len(set(seen)):
            raise RuntimeError("shared_trunk: a parameter is in more than one optimizer")
