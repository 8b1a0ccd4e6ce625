"""Auxiliary tasks as sets of heads, with their M → ∞ limits (Lyle et al. 2021, "On the Effect of Auxiliary Tasks on
Representation Dynamics", AISTATS 2021, arXiv:2102.13089, §4 and Table 1).

Scaling (ours, the paper's second setting of Thm. 4.1 and the one of Thm. 4.3): α = 1 and head weights
w^m ~ N(0, I_K / M), fixed (β = 0). Then Σ_m w^m w^mᵀ → I (law of large numbers) and ε = Σ_m w^m ~ N(0, I_K) exactly,
so the flow ∂Φ = Σ_m δ^m w^mᵀ tends to ∂Φ = −AΦ + Z with, per task (S states, K features):

=====================  ==============================  ====================  =====================================
task                   heads                           A                     Z
=====================  ==============================  ====================  =====================================
ensemble               M value heads of (R, P^π, γ)    I − γP^π              R εᵀ (0 when R = 0)
random_cumulants       M heads r^m ~ N(0, Σ) [+ value]  I − γP^π              Z_Σ = lim Σ_m r^m w^mᵀ ~ N(0, Σ) cols
additional_policies    heads split over policies π_l   I − γP^π̄, P^π̄ = avg   R εᵀ (state rewards: R^π_l = R)
multiple_gammas        heads split over discounts γ_l  I − γ̄P^π, γ̄ = avg    R εᵀ
=====================  ==============================  ====================  =====================================

so Φ_∞ = A^{-1} Z and Φ_t − Φ_∞ = exp(−tA)(Φ_0 − Φ_∞) aligns with the EBFs of the P in A. For random cumulants the
optional value head has weight N(0, I/M) too, so its R w⁰ᵀ vanishes in the limit: Φ_∞ = (I − γP)^{-1} Z_Σ whether or
not R = 0. The realised Z (R εᵀ with ε = Σ_m w^m, or Z_M = Σ_m r^m w^mᵀ) is stored so a finite-M run can be compared
with the limit on the same draw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from repdyn.theory.feature_flow import Heads

AUX_TASKS = ("ensemble", "random_cumulants", "additional_policies", "multiple_gammas")


@dataclass(frozen=True)
class AuxProblem:
    """Heads and transition stack of one auxiliary task, and its M → ∞ limit ∂Φ = −AΦ + Z on the same draw.
    ``ebf_P`` is the matrix whose EBFs the theory predicts as the limit of span(Φ_t − Φ_∞)."""

    task: str
    heads: Heads
    Ps: torch.Tensor
    alpha: float
    limit_A: torch.Tensor
    limit_Z: torch.Tensor
    ebf_P: torch.Tensor


def _value_heads(R: torch.Tensor, W: torch.Tensor, gammas: torch.Tensor, policy: torch.Tensor) -> Heads:
    return Heads(W=W, C=R[:, None].expand(-1, W.shape[1]).clone(), gamma=gammas, policy=policy)


def aux_problem(
    task: str,
    P: torch.Tensor,
    R: torch.Tensor,
    gamma: float,
    K: int,
    M: int,
    gen: torch.Generator,
    *,
    extra_P: Sequence[torch.Tensor] = (),
    gammas: Sequence[float] = (),
    cumulant_chol: torch.Tensor | None = None,
) -> AuxProblem:
    """The heads of ``task`` (one of :data:`AUX_TASKS`) with weights N(0, I/M) and the task's limit (module table).

    ``R`` is the value heads' cumulant (pass zeros for the r = 0 column of Table 1). ``extra_P``: the additional
    policies' P^{π_l} (heads alternate over [P, *extra_P]); ``gammas``: the discounts of ``multiple_gammas`` (heads
    alternate over them); ``cumulant_chol``: Cholesky factor of Σ for random cumulants (default I)."""
    if task not in AUX_TASKS:
        raise ValueError(f"task must be one of {AUX_TASKS}, got {task!r}")
    S, dt = P.shape[0], P.dtype
    eye = torch.eye(S, dtype=dt)
    W = torch.randn(K, M, generator=gen, dtype=dt) / M**0.5
    zeros = torch.zeros(M, dtype=torch.long)
    eps_outer = R[:, None] * W.sum(1)[None]  # R εᵀ
    if task == "ensemble":
        heads = _value_heads(R, W, torch.full((M,), gamma, dtype=dt), zeros)
        return AuxProblem(task, heads, P[None], 1.0, eye - gamma * P, eps_outer, P)
    if task == "random_cumulants":
        chol = eye if cumulant_chol is None else cumulant_chol
        C = chol @ torch.randn(S, M, generator=gen, dtype=dt)
        Z = C @ W.T
        w0 = torch.randn(K, 1, generator=gen, dtype=dt) / M**0.5
        heads = Heads(torch.cat([W, w0], 1), torch.cat([C, R[:, None]], 1), torch.full((M + 1,), gamma, dtype=dt),
                      torch.zeros(M + 1, dtype=torch.long))  # fmt: skip
        return AuxProblem(task, heads, P[None], 1.0, eye - gamma * P, Z, P)
    if task == "additional_policies":
        if not extra_P:
            raise ValueError("additional_policies needs at least one extra policy transition matrix")
        Ps = torch.stack([P, *extra_P])
        policy = torch.arange(M) % Ps.shape[0]
        P_bar = Ps[policy].mean(0)  # the realised mixture: equal to the average of the P^{π_l} when L divides M
        heads = _value_heads(R, W, torch.full((M,), gamma, dtype=dt), policy)
        return AuxProblem(task, heads, Ps, 1.0, eye - gamma * P_bar, eps_outer, P_bar)
    if len(gammas) < 1:
        raise ValueError("multiple_gammas needs a list of discounts")
    g = torch.as_tensor(list(gammas), dtype=dt)[torch.arange(M) % len(gammas)]
    heads = _value_heads(R, W, g, zeros)
    return AuxProblem(task, heads, P[None], 1.0, eye - float(g.mean()) * P, eps_outer, P)


def random_cumulant_statistics(
    M: int, K: int, cumulant_chol: torch.Tensor, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """(Z_M, G_M) = (Σ_m r^m w^mᵀ, Σ_m w^m w^mᵀ) for M heads r^m ~ N(0, Σ), w^m ~ N(0, I/M), drawn from their exact
    joint law without drawing the heads, so M can be astronomically large.

    G_M ~ Wishart_K(M, I/M), drawn by the Bartlett decomposition G = A Aᵀ / M (A lower triangular, A_ii² ~ χ²_{M−i+1},
    A_ij ~ N(0, 1) below the diagonal). Given the w's, vec Z_M is Gaussian with covariance G_M ⊗ Σ (the r^m are
    independent of the w's), so Z_M = Σ^{1/2} N Lᵀ with N iid N(0, 1) [S, K] and G_M = L Lᵀ."""
    S = cumulant_chol.shape[0]
    A = np.tril(rng.standard_normal((K, K)), -1)
    A[np.diag_indices(K)] = np.sqrt(rng.chisquare(M - np.arange(K)))
    G = torch.as_tensor(A @ A.T / M, dtype=torch.float64)
    N = torch.as_tensor(rng.standard_normal((S, K)), dtype=torch.float64)
    return cumulant_chol @ N @ torch.linalg.cholesky(G).T, G


def equivalent_heads(Z: torch.Tensor, G: torch.Tensor, gamma: float) -> Heads:
    """K heads whose fixed-head flow equals that of any M heads with Σ_m r^m w^mᵀ = Z and Σ_m w^m w^mᵀ = G (same
    P, γ): W = chol(G), C = Z W^{-T}, since the β = 0 flow depends on the heads only through these two sums."""
    W = torch.linalg.cholesky(G)
    C = torch.linalg.solve_triangular(W, Z.T, upper=False).T
    K = W.shape[1]
    return Heads(W=W, C=C, gamma=torch.full((K,), gamma, dtype=Z.dtype), policy=torch.zeros(K, dtype=torch.long))
