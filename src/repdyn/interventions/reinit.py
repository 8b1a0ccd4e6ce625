"""What the re-initialising interventions share: the model bodies they act on, their layers in forward order, fresh
draws from the initial distribution on a stored generator, Adam-state resets, and a period counted in env steps.

A fresh draw is :meth:`MLP.init_parameters` / :meth:`NatureCNN.init_parameters` run on a deep copy of the body with
the intervention's own ``torch.Generator``: the same code that initialised the network draws the new values, so they
follow the initial distribution exactly, and the agent's global random stream is the one it would have without the
intervention. The generator's state is checkpointed, so a resumed run draws the same values.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, ClassVar, NamedTuple

import torch
from torch import nn

from repdyn.interventions import Intervention, RunFacts


class Layer(NamedTuple):
    """One weight layer and the LayerNorm that follows it (None without ``model.norm=layer``, and for the head)."""

    module: nn.Module  # nn.Linear or nn.Conv2d; output units along dim 0 of its weight
    norm: nn.Module | None


def bodies(agent: Any) -> dict[str, nn.Module]:
    """{network name: its model body} (MLP / NatureCNN: the modules with ``init_parameters``)."""
    out = {name: net.body for name, net in agent.networks.items()}
    for name, body in out.items():
        if not hasattr(body, "init_parameters"):
            raise ValueError(f"network {name!r}: body {type(body).__name__} is not an MLP/NatureCNN model")
    return out


def layers(body: nn.Module) -> list[Layer]:
    """The weight layers of an MLP / NatureCNN in forward order, the head last."""
    if hasattr(body, "convs"):  # NatureCNN
        hidden = [Layer(m, None) for m in [*body.convs, body.fc]]
    else:
        pairs = zip(body.layers, body.norms, strict=True)
        hidden = [Layer(m, n if isinstance(n, nn.LayerNorm) else None) for m, n in pairs]
    return hidden + [Layer(body.head, None)]


def fresh_copy(body: nn.Module, generator: torch.Generator) -> nn.Module:
    """A copy of ``body`` with every parameter drawn anew from the initial distribution with ``generator``."""
    fresh = copy.deepcopy(body)
    fresh.init_parameters(generator)
    return fresh


def clear_adam_state(agent: Any, params: list[nn.Parameter]) -> None:
    """Forget the optimizer state (moments and step) of ``params``, as a freshly built Adam holds for them."""
    wanted = {id(p) for p in params}
    for opt in agent.optimizers.values():
        for p in [p for p in list(opt.state) if id(p) in wanted]:
            del opt.state[p]


def adam_moments(agent: Any, p: nn.Parameter) -> list[torch.Tensor]:
    """The moment tensors (exp_avg, exp_avg_sq) the optimizers hold for ``p`` ([] before its first step)."""
    for opt in agent.optimizers.values():
        state = opt.state.get(p)
        if state:
            return [state["exp_avg"], state["exp_avg_sq"]]
    return []


_REWIRING = ("shared_trunk", "plasticity_injection")  # interventions that change the model bodies' structure


def refuse_rewired_bodies(run: RunFacts, name: str) -> str | None:
    """A shared trunk replaces the model bodies (interventions/shared_trunk.py) and plasticity injection their heads:
    the layer-level interventions then no longer see one plain MLP / NatureCNN per network."""
    clash = [n for n in _REWIRING if n != name and n in run.interventions]
    if clash:
        return f"cannot be combined with {clash[0]} (it acts on the layers of each network's own model body)"
    return None


class PeriodicReinit(Intervention):
    """Base of interventions applied after the update of the batch that reaches env steps period, 2·period, …
    (env steps, the x-axis of every history, so one value means the same for PPO and DQN). Subclasses implement
    :meth:`apply`; the counter and the generator are checkpointed."""

    seed_offset: ClassVar[int]

    @dataclasses.dataclass
    class Config:
        period: int = 10_000

    def __init__(self, cfg: Any, run: RunFacts) -> None:
        super().__init__(cfg, run)
        self.generator = torch.Generator().manual_seed(int(run.seed) + self.seed_offset)
        self.env_steps, self.next_at, self.applied = 0, int(cfg.period), 0

    @classmethod
    def check_period(cls, cfg: Any, run: RunFacts) -> str | None:
        if cfg.period < 1:
            return f"period must be ≥ 1 env step, got {cfg.period}"
        return refuse_rewired_bodies(run, cls.name)

    def apply(self, agent: Any) -> None:
        raise NotImplementedError  # every registered subclass overrides it

    def on_batch_collected(self, batch: Any, agent: Any) -> dict[str, float]:
        self.env_steps += batch.numel()
        return {}

    def after_batch_update(self, agent: Any, progress: float) -> None:
        if self.env_steps < self.next_at:
            return
        self.apply(agent)
        self.applied += 1
        while self.next_at <= self.env_steps:  # a batch longer than the period applies once
            self.next_at += self.cfg.period

    def state_dict(self) -> dict[str, Any]:
        return {
            "env_steps": self.env_steps,
            "next_at": self.next_at,
            "applied": self.applied,
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            self.env_steps, self.next_at, self.applied = state["env_steps"], state["next_at"], state["applied"]
            self.generator.set_state(state["generator"])
