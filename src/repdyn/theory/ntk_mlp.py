"""MLP in NTK parameterisation and the analytic infinite-width kernels of ReLU MLPs (Anonymous 2023 §3,
docs/references.md#anonymous-2023).

NTK parameterisation (Lee et al. 2019, ibid. §3): every layer computes z = (σ_w/√n_in) ω h + σ_b β with trainable
ω, β ~ N(0, 1). We implement a layer as ``nn.Linear(n_in + 1, n_out, bias=False)`` applied to the augmented input
[(σ_w/√n_in) h, σ_b]: the same function and the same gradients, and ``repdyn.metrics.ntk.ntk_gram`` can use its fast
structured rule for once-called ``nn.Linear`` layers (the kernel contribution (ΔΔᵀ) ⊙ (σ_w²/n_in HHᵀ + σ_b²)).

Infinite-width kernels of a ReLU MLP with L hidden layers (arc-cosine recursion, Cho & Saul 2009; Jacot et al. 2018;
Lee et al. 2019), on inputs x ∈ R^{n_0}:

    K¹ = σ_w² x·x'/n_0 + σ_b²                                   (first pre-activation covariance)
    K^{l+1} = σ_w² κ₁(K^l) + σ_b²,  κ₁ = (√(k k')/(2π)) (sin θ + (π − θ) cos θ)
    Θ¹ = K¹,  Θ^{l+1} = K^{l+1} + σ_w² κ₀(K^l) Θ^l,  κ₀ = (π − θ)/(2π)
    θ = arccos(K^l(x, x') / √(K^l(x, x) K^l(x', x')))

and the scalar output's NNGP is K^{L+1}, its NTK Θ^{L+1}. ``analytic_kernels`` returns both.
"""

from __future__ import annotations

import math

import torch
from torch import nn

_ACTS = {"relu": nn.functional.relu, "tanh": torch.tanh, "erf": torch.erf}


class NTKLinear(nn.Module):
    """z = (σ_w/√n_in) ω h + σ_b β with ω, β ~ N(0, 1); stored as one ``nn.Linear`` on [(σ_w/√n_in) h, σ_b]."""

    def __init__(self, n_in: int, n_out: int, sigma_w2: float, sigma_b2: float) -> None:
        super().__init__()
        self.lin = nn.Linear(n_in + 1, n_out, bias=False)
        nn.init.normal_(self.lin.weight)
        self.w_scale = math.sqrt(sigma_w2 / n_in)
        self.b_scale = math.sqrt(sigma_b2)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        ones = torch.full((*h.shape[:-1], 1), self.b_scale, dtype=h.dtype, device=h.device)
        return self.lin(torch.cat([h * self.w_scale, ones], dim=-1))


class NTKMLP(nn.Module):
    """Scalar-output MLP in NTK parameterisation with ``depth`` hidden layers of ``width`` units (Anonymous 2023 eq. 3).

    ``forward(x) -> (out [N, 1], features [N, width], preacts)`` (the repdyn model contract).
    """

    def __init__(
        self,
        in_dim: int,
        width: int = 1024,
        depth: int = 2,
        sigma_w2: float = 1.0,
        sigma_b2: float = 0.1,
        activation: str = "relu",
        out_dim: int = 1,
    ) -> None:
        super().__init__()
        if activation not in _ACTS:
            raise ValueError(f"activation must be one of {sorted(_ACTS)}, got {activation!r}")
        if depth < 1 or width < 1 or in_dim < 1:
            raise ValueError(f"in_dim, width and depth must be >= 1, got {in_dim}, {width}, {depth}")
        if sigma_w2 <= 0 or sigma_b2 < 0:
            raise ValueError(f"need sigma_w2 > 0 and sigma_b2 >= 0, got {sigma_w2}, {sigma_b2}")
        dims = [in_dim] + [width] * depth
        self.layers = nn.ModuleList(
            NTKLinear(a, b, sigma_w2, sigma_b2) for a, b in zip(dims[:-1], dims[1:], strict=True)
        )
        self.head = NTKLinear(width, out_dim, sigma_w2, sigma_b2)
        self.act = _ACTS[activation]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
        preacts = []
        h = x
        for layer in self.layers:
            z = layer(h)
            preacts.append(z)
            h = self.act(z)
        return self.head(h), h, tuple(preacts)


def _arccos_step(K: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(κ₁(K), κ₀(K)) = (E[relu(u) relu(v)], E[relu'(u) relu'(v)]) for (u, v) ~ N(0, K) elementwise."""
    d = torch.sqrt(torch.diagonal(K).clamp_min(0))
    norm = d[:, None] * d[None, :]
    cos = (K / norm.clamp_min(1e-300)).clamp(-1.0, 1.0)
    theta = torch.arccos(cos)
    k1 = norm / (2 * math.pi) * (torch.sin(theta) + (math.pi - theta) * cos)
    k0 = (math.pi - theta) / (2 * math.pi)
    return k1, k0


def analytic_kernels(
    x: torch.Tensor, depth: int, sigma_w2: float = 1.0, sigma_b2: float = 0.1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Infinite-width NNGP K and NTK Θ ([n, n] each, float64) of a ReLU :class:`NTKMLP` with ``depth`` hidden layers
    on inputs ``x`` [n, n_0] (module docstring). Cross-kernels are blocks of the result on the union of inputs."""
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    x = x.to(torch.float64)
    K = sigma_w2 * (x @ x.T) / x.shape[1] + sigma_b2
    theta = K.clone()
    for _ in range(depth):
        k1, k0 = _arccos_step(K)
        K = sigma_w2 * k1 + sigma_b2
        theta = K + sigma_w2 * k0 * theta
    return K, theta
