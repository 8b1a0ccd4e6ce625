"""Plasticity injection (Nikishin, Oh, Ostrovski, Lyle, Pascanu, Dabney & Barreto 2023, "Deep Reinforcement Learning
with Plasticity Injection", NeurIPS, arXiv:2305.15555; docs/interventions.md#plasticity-injection).

Each network is an encoder φ (the hidden layers) and a head h_θ (the output layer). Once training reaches the
fraction ``at`` of the budget, the head θ is frozen and a freshly initialised head θ' is added together with a frozen
copy θ'' of it (paper Eq. 1):

    out(x) = h_θ(φ(x)) + h_θ'(φ(x)) − h_θ''(φ(x))

θ' = θ'' at injection, so the outputs are unchanged (exactly: the last two terms are computed by identical
operations), and the number of trainable parameters is the same as before. Afterwards θ' trains and θ, θ'' stay
fixed; the encoder keeps training, as in the paper (its Fig. 2 freezes only the head; ``train_encoder=false`` freezes
it too, leaving θ' the only trainable part). DQN: the target network gets the same structure and the same θ', θ''
values, so its outputs are unchanged too, and the hard/soft target updates keep copying parameter by parameter.

Checkpoints: the heads (θ, θ', θ'') are built at ``on_agent_built`` (θ', θ'' idle until injection), so the agent's
state dict has the same keys before and after; θ' is in its network's optimizer from the start (as a second
parameter group; it has no gradient, hence no Adam state, until injection).
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, ClassVar

import torch
from torch import nn

from repdyn.interventions import Intervention, RunFacts, register
from repdyn.interventions.reinit import bodies, refuse_rewired_bodies

_SEED_OFFSET = 0x1A7E_0000


class InjectableHead(nn.Module):
    """h_θ(x) before injection; h_θ(x) + (h_θ'(x) − h_θ''(x)) after (Nikishin et al. 2023 Eq. 1)."""

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.old, self.new, self.frozen = head, copy.deepcopy(head), copy.deepcopy(head)
        self.new.requires_grad_(False)  # idle until injection
        self.frozen.requires_grad_(False)
        self.register_buffer("injected", torch.zeros((), dtype=torch.bool))  # travels with the network's state
        self.active = False  # the buffer's value as a Python bool, for the forward pass

    @torch.no_grad()
    def inject(self, fresh: nn.Module, trainable: bool) -> None:
        """Freeze θ; θ' and θ'' ← the freshly drawn head ``fresh``; θ' trains when ``trainable``."""
        self.new.load_state_dict(fresh.state_dict())
        self.frozen.load_state_dict(fresh.state_dict())
        self.injected.fill_(True)
        self.sync(trainable)

    def sync(self, trainable: bool) -> None:
        """Set the Python flag and the gradient switches from the ``injected`` buffer (after a checkpoint load)."""
        self.active = bool(self.injected)
        if self.active:
            self.old.requires_grad_(False)
            self.new.requires_grad_(trainable)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        out = self.old(h)
        if self.active:
            out = out + (self.new(h) - self.frozen(h))
        return out


def fresh_head(body: nn.Module, generator: torch.Generator) -> nn.Module:
    """A head drawn from the initial distribution of ``body``'s head (its init code, on a copy, with ``generator``)."""
    twin = copy.deepcopy(body)
    twin.head = twin.head.old if isinstance(twin.head, InjectableHead) else twin.head
    twin.init_parameters(generator)
    return twin.head


@register
class PlasticityInjection(Intervention):
    name: ClassVar[str] = "plasticity_injection"

    @dataclasses.dataclass
    class Config:
        at: float = 0.5  # fraction of train.total_frames at which to inject (our choice: mid-training)
        train_encoder: bool = True  # the paper keeps training the encoder

    @staticmethod
    def check(cfg: Any, run: RunFacts) -> str | None:
        if not 0.0 < cfg.at < 1.0:
            return f"at must be a fraction of the budget in (0, 1), got {cfg.at}"
        return refuse_rewired_bodies(run, PlasticityInjection.name)

    def __init__(self, cfg: Any, run: RunFacts) -> None:
        super().__init__(cfg, run)
        self.generator = torch.Generator().manual_seed(int(run.seed) + _SEED_OFFSET)
        self.heads: dict[str, list[InjectableHead]] = {}  # network → its head (and the DQN target's)

    def on_agent_built(self, agent: Any) -> None:
        target = getattr(agent, "target_qnet", None)
        owner = {id(p): opt for opt in agent.optimizers.values() for g in opt.param_groups for p in g["params"]}
        self.bodies = bodies(agent)
        for name, body in self.bodies.items():
            opt = owner[id(body.head.weight)]
            body.head = InjectableHead(body.head)
            opt.add_param_group({"params": list(body.head.new.parameters())})
            self.heads[name] = [body.head]
            if target is not None and name == "qnet":
                target.body.head = InjectableHead(target.body.head)
                self.heads[name].append(target.body.head)

    @property
    def injected(self) -> bool:
        return any(h[0].active for h in self.heads.values())

    def after_batch_update(self, agent: Any, progress: float) -> None:
        if self.injected or progress < self.cfg.at:
            return
        for name, body in self.bodies.items():
            fresh = fresh_head(body, self.generator)
            online, *target = self.heads[name]
            online.inject(fresh, trainable=True)
            for t in target:
                t.inject(fresh, trainable=False)
            self._freeze_encoder(body)

    def _freeze_encoder(self, body: nn.Module) -> None:
        if not self.cfg.train_encoder:
            for name, module in body.named_children():
                if name != "head":
                    module.requires_grad_(False)

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        self.generator.set_state(state["generator"])
        for name, (online, *target) in self.heads.items():  # the agent's state (the buffers) is loaded first
            online.sync(trainable=True)
            for t in target:
                t.sync(trainable=False)
            if online.active:
                self._freeze_encoder(self.bodies[name])
