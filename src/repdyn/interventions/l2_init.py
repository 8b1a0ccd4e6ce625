"""L2 Init: regularise toward the initial parameters (Kumar, Marklund & Van Roy 2023, "Maintaining Plasticity in
Continual Learning via Regenerative Regularization", arXiv:2308.11958; docs/interventions.md#l2-init).

    loss/l2_init = λ Σ_{networks} ‖θ − θ₀‖²₂,   ∇_θ = 2λ (θ − θ₀)

θ₀ is a copy of every trainable parameter of the agent's networks taken at the first minibatch (after every
``on_agent_built`` rewiring, before any update) and checkpointed; a parameter that starts training later (the fresh
head of ``plasticity_injection``) gets its θ₀ when it does, i.e. its own initial value, and a frozen one drops out.
Unlike weight decay (a pull toward 0), the pull is toward a point of the initial distribution, which the paper argues
keeps the network trainable.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch

from repdyn.interventions import Intervention, RunFacts, register


def l2_init_loss(params: Sequence[torch.Tensor], params0: Sequence[torch.Tensor], coef: float) -> torch.Tensor:
    """λ Σ_k ‖θ_k − θ₀_k‖² over paired tensors (Kumar et al. 2023 §4); θ₀ carries no gradient."""
    if len(params) != len(params0):
        raise ValueError(f"{len(params)} parameters but {len(params0)} initial values")
    total = sum((p - p0.detach()).pow(2).sum() for p, p0 in zip(params, params0, strict=True))
    return coef * total


@register
class L2Init(Intervention):
    name: ClassVar[str] = "l2_init"

    @dataclasses.dataclass
    class Config:
        coef: float = 1.0e-3  # λ (our choice; the paper tunes it per benchmark)

    @staticmethod
    def check(cfg: Any, run: RunFacts) -> str | None:
        if cfg.coef < 0:
            return f"coef must be ≥ 0, got {cfg.coef}"
        return None

    def __init__(self, cfg: Any, run: RunFacts) -> None:
        super().__init__(cfg, run)
        self.params0: dict[str, torch.Tensor] | None = None  # {"<network>.<parameter>": θ₀}

    def on_agent_built(self, agent: Any) -> None:
        self.agent = agent

    def params(self) -> dict[str, torch.Tensor]:
        """The trainable parameters by name (a parameter another intervention freezes drops out of the loss)."""
        nets = self.agent.networks.items()
        return {f"{n}.{k}": p for n, net in nets for k, p in net.named_parameters() if p.requires_grad}

    def extra_loss(self, minibatch: Any, outputs: Mapping[str, tuple[torch.Tensor, ...]]) -> dict[str, torch.Tensor]:
        params = self.params()
        self.params0 = self.params0 if self.params0 is not None else {}
        for k in params.keys() - self.params0.keys():  # first minibatch, or a parameter that starts training later
            self.params0[k] = params[k].detach().clone()
        init = [self.params0[k] for k in params]
        return {self.name: l2_init_loss(list(params.values()), init, self.cfg.coef)}

    def state_dict(self) -> dict[str, Any]:
        return {"params0": self.params0}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            self.params0 = state["params0"]
