"""The agent protocol the training loop relies on, and the two types every agent and the loop share.

An agent is built as ``Class(cfg, env)`` (``repdyn.agents.AGENTS``) and then driven per batch by ``repdyn.train``:
``act`` (or the TensorDict ``policy`` with ``train.collector=torchrl``) collects, ``process_batch`` prepares,
``update`` optimises. The metric views are optional capabilities, declared as protocols below instead of being
discovered with ``hasattr``: the loop asks ``isinstance(agent, NTKViews)`` and skips the metric (with a warning)
otherwise. See docs/architecture.md#adding-an-agent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn


class Diverged(RuntimeError):
    """A NaN/Inf appeared in a loss, gradient or metric; ``key`` names it (the run ends with status ``diverged``)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"non-finite value in {key}")
        self.key = key


@dataclass
class UpdateResult:
    """What one batch's optimisation phase produced: scalars to log (at log points) and raw tensors for tests."""

    scalars: dict[str, float] = field(default_factory=dict)
    ratios: torch.Tensor | None = None


def hooks_add_loss(hooks: Any) -> bool:
    """``hooks.adds_loss``: whether an intervention contributes an extra loss term, so an agent builds the minibatch
    view ``hooks.extra_loss`` reads only then; hooks that do not say are always asked."""
    return bool(getattr(hooks, "adds_loss", True))


@runtime_checkable
class Agent(Protocol):
    """What every agent provides to the loop, the collectors and the representation metrics."""

    continuous: bool
    activation: str  # the networks' hidden activation (model.activation): the dormant-unit and rank metrics need it
    # True when a batch is optimised as a whole after its collection (PPO: many epochs, seconds to minutes per batch)
    # and the agent's state is small (no replay): the loop keeps a copy of each batch's start state so that a stop
    # signal can abandon the batch at once instead of outlasting Slurm's KillWait (repdyn.training_loop).
    on_policy: bool
    networks: Mapping[str, nn.Module]  # by name: actor / critic / trunk / qnet
    optimizers: Mapping[str, torch.optim.Optimizer]
    policy: Any  # the TensorDict exploration policy (train.collector=torchrl)
    action_spec: Any  # the action space (torchrl spec): its domain, number of actions or action dimension

    def act(self, obs: torch.Tensor) -> dict[Any, torch.Tensor]:
        """The exploration policy on plain tensors (train.collector=lean): the keys and draws of ``policy``."""
        ...

    def process_batch(self, batch: Any) -> None:
        """Prepare a collected batch after the ``on_batch_collected`` hooks (advantages, or replay insertion)."""
        ...

    def update(self, batch: Any, env_steps: int, hooks: Any) -> UpdateResult: ...

    def rollout_outputs(self, flat: Any, net: str) -> tuple[torch.Tensor, ...]: ...

    def metric_kwargs(self, net: str, outs: tuple[torch.Tensor, ...]) -> dict[str, Any]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@runtime_checkable
class CapacityProbed(Protocol):
    """Agents whose networks the capacity probe refits: network name → fitting loss kind."""

    def capacity_kinds(self) -> dict[str, str]: ...


@runtime_checkable
class NTKViews(Protocol):
    """Agents with scalar-output views of their networks for the empirical NTK."""

    def ntk_views(self) -> dict[str, tuple[nn.Module, Any]]: ...


@runtime_checkable
class UpdateRankViews(Protocol):
    """Agents with per-sample losses and outputs for the update-rank matrix."""

    def update_rank_views(self, flat: Any) -> dict[str, dict[str, Any]]: ...
