"""Actor and critic heads on the model contract, and their torchrl wrappers for the collector.

The collector runs the actor on every state and the PPO agent evaluates the critic over the collected batch, so the
batch holds π_old's and V_old's features and pre-activations (keys ``("actor", "features")``, ``("actor", "preact")``,
``("actor", "preacts_all")`` and the ``critic`` twins): "start" metrics and PFO need no second pass
(docs/metrics.md#conventions).
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict.nn import TensorDictModule
from torch import nn
from torch.distributions import Categorical
from torchrl.modules import ProbabilisticActor, TanhNormal

from repdyn.models.cnn import NatureCNN
from repdyn.models.mlp import MLP


def build_body(model_cfg: Any, in_shape: tuple[int, ...], out_dim: int, head_gain: float) -> nn.Module:
    """The network of ``model_cfg`` (mlp or cnn) with an ``out_dim`` head."""
    if model_cfg.name == "cnn":
        return NatureCNN(in_channels=in_shape[0], out_dim=out_dim, activation=model_cfg.activation, head_gain=head_gain)
    norm = model_cfg.get("norm", "none")  # theory configs predate the option
    return MLP(
        in_shape[-1], tuple(model_cfg.hidden), out_dim, activation=model_cfg.activation, head_gain=head_gain, norm=norm
    )


class ActorNet(nn.Module):
    """Policy head: categorical logits, or TanhNormal (loc, softplus scale) with state-dependent std (Moalla App. B)."""

    def __init__(self, body: nn.Module, continuous: bool, min_scale: float = 1e-4) -> None:
        super().__init__()
        self.body, self.continuous, self.min_scale = body, continuous, min_scale

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out, features, preacts = self.body(obs)
        extras = (features, preacts[-1], torch.cat(preacts, -1))
        if self.continuous:
            loc, raw_scale = out.chunk(2, -1)
            return (loc, nn.functional.softplus(raw_scale) + self.min_scale, *extras)
        return (out, *extras)

    def dist_params(self, out: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Distribution parameters per state for ``policy_variance``: probabilities, or [loc, scale]."""
        if self.continuous:
            return torch.cat([out[0], out[1]], -1)
        return torch.softmax(out[0], -1)


class CriticNet(nn.Module):
    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out, features, preacts = self.body(obs)
        return out, features, preacts[-1], torch.cat(preacts, -1)


def rep_keys(net: str) -> list[tuple[str, str]]:
    return [(net, "features"), (net, "preact"), (net, "preacts_all")]


def make_dist(actor: ActorNet, out: tuple[torch.Tensor, ...], low: torch.Tensor | None, high: torch.Tensor | None):
    """The policy distribution from an :class:`ActorNet` output (the same classes the collector samples from)."""
    if actor.continuous:
        return TanhNormal(out[0], out[1], low=low, high=high)
    return Categorical(logits=out[0])


def build_collector_policy(actor: ActorNet, action_spec: Any) -> ProbabilisticActor:
    """ProbabilisticActor writing the distribution parameters, the actor's features/pre-activations and a sampled
    action (no log-probability, no critic: the PPO agent evaluates both once per batch, see
    ``PPOAgent.evaluate_rollout``)."""
    if actor.continuous:
        param_keys = ["loc", "scale"]
        dist_cls, dist_kwargs = TanhNormal, {"low": action_spec.space.low[0], "high": action_spec.space.high[0]}
    else:
        param_keys, dist_cls, dist_kwargs = ["logits"], Categorical, {}
    actor_mod = TensorDictModule(actor, in_keys=["observation"], out_keys=param_keys + rep_keys("actor"))
    return ProbabilisticActor(
        actor_mod,
        in_keys=param_keys,
        distribution_class=dist_cls,
        distribution_kwargs=dist_kwargs,
        return_log_prob=False,
        spec=action_spec,
    )
