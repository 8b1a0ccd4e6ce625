"""Multi-layer perceptron returning (output, features, pre-activations) in one pass (see ``repdyn.models``)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


class CReLU(nn.Module):
    """Concatenated ReLU [relu(z), relu(−z)] along the last dimension: twice the units of its input, and every unit
    of z passes a gradient through one half (Shang et al. 2016; used against loss of plasticity by Abbas, Zhao,
    Modayil, White & Machado 2023, "Loss of Plasticity in Continual Deep Reinforcement Learning", arXiv:2303.07507)."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.relu(z), torch.relu(-z)], -1)


_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "crelu": CReLU,
}
WIDTH_FACTOR = {"crelu": 2}  # output units per input unit of an activation (1 when absent)
NORMS = ("none", "layer")


def activation_module(name: str) -> nn.Module:
    """Return a fresh activation module by name (``tanh``, ``relu``, ``gelu``, ``elu``, ``crelu``)."""
    if name not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(_ACTIVATIONS)}")
    return _ACTIVATIONS[name]()


def _norm(kind: str, width: int) -> nn.Module:
    if kind not in NORMS:
        raise ValueError(f"unknown norm {kind!r}; choose one of {NORMS}")
    return nn.LayerNorm(width) if kind == "layer" else nn.Identity()


class MLP(nn.Module):
    """``in_dim → hidden[0] → … → hidden[-1] → out_dim`` with the activation after every hidden layer.

    With ``out_dim=None`` the network has no head and returns the features as its output (a trunk).
    ``init="orthogonal"`` follows the PPO reference implementations used by Moalla et al. 2024 (gain √2 hidden,
    ``head_gain`` on the head); ``init="default"`` keeps PyTorch's default (used by the theory modules).

    ``norm="layer"``: a LayerNorm between each hidden linear layer and its activation (Lyle et al. 2024,
    arXiv:2407.01800); the pre-activations returned are the activation's input, i.e. after the norm.
    ``activation="crelu"`` doubles each layer's units, so the linear layers get ``hidden[i] / 2`` outputs and the
    features keep the configured width ``hidden[i]`` (widths must be even).
    """

    def __init__(
        self,
        in_dim: int,
        hidden: Sequence[int] = (64, 64),
        out_dim: int | None = None,
        activation: str = "tanh",
        init: str = "orthogonal",
        head_gain: float = 1.0,
        norm: str = "none",
    ) -> None:
        super().__init__()
        if len(hidden) == 0:
            raise ValueError("MLP needs at least one hidden layer (the penultimate features)")
        factor = WIDTH_FACTOR.get(activation, 1)
        if any(h % factor for h in hidden):
            raise ValueError(f"activation={activation!r} needs hidden widths divisible by {factor}, got {hidden}")
        if init not in ("orthogonal", "default"):
            raise ValueError(f"unknown init {init!r}; choose 'orthogonal' or 'default'")
        self.activation_name, self.init, self.head_gain = activation, init, head_gain
        units = [h // factor for h in hidden]  # linear outputs; the activation maps them to the configured widths
        ins = [in_dim, *hidden[:-1]]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(ins, units, strict=True))
        self.norms = nn.ModuleList(_norm(norm, u) for u in units)
        self.act = activation_module(activation)
        self.head = nn.Linear(hidden[-1], out_dim) if out_dim is not None else None
        self.feature_dim = hidden[-1]
        if init == "orthogonal":  # "default": nn.Linear has already drawn PyTorch's init from the global RNG
            self.init_parameters()

    def init_parameters(self, generator: torch.Generator | None = None) -> None:
        """Draw every parameter from the initial distribution (``generator``: None = the global RNG); LayerNorms
        start at gain 1, bias 0. The reset interventions call this on a copy for a fresh draw."""
        if self.init == "orthogonal":
            gain = nn.init.calculate_gain("tanh" if self.activation_name == "tanh" else "relu")
            for layer in self.layers:
                _orthogonal(layer, gain, generator)
            if self.head is not None:
                _orthogonal(self.head, self.head_gain, generator)
        else:
            for layer in [*self.layers, *([self.head] if self.head is not None else [])]:
                _torch_default(layer, generator)
        for n in self.norms:
            if isinstance(n, nn.LayerNorm):
                n.reset_parameters()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
        preacts = []
        h = x
        for layer, norm in zip(self.layers, self.norms, strict=True):
            z = norm(layer(h))
            preacts.append(z)
            h = self.act(z)
        out = self.head(h) if self.head is not None else h
        return out, h, tuple(preacts)

    def output(self, x: torch.Tensor) -> torch.Tensor:
        """``forward(x)[0]`` alone, for the per-env-step policy: the same operations in the same order (so the same
        numbers, bit for bit), without collecting the pre-activations and without ``nn.Module.__call__`` on the plain
        layers (its hook dispatch is ~3 µs per module, a third of a 2x64 forward on one env step). Forward hooks of
        plain ``nn.Linear`` / ``nn.Identity`` / activation modules are therefore not run here; replaced modules
        (e.g. an intervention's head) are called normally."""
        act = self.act.forward
        h = x
        for layer, norm in zip(self.layers, self.norms, strict=True):
            h = _linear(layer, h)
            if type(norm) is not nn.Identity:
                h = norm(h)
            h = act(h)
        return _linear(self.head, h) if self.head is not None else h


def _linear(layer: nn.Module, h: torch.Tensor) -> torch.Tensor:
    """``layer(h)``, calling ``F.linear`` directly (what ``nn.Linear.forward`` does) for a plain ``nn.Linear``."""
    if type(layer) is nn.Linear:
        return nn.functional.linear(h, layer.weight, layer.bias)
    return layer(h)


def _orthogonal(layer: nn.Module, gain: float, generator: torch.Generator | None) -> None:
    nn.init.orthogonal_(layer.weight, gain, generator=generator)
    nn.init.zeros_(layer.bias)


def _torch_default(layer: nn.Linear, generator: torch.Generator | None) -> None:
    """``nn.Linear.reset_parameters`` with a generator: U(±1/√fan_in) for weight (kaiming_uniform, a=√5) and bias."""
    nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
    bound = 1.0 / math.sqrt(layer.weight.shape[1])
    nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
