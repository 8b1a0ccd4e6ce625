"""The joint flow of features and linear heads under expected TD (Lyle et al. 2021, "On the Effect of Auxiliary
Tasks on Representation Dynamics", AISTATS 2021, arXiv:2102.13089, §4 eqs. 7-9 and 15).

Features Φ ∈ R^{S×K} are shared by M heads; head m has weights w^m ∈ R^K, cumulant r^m ∈ R^S, transition matrix
P^m (its policy's P^π) and discount γ_m. With TD errors δ^m = r^m + γ_m P^m Φ w^m − Φ w^m:

    ∂Φ = α Σ_m δ^m (w^m)ᵀ,        ∂w^m = β Φᵀ δ^m.

Every auxiliary task of the paper is a choice of heads (``repdyn.theory.aux_heads``). Two solvers:

* :func:`integrate_joint_flow` — classical RK4 with a fixed step ``dt`` for any β (the flow is cubic in (Φ, w)).
  RK4 is 4th order; its real-axis stability limit is dt·|rate| < 2.78, so ``dt`` must stay below ~2.5 divided by
  the largest rate α‖W‖²‖I − γP‖ (checked for β = 0 in :func:`rk4_step_bound`).
* :func:`fixed_heads_trajectory` — exact for fixed heads (β = 0): the flow is then linear,
  ∂Φ = α(Σ_m r^m w^mᵀ − Σ_l (I − γ_l P_l) Φ G_l) with G_l = Σ_{m in group l} w^m w^mᵀ over the heads sharing
  (P_l, γ_l); vectorised (column-major vec, vec(AΦG) = (G ⊗ A) vec Φ for symmetric G) it is solved by one matrix
  exponential (``repdyn.theory.linear_ode``). The heads enter only through these sufficient statistics, so M costs
  nothing beyond forming them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from repdyn.theory.linear_ode import linear_ode_solution


@dataclass(frozen=True)
class Heads:
    """M prediction heads: weights W [K, M], cumulants C [S, M], discounts gamma [M], policy [M] (index into the
    stack of transition matrices Ps [L, S, S] passed beside them)."""

    W: torch.Tensor
    C: torch.Tensor
    gamma: torch.Tensor
    policy: torch.Tensor


def td_errors(Phi: torch.Tensor, W: torch.Tensor, heads: Heads, Ps: torch.Tensor) -> torch.Tensor:
    """δ [S, M] with δ^m = r^m + γ_m P^m Φ w^m − Φ w^m."""
    Y = Phi @ W
    PY = torch.einsum("lst,tm->lsm", Ps, Y)[heads.policy, :, torch.arange(Y.shape[1])].T
    return heads.C + heads.gamma[None] * PY - Y


def joint_flow_rhs(
    Phi: torch.Tensor, W: torch.Tensor, heads: Heads, Ps: torch.Tensor, alpha: float, beta: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(∂Φ, ∂W) = (α δ Wᵀ, β Φᵀ δ) (Lyle et al. 2021 eq. 9 / 15, summed over heads)."""
    delta = td_errors(Phi, W, heads, Ps)
    return alpha * delta @ W.T, beta * Phi.T @ delta


def rk4_step_bound(heads: Heads, Ps: torch.Tensor, alpha: float) -> float:
    """Largest stable RK4 step for fixed heads: 2.5 / (α ‖W‖₂² max_l ‖I − γ_l P_l‖₂) (a bound on the largest rate)."""
    S = Ps.shape[1]
    eye = torch.eye(S, dtype=Ps.dtype)
    worst = max(
        float(torch.linalg.matrix_norm(eye - float(g) * Ps[int(p)], ord=2))
        for p, g in set(zip(heads.policy.tolist(), heads.gamma.tolist(), strict=True))
    )
    return 2.5 / (alpha * float(torch.linalg.matrix_norm(heads.W, ord=2)) ** 2 * worst)


def integrate_joint_flow(
    Phi0: torch.Tensor,
    heads: Heads,
    Ps: torch.Tensor,
    alpha: float,
    beta: float,
    dt: float,
    times: Sequence[float],
) -> tuple[torch.Tensor, torch.Tensor]:
    """RK4 with fixed step ``dt`` from (Φ_0, heads.W); returns (Φ [T, S, K], W [T, K, M]) at ``times`` (each a
    multiple of ``dt`` up to rounding; sorted, ≥ 0)."""
    steps = [round(float(t) / dt) for t in times]
    if any(s < 0 for s in steps) or steps != sorted(steps):
        raise ValueError(f"times must be sorted and >= 0, got {list(times)}")
    if beta == 0.0 and dt > rk4_step_bound(heads, Ps, alpha):
        raise ValueError(f"dt = {dt} exceeds the RK4 stability bound {rk4_step_bound(heads, Ps, alpha):.3g}")

    def f(x: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return joint_flow_rhs(x[0], x[1], heads, Ps, alpha, beta)

    x, done, out_phi, out_w = (Phi0.clone(), heads.W.clone()), 0, [], []
    for target in steps:
        for _ in range(target - done):
            k1 = f(x)
            k2 = f((x[0] + dt / 2 * k1[0], x[1] + dt / 2 * k1[1]))
            k3 = f((x[0] + dt / 2 * k2[0], x[1] + dt / 2 * k2[1]))
            k4 = f((x[0] + dt * k3[0], x[1] + dt * k3[1]))
            x = tuple(x[i] + dt / 6 * (k1[i] + 2 * k2[i] + 2 * k3[i] + k4[i]) for i in range(2))
        done = target
        out_phi.append(x[0].clone())
        out_w.append(x[1].clone())
    return torch.stack(out_phi), torch.stack(out_w)


def head_groups(heads: Heads, Ps: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """[(A_l, G_l)] over the distinct (policy, γ) of the heads: A_l = I − γ_l P_l, G_l = Σ_{m in l} w^m w^mᵀ."""
    S = Ps.shape[1]
    eye = torch.eye(S, dtype=Ps.dtype)
    out = []
    for p, g in sorted(set(zip(heads.policy.tolist(), heads.gamma.tolist(), strict=True))):
        members = (heads.policy == p) & (heads.gamma == g)
        Wl = heads.W[:, members]
        out.append((eye - g * Ps[p], Wl @ Wl.T))
    return out


def fixed_heads_system(heads: Heads, Ps: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(L [SK, SK], c [SK]) with vec(∂Φ) = L vec(Φ) + c for fixed heads (column-major vec)."""
    S, K = Ps.shape[1], heads.W.shape[0]
    L = torch.zeros(S * K, S * K, dtype=Ps.dtype)
    for A, G in head_groups(heads, Ps):
        L -= alpha * torch.kron(G, A)
    c = alpha * (heads.C @ heads.W.T).T.reshape(-1)
    return L, c


def _unvec(v: torch.Tensor, S: int, K: int) -> torch.Tensor:
    return v.reshape(*v.shape[:-1], K, S).transpose(-1, -2)


def fixed_heads_trajectory(
    Phi0: torch.Tensor, heads: Heads, Ps: torch.Tensor, alpha: float, times: Sequence[float]
) -> torch.Tensor:
    """Exact Φ_t [T, S, K] of the fixed-head (β = 0) flow at ``times``."""
    S, K = Phi0.shape
    L, c = fixed_heads_system(heads, Ps, alpha)
    return _unvec(linear_ode_solution(L, c, Phi0.T.reshape(-1), times), S, K)


def fixed_heads_fixed_point(heads: Heads, Ps: torch.Tensor, alpha: float) -> torch.Tensor:
    """Φ_∞ [S, K] of the fixed-head flow: the solution of Σ_l A_l Φ G_l = Σ_m r^m w^mᵀ (unique when the G_l are
    positive definite, e.g. M ≥ K heads in general position)."""
    L, c = fixed_heads_system(heads, Ps, alpha)
    return _unvec(torch.linalg.solve(L, -c), Ps.shape[1], heads.W.shape[0])


def fixed_heads_deviation(
    E0: torch.Tensor, heads: Heads, Ps: torch.Tensor, alpha: float, times: Sequence[float]
) -> torch.Tensor:
    """E_t = Φ_t − Φ_∞ [T, S, K] of the fixed-head flow from E_0 = Φ_0 − Φ_∞: vec E_t = exp(tL) vec E_0.

    Computed directly rather than as Φ_t − Φ_∞, which cancels catastrophically once Φ_t has converged and would leave
    only rounding noise for the subspace of Φ_t − Φ_∞."""
    S, K = E0.shape
    L, _ = fixed_heads_system(heads, Ps, alpha)
    t = torch.as_tensor(list(times), dtype=L.dtype)
    return _unvec(torch.linalg.matrix_exp(L[None] * t[:, None, None]) @ E0.T.reshape(-1), S, K)


def limit_trajectory(A: torch.Tensor, Z: torch.Tensor, Phi0: torch.Tensor, times: Sequence[float]) -> torch.Tensor:
    """The M → ∞ limit ∂Φ = −AΦ + Z (Lyle et al. 2021 Thm. 4.1 eq. 14, Thm. 4.3): Φ_t = exp(−tA)(Φ_0 − A^{-1}Z) +
    A^{-1}Z → [T, S, K]. A = I − γ̄P̄ and Z = 0, Rεᵀ or Z_Σ depending on the task (Table 1)."""
    phi_inf = torch.linalg.solve(A, Z)
    t = torch.as_tensor(list(times), dtype=A.dtype)
    return torch.linalg.matrix_exp(-A[None] * t[:, None, None]) @ (Phi0 - phi_inf) + phi_inf


def limit_deviation(A: torch.Tensor, E0: torch.Tensor, times: Sequence[float]) -> torch.Tensor:
    """Φ_t − Φ_∞ = exp(−tA) E_0 of the M → ∞ limit [T, S, K], computed directly (no cancellation against Φ_∞)."""
    t = torch.as_tensor(list(times), dtype=A.dtype)
    return torch.linalg.matrix_exp(-A[None] * t[:, None, None]) @ E0
