"""Actor and critic heads on the model contract, and their torchrl wrappers for the collector.

The collector runs the actor's distribution parameters on every state (:meth:`ActorNet.step_outputs`, nothing else:
the per-step cost is the collection's); the PPO agent then evaluates the critic over the whole collected batch at
once, and the representations (keys ``("actor", "features")``, ``("actor", "preact")``, ``("actor", "preacts_all")``
and the ``critic`` twins) where something reads them: in that pass for PFO, else when a "start" metric is due, still
before the update (docs/metrics.md#conventions).
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

    @property
    def param_keys(self) -> list[str]:
        return ["loc", "scale"] if self.continuous else ["logits"]

    @property
    def step_keys(self) -> list[Any]:
        """The keys the collector policy writes per env step (besides the action): the distribution parameters.
        Not the representations, not even the Nature CNN's, which its forward pass computes anyway: storing its
        ~22k pre-activations per frame cost ~90 MB of fresh memory per 1,024-step batch, which only the batches a
        metric reads need (``PPOAgent.rollout_outputs`` evaluates them there)."""
        return self.param_keys

    def step_outputs(self, obs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The values of :attr:`step_keys`: :meth:`dist_outputs`."""
        return self.dist_outputs(obs)

    def dist_outputs(self, obs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``forward(obs)[:len(param_keys)]``: the distribution parameters alone, the same numbers, without the
        representations (for a loss that reads only these, and for the per-step policy)."""
        out = body_output(self.body, obs)
        if self.continuous:
            loc, raw_scale = out.chunk(2, -1)
            return loc, nn.functional.softplus(raw_scale) + self.min_scale
        return (out,)

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

    def value_output(self, obs: torch.Tensor) -> tuple[torch.Tensor]:
        """``forward(obs)[:1]``: the value alone, the same numbers, without the representations."""
        return (body_output(self.body, obs),)


def body_output(body: nn.Module, obs: torch.Tensor) -> torch.Tensor:
    """``body(obs)[0]``: a network's output without its representations (:meth:`MLP.output`,
    :meth:`NatureCNN.output`); a body an intervention replaced or wrapped goes through its own forward."""
    return body.output(obs) if type(body) in (MLP, NatureCNN) else body(obs)[0]


class ActorStep(nn.Module):
    """The actor as the collector policy's module: :meth:`ActorNet.step_outputs`."""

    def __init__(self, actor: ActorNet) -> None:
        super().__init__()
        self.actor = actor

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.actor.step_outputs(obs)


class NetworkOutput(nn.Module):
    """A :class:`CriticNet`'s output alone (:func:`body_output`): the DQN collector policy's Q-values, whose
    representations the metrics evaluate on replay samples instead."""

    def __init__(self, net: CriticNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return body_output(self.net.body, obs)


def rep_keys(net: str) -> list[tuple[str, str]]:
    return [(net, "features"), (net, "preact"), (net, "preacts_all")]


def make_dist(actor: ActorNet, out: tuple[torch.Tensor, ...], low: torch.Tensor | None, high: torch.Tensor | None):
    """The policy distribution from an :class:`ActorNet` output (the same classes the collector samples from)."""
    if actor.continuous:
        return TanhNormal(out[0], out[1], low=low, high=high)
    return Categorical(logits=out[0])


def build_collector_policy(actor: ActorNet, action_spec: Any) -> ProbabilisticActor:
    """ProbabilisticActor writing :attr:`ActorNet.step_keys` and a sampled action (no log-probability, no critic:
    the PPO agent evaluates them once per batch, see ``PPOAgent.evaluate_rollout``)."""
    if actor.continuous:
        dist_cls, dist_kwargs = TanhNormal, {"low": action_spec.space.low[0], "high": action_spec.space.high[0]}
    else:
        dist_cls, dist_kwargs = Categorical, {}
    param_keys = actor.param_keys
    actor_mod = TensorDictModule(ActorStep(actor), in_keys=["observation"], out_keys=actor.step_keys)
    return ProbabilisticActor(
        actor_mod,
        in_keys=param_keys,
        distribution_class=dist_cls,
        distribution_kwargs=dist_kwargs,
        return_log_prob=False,
        spec=action_spec,
    )
