"""Subspaces of state space and distances between them (Lyle et al. 2021, "On the Effect of Auxiliary Tasks on
Representation Dynamics", AISTATS 2021, arXiv:2102.13089, §3 and §5).

* Principal angles θ_1 ≤ … ≤ θ_k between two k-dimensional subspaces of R^S, and the Grassmann distance
  d(A, B) = sqrt(Σ_i θ_i²) (0 for equal subspaces, (π/2)·√k for mutually orthogonal ones).
* EBFs (eigen basis functions): the span of the eigenvectors of P^π for its k largest eigenvalues, ordered by real
  part. Under TD, mode i of V − V^π decays like exp(−t(1 − γ Re λ_i)), so these are the slowest directions.
* RSBFs (resolvent singular basis functions): the top-k singular vectors of the resolvent (I − γP^π)^{-1}.
"""

from __future__ import annotations

import math

import torch

_GAP_TOL = 1e-9


def orthonormal_basis(X: torch.Tensor, rtol: float = 1e-12) -> torch.Tensor:
    """An orthonormal basis [S, r] of span(X) (r = numerical rank of X, singular values ≤ rtol·σ_1 dropped).

    Via the SVD rather than QR because the columns of a feature matrix are often nearly parallel (Φ_t aligns with one
    eigenvector long before the others) and QR does not reveal the rank."""
    U, s, _ = torch.linalg.svd(X, full_matrices=False)
    if s.numel() == 0 or float(s[0]) == 0.0:
        raise ValueError("span of a zero matrix is {0}: no basis")
    return U[:, s > rtol * s[0]]


def principal_angles(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """Principal angles (ascending) between span(A) and span(B), both of the same dimension k.

    cos θ_i are the singular values of Q_Aᵀ Q_B; small angles come from the sines, the singular values of
    Q_B − Q_A Q_Aᵀ Q_B, because arccos loses all precision near 1 (Björck and Golub 1973)."""
    Qa, Qb = orthonormal_basis(A), orthonormal_basis(B)
    if Qa.shape[1] != Qb.shape[1]:
        raise ValueError(f"subspaces must have the same dimension, got {Qa.shape[1]} and {Qb.shape[1]}")
    M = Qa.T @ Qb
    cos = torch.linalg.svdvals(M).clamp(0.0, 1.0)  # descending → angles ascending
    sin = torch.linalg.svdvals(Qb - Qa @ M).clamp(0.0, 1.0).flip(0)  # ascending, paired with cos
    small = cos > 1.0 / math.sqrt(2.0)
    return torch.where(small, torch.asin(sin), torch.acos(cos))


def grassmann_distance(A: torch.Tensor, B: torch.Tensor) -> float:
    """d(⟨A⟩, ⟨B⟩) = sqrt(Σ_i θ_i²) over the principal angles (Lyle et al. 2021 §3)."""
    return float(principal_angles(A, B).pow(2).sum().sqrt())


def _top_k_real_basis(vals: torch.Tensor, vecs: torch.Tensor, k: int, what: str) -> torch.Tensor:
    """Real basis of the span of the eigenvectors of the k largest ``vals`` (by real part); conjugate pairs give the
    real and imaginary parts of one vector. Refuses a k that splits equal real parts: the subspace is not defined."""
    n = vals.numel()
    if not (1 <= k < n):
        raise ValueError(f"k must be in [1, {n - 1}], got {k}")
    order = torch.argsort(-vals.real)
    re = vals.real[order]
    if float(re[k - 1] - re[k]) < _GAP_TOL:
        raise ValueError(
            f"no gap between the {k}-th and {k + 1}-th {what} (real parts {float(re[k - 1]):.6g}, "
            f"{float(re[k]):.6g}): the top-{k} subspace is not unique; choose another k"
        )
    top = vecs[:, order[:k]]
    cols = torch.cat([top.real, top.imag], dim=1)
    return orthonormal_basis(cols, rtol=1e-9)[:, :k]


def eigen_basis_functions(P: torch.Tensor, k: int) -> torch.Tensor:
    """EBFs: orthonormal basis [S, k] of the invariant subspace of P for its k eigenvalues of largest real part
    (Lyle et al. 2021 §3, Prop. 3.5). For a symmetric P these are the top-k eigenvectors."""
    if torch.allclose(P, P.T, atol=1e-12):
        vals, vecs = torch.linalg.eigh(P)
        return _top_k_real_basis(vals.to(torch.complex128), vecs.to(torch.complex128), k, "eigenvalues")
    vals, vecs = torch.linalg.eig(P)
    return _top_k_real_basis(vals, vecs, k, "eigenvalues")


def resolvent_singular_basis(P: torch.Tensor, gamma: float, k: int, side: str = "left") -> torch.Tensor:
    """RSBFs: the top-k singular vectors [S, k] of (I − γP)^{-1} = U diag(s) Vᵀ (Lyle et al. 2021 §5).

    ``side="left"`` (U, our default) spans the column space of the resolvent, the values V = (I − γP)^{-1} r: it is
    the k-subspace that best fits V in expectation over isotropic random rewards r ~ N(0, I) (Eckart-Young), and the
    subspace around which Φ_∞ = (I − γP)^{-1} Z_Σ concentrates for random cumulants. ``side="right"`` gives V, the
    reward directions that the resolvent amplifies most. Both coincide for a symmetric P."""
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    S = P.shape[0]
    resolvent = torch.linalg.inv(torch.eye(S, dtype=P.dtype) - gamma * P)
    U, s, Vh = torch.linalg.svd(resolvent)
    if not (1 <= k < S):
        raise ValueError(f"k must be in [1, {S - 1}], got {k}")
    if float(s[k - 1] - s[k]) < _GAP_TOL * float(s[0]):
        raise ValueError(f"no gap between singular values {k} and {k + 1}: the top-{k} subspace is not unique")
    return U[:, :k] if side == "left" else Vh[:k].T


def random_subspace_distance(basis: torch.Tensor, n_draws: int, gen: torch.Generator) -> float:
    """Mean Grassmann distance from span(basis) [S, k] to ``n_draws`` uniformly random k-subspaces (Gaussian
    matrices): the baseline a learned subspace must beat to be said to align with ``basis``."""
    S, k = basis.shape
    draws = torch.randn(n_draws, S, k, generator=gen, dtype=basis.dtype)
    return sum(grassmann_distance(basis, d) for d in draws) / n_draws
