"""Multi-layer perceptron returning (output, features, pre-activations) in one pass (see ``repdyn.models``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

_ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU, "elu": nn.ELU}


def activation_module(name: str) -> nn.Module:
    """Return a fresh activation module by name (``tanh``, ``relu``, ``gelu``, ``elu``)."""
    if name not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(_ACTIVATIONS)}")
    return _ACTIVATIONS[name]()


class MLP(nn.Module):
    """``in_dim → hidden[0] → … → hidden[-1] → out_dim`` with the activation after every hidden layer.

    With ``out_dim=None`` the network has no head and returns the features as its output (a trunk).
    ``init="orthogonal"`` follows the PPO reference implementations used by Moalla et al. 2024 (gain √2 hidden,
    ``head_gain`` on the head); ``init="default"`` keeps PyTorch's default (used by the theory modules).
    """

    def __init__(
        self,
        in_dim: int,
        hidden: Sequence[int] = (64, 64),
        out_dim: int | None = None,
        activation: str = "tanh",
        init: str = "orthogonal",
        head_gain: float = 1.0,
    ) -> None:
        super().__init__()
        if len(hidden) == 0:
            raise ValueError("MLP needs at least one hidden layer (the penultimate features)")
        self.activation_name = activation
        dims = [in_dim, *hidden]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))
        self.act = activation_module(activation)
        self.head = nn.Linear(hidden[-1], out_dim) if out_dim is not None else None
        self.feature_dim = hidden[-1]
        if init == "orthogonal":
            gain = nn.init.calculate_gain("tanh" if activation == "tanh" else "relu")
            for layer in self.layers:
                nn.init.orthogonal_(layer.weight, gain)
                nn.init.zeros_(layer.bias)
            if self.head is not None:
                nn.init.orthogonal_(self.head.weight, head_gain)
                nn.init.zeros_(self.head.bias)
        elif init != "default":
            raise ValueError(f"unknown init {init!r}; choose 'orthogonal' or 'default'")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
        preacts = []
        h = x
        for layer in self.layers:
            z = layer(h)
            preacts.append(z)
            h = self.act(z)
        out = self.head(h) if self.head is not None else h
        return out, h, tuple(preacts)
