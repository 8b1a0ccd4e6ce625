"""Linearised TD dynamics for policy evaluation in closed form (Anonymous 2023 §4, App. A-C;
docs/references.md#anonymous-2023).

Notation (Anonymous 2023 §3): dataset inputs X (state-action pairs), next inputs X' = (s', π(s')), evaluation inputs X*;
U = ∇_θ Q_0(X), V = ∇_θ Q_0(X'), Θ_AB = ∇_θ Q_0(A) ∇_θ Q_0(B)ᵀ the empirical NTK at init;
r̂ = Q_0 − r − G Q_0'.
We write the discount as a per-transition diagonal G = diag(γ (1 − done)) so terminal transitions do not bootstrap (with
no terminals G = γI, the paper's case). Training is full-batch gradient flow θ̇ = −η ∇_θ L on the linearised network
Q^lin_θ(x) = Q_0(x) + ∇_θ Q_0(x) ω, ω = θ − θ_0; one discrete gradient step of size η is one unit of time t.

* Single network (no target; eqs. 6-9, 23-24): L = ½‖Q(X) − r − G Q(X')‖², Θ̄ = (U − GV)(U − GV)ᵀ
  = Θ_XX − GΘ_X'X − Θ_XX'G + GΘ_X'X'G, and
      ω_t = −(U − GV)ᵀ M_t r̂,   M_t = Θ̄^{-1}(I − e^{−ηΘ̄t}),   Q_t(X*) = Q_0(X*) − (Θ_*X − Θ_*X'G) M_t r̂.
* Target network with soft updates θ̄̇ = τ(θ − θ̄) (eqs. 12-17, 35-44): the gradient does not flow through the target.
  Both ω and ω̄ stay in the row space of U, ω = Uᵀa, ω̄ = Uᵀb, with
      ȧ = −η(r̂ + Θ_XX a − GΘ_X'X b),  ḃ = τ(a − b),  a_0 = b_0 = 0,
  i.e. d[a; b]/dt = 𝓜[a; b] + [−ηr̂; 0] with 𝓜 = [[−ηΘ_XX, ηGΘ_X'X], [τI, −τI]] — the matrix of eq. 17/44 (paper's
  γ → G). So a_t = −M_t r̂ with M_t = η (∫_0^t e^{𝓜s} ds)_{11}, and Q_t(X*) = Q_0(X*) − Θ_*X M_t r̂. At t → ∞,
  M_∞ = (Θ_XX − GΘ_X'X)^{-1} (eq. 40-41). We integrate the block system exactly (augmented matrix exponential) rather
  than using eq. 43's rearrangement, which needs Θ̄'_0 invertible at every t.

Both cases share the form Q_t(X*) = Q_0(X*) − B_* M_t r̂ (B_* = Θ_*X − Θ_*X'G, or Θ_*X with a target network).
Over random initialisations Q_0 ~ GP(0, 𝒦) (the NNGP) with a deterministic NTK Θ (infinite width), the prediction is
Gaussian (eqs. 10, 29, 51-52), with Z = B_* M_t:
      mean = Z r,   cov = 𝒦_** − Z C − (Z C)ᵀ + Z W Zᵀ,   C = 𝒦_X* − G𝒦_X'*,  W = 𝒦_XX − 𝒦_XX'G − G𝒦_X'X + G𝒦_X'X'G.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call

from repdyn.theory.linear_ode import integrated_exp

_MODES = ("single", "target")


@dataclass(frozen=True)
class KernelBlocks:
    """Blocks of a kernel on the stacked inputs [X; X'; X*] (``n`` transitions, ``m`` evaluation inputs)."""

    xx: torch.Tensor  # [n, n]
    xpx: torch.Tensor  # [n, n]  k(X', X)
    xpxp: torch.Tensor  # [n, n]
    sx: torch.Tensor  # [m, n]  k(X*, X)
    sxp: torch.Tensor  # [m, n]  k(X*, X')
    ss: torch.Tensor  # [m, m]

    @staticmethod
    def from_full(K: torch.Tensor, n: int, m: int) -> KernelBlocks:
        """Slice a Gram matrix over [X (n); X' (n); X* (m)]."""
        if K.shape != (2 * n + m, 2 * n + m):
            raise ValueError(f"K must be [{2 * n + m}, {2 * n + m}] for n={n}, m={m}; got {tuple(K.shape)}")
        a, b = slice(0, n), slice(n, 2 * n)
        s = slice(2 * n, 2 * n + m)
        return KernelBlocks(K[a, a], K[b, a], K[b, b], K[s, a], K[s, b], K[s, s])


def _check_mode(mode: str) -> None:
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")


def theta_bar(theta: KernelBlocks, g: torch.Tensor) -> torch.Tensor:
    """Θ̄ = Θ_XX − GΘ_X'X − Θ_XX'G + GΘ_X'X'G (Anonymous 2023 eq. 9/30) for discounts ``g`` [n]."""
    G = g[:, None]
    return theta.xx - G * theta.xpx - (G * theta.xpx).T + G * theta.xpxp * g[None, :]


def dual_matrices(
    theta: KernelBlocks,
    g: torch.Tensor,
    eta: float,
    times: Sequence[float],
    *,
    mode: str = "single",
    tau: float = 0.0,
    rcond: float = 1e-10,
) -> torch.Tensor:
    """M_t for each t in ``times`` (``math.inf`` allowed) → [T, n, n] (module docstring).

    Single network: eigendecomposition of the symmetric PSD Θ̄, M_t = Σ_i (1 − e^{−ηλ_i t})/λ_i v_i v_iᵀ; for λ_i below
    ``rcond`` · λ_max the factor is its limit ηt (t finite) or 0 (t = ∞, pseudo-inverse). Target network: the exact
    block-ODE integral, and (Θ_XX − GΘ_X'X)^{-1} at t = ∞.
    """
    _check_mode(mode)
    if eta <= 0:
        raise ValueError(f"eta must be > 0, got {eta}")
    n = theta.xx.shape[0]
    out = []
    if mode == "single":
        lam, vec = torch.linalg.eigh(theta_bar(theta, g))
        tiny = lam <= rcond * lam.abs().max()
        for t in times:
            if math.isinf(t):
                f = torch.where(tiny, torch.zeros_like(lam), 1.0 / lam)
            else:
                f = torch.where(tiny, torch.full_like(lam, eta * t), -torch.expm1(-eta * lam * t) / lam)
            out.append((vec * f[None, :]) @ vec.T)
        return torch.stack(out)
    if tau < 0:
        raise ValueError(f"tau must be >= 0, got {tau}")
    eye = torch.eye(n, dtype=theta.xx.dtype)
    top = torch.cat([-eta * theta.xx, eta * g[:, None] * theta.xpx], dim=1)
    bottom = torch.cat([tau * eye, -tau * eye], dim=1)
    big = torch.cat([top, bottom], dim=0)
    forcing = torch.cat([eye, torch.zeros_like(eye)], dim=0)
    finite = [t for t in times if not math.isinf(t)]
    ints = iter(integrated_exp(big, forcing, finite)[:, :n, :] * eta) if finite else iter(())
    for t in times:
        if math.isinf(t):
            out.append(torch.linalg.pinv(theta.xx - g[:, None] * theta.xpx, rtol=rcond))
        else:
            out.append(next(ints))
    return torch.stack(out)


def eval_operator(theta: KernelBlocks, g: torch.Tensor, mode: str = "single") -> torch.Tensor:
    """B_* = Θ_*X − Θ_*X'G (single network) or Θ_*X (target network) → [m, n]."""
    _check_mode(mode)
    return theta.sx - theta.sxp * g[None, :] if mode == "single" else theta.sx


def linearised_predictions(
    q0_s: torch.Tensor, q0_x: torch.Tensor, q0_xp: torch.Tensor, r: torch.Tensor, g: torch.Tensor,
    B_s: torch.Tensor, M: torch.Tensor,
) -> torch.Tensor:  # fmt: skip
    """Q_t(X*) = Q_0(X*) − B_* M_t r̂ for every t: ``M`` [T, n, n] → [T, m] (eq. 24 / eq. 41 at finite t)."""
    r_hat = q0_x - r - g * q0_xp
    return q0_s[None, :] - (B_s[None] @ (M @ r_hat[None, :, None]))[..., 0]


def ensemble_moments(
    nngp: KernelBlocks, ntk: KernelBlocks, r: torch.Tensor, g: torch.Tensor, M: torch.Tensor, mode: str = "single"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean [T, m] and covariance [T, m, m] of Q_t(X*) over initialisations (eqs. 10, 29, 51-52; module docstring).

    ``nngp`` holds 𝒦 (the prior covariance of Q_0), ``ntk`` holds Θ (deterministic at infinite width)."""
    Z = eval_operator(ntk, g, mode)[None] @ M  # [T, m, n]
    mean = (Z @ r[:, None])[..., 0]
    G = g[:, None]
    C = (nngp.sx - nngp.sxp * g[None, :]).T  # Cov(Q0 − GQ0', Q0*) = 𝒦_X* − G𝒦_X'*  [n, m]
    W = nngp.xx - G * nngp.xpx - (G * nngp.xpx).T + G * nngp.xpxp * g[None, :]
    ZC = Z @ C
    cov = nngp.ss[None] - ZC - ZC.transpose(1, 2) + Z @ W @ Z.transpose(1, 2)
    return mean, cov


def param_displacement(
    model: nn.Module, x: torch.Tensor, xp: torch.Tensor, coeff: torch.Tensor, g: torch.Tensor, mode: str = "single"
) -> torch.Tensor:
    """ω_t (flattened over ``model.parameters()`` order) for dual coefficients ``coeff`` = M_t r̂ [n]:
    ω = −(U − GV)ᵀ coeff (single) or −Uᵀ coeff (target), as ONE vector-Jacobian product (no Jacobian is formed)."""
    _check_mode(mode)
    params = dict(model.named_parameters())

    def f(p: dict[str, torch.Tensor]) -> torch.Tensor:
        q = functional_call(model, p, (x,))[0].reshape(-1)
        s = (coeff * q).sum()
        if mode == "single":
            s = s - (coeff * g * functional_call(model, p, (xp,))[0].reshape(-1)).sum()
        return -s

    with torch.enable_grad():
        grads = torch.autograd.grad(f(params), list(params.values()))
    return torch.cat([gr.reshape(-1) for gr in grads]).detach()


def gaussian_nll(y: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, var_floor: float = 1e-12) -> torch.Tensor:
    """Per-point Gaussian negative log-likelihood ½ log(2πσ²) + (y − μ)²/(2σ²), with σ² ≥ ``var_floor``."""
    v = var.clamp_min(var_floor)
    return 0.5 * torch.log(2 * math.pi * v) + (y - mean) ** 2 / (2 * v)
