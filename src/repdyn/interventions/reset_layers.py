"""Periodic reset of the last k layers (Nikishin, Schwarzer, D'Oro, Bacon & Courville 2022, "The Primacy Bias in
Deep Reinforcement Learning", ICML, arXiv:2205.07802; docs/interventions.md#reset-layers).

Every ``period`` env steps, the last ``k`` weight layers of every network (k = 1: the output layer; a hidden layer's
LayerNorm goes with it) are drawn anew from the initial distribution with the stored generator, and their optimizer
state (Adam moments and step count) is dropped, as a freshly built agent would hold for them. The replay buffer is
kept: the paper's point is that the data, not the network, carries what was learned.

DQN: the target network's copies of the reset layers take the same fresh values, as a freshly built agent's target is
a copy of its online network (our reading: the paper resets "the agent's networks"; a target left pointing at the
old layers would bootstrap the new ones from them).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from torch import nn

from repdyn.interventions import RunFacts, register
from repdyn.interventions.reinit import PeriodicReinit, bodies, clear_adam_state, fresh_copy, layers

_SEED_OFFSET = 0x2E5E_0000


def last_layer_params(body: nn.Module, k: int) -> list[nn.Parameter]:
    """The parameters of the last ``k`` weight layers of ``body`` (with their LayerNorms), in a fixed order."""
    out: list[nn.Parameter] = []
    for layer in layers(body)[-k:]:
        out += list(layer.module.parameters()) + (list(layer.norm.parameters()) if layer.norm is not None else [])
    return out


@torch.no_grad()
def reset_last_layers(body: nn.Module, fresh: nn.Module, k: int) -> list[nn.Parameter]:
    """Copy the last ``k`` layers of the freshly drawn ``fresh`` into ``body`` in place; returns the reset
    parameters of ``body``. Earlier layers are untouched."""
    own = last_layer_params(body, k)
    for p, new in zip(own, last_layer_params(fresh, k), strict=True):
        p.copy_(new)
    return own


@register
class ResetLayers(PeriodicReinit):
    name: ClassVar[str] = "reset_layers"
    seed_offset: ClassVar[int] = _SEED_OFFSET

    @dataclasses.dataclass
    class Config:
        period: int = 50_000  # env steps between resets (our choice)
        k: int = 1  # layers from the output: 1 = the head only (our default; the paper's k depends on the agent)

    @classmethod
    def check(cls, cfg: Any, run: RunFacts) -> str | None:
        n_layers = (4 if run.model.name == "cnn" else len(run.model.hidden)) + 1  # hidden layers + head
        if not 1 <= cfg.k <= n_layers:
            return f"k must be in [1, {n_layers}] (the network's weight layers, head included), got {cfg.k}"
        return cls.check_period(cfg, run)

    def apply(self, agent: Any) -> None:
        target = getattr(agent, "target_qnet", None)
        for name, body in bodies(agent).items():
            fresh = fresh_copy(body, self.generator)
            clear_adam_state(agent, reset_last_layers(body, fresh, self.cfg.k))
            if target is not None and name == "qnet":
                reset_last_layers(target.body, fresh, self.cfg.k)
