"""Auxiliary-task feature flow (Lyle et al. 2021, arXiv:2102.13089): subspace distances against known answers, the
fixed-head flow against RK4 and its M → ∞ limits (Corollary 4.2, Theorem 4.3), and the value-improvement path."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from repdyn.theory.aux_heads import aux_problem, equivalent_heads, random_cumulant_statistics
from repdyn.theory.feature_flow import (
    Heads,
    fixed_heads_deviation,
    fixed_heads_fixed_point,
    fixed_heads_trajectory,
    integrate_joint_flow,
    limit_trajectory,
)
from repdyn.theory.subspaces import (
    eigen_basis_functions,
    grassmann_distance,
    principal_angles,
    resolvent_singular_basis,
)
from repdyn.theory.tabular_mdps import (
    chain_mdp,
    circle_mdp,
    policy_transition,
    policy_value,
    random_policies,
    random_sparse_mdp,
    uniform_policy,
    value_improvement_path,
)
from repdyn.theory.tabular_td import circle_mdp as circle_walk
from repdyn.theory.value_improvement import explained_fraction, path_transfer

F64 = torch.float64


def _walk(n: int = 8) -> torch.Tensor:
    """Symmetric random walk on an n-cycle: λ_k = cos(2πk/n), so for n = 8 the top-3 eigenspace is {1, cos π/4 ×2}."""
    m = circle_mdp(n, 1)
    return policy_transition(m, uniform_policy(m))


def test_grassmann_distance_known_answers() -> None:
    I = torch.eye(6, dtype=F64)
    assert grassmann_distance(I[:, :3], I[:, :3]) == 0.0
    assert grassmann_distance(I[:, :3], I[:, 3:]) == pytest.approx(math.pi / 2 * math.sqrt(3), abs=1e-12)
    # Invariant to the choice of basis of each subspace.
    B = torch.randn(3, 3, generator=torch.Generator().manual_seed(0), dtype=F64)
    assert grassmann_distance(I[:, :3] @ B, I[:, :3]) < 1e-7
    # One known angle, including a tiny one that arccos alone would round to 0.
    for theta in (0.7, 1e-9):
        v = math.cos(theta) * I[:, 0] + math.sin(theta) * I[:, 1]
        assert grassmann_distance(I[:, :1], v[:, None]) == pytest.approx(theta, rel=1e-9)
    angles = principal_angles(I[:, [0, 1]], torch.stack([I[:, 0], I[:, 1] + I[:, 2]], 1))
    assert torch.allclose(angles, torch.tensor([0.0, math.pi / 4], dtype=F64), atol=1e-12)
    with pytest.raises(ValueError, match="same dimension"):
        grassmann_distance(I[:, :2], I[:, :3])


def test_ebfs_and_rsbfs() -> None:
    P = _walk(8)
    Q = eigen_basis_functions(P, 3)
    assert torch.allclose(P @ Q, Q @ (Q.T @ P @ Q), atol=1e-12)  # an invariant subspace…
    assert torch.allclose(torch.linalg.eigvalsh(Q.T @ P @ Q), torch.tensor([0.5**0.5, 0.5**0.5, 1.0], dtype=F64))
    # …and for a symmetric P the resolvent's top singular vectors are the same subspace.
    assert grassmann_distance(resolvent_singular_basis(P, 0.9, 3), Q) < 1e-10
    with pytest.raises(ValueError, match="no gap"):  # k = 2 splits the pair cos π/4, cos 7π/4
        eigen_basis_functions(P, 2)
    # Non-symmetric P: the EBFs span the real invariant subspace of the top eigenvalues.
    Pr = policy_transition(random_sparse_mdp(12, 2, 3, 0), uniform_policy(random_sparse_mdp(12, 2, 3, 0)))
    Qr = eigen_basis_functions(Pr, 2)
    assert torch.linalg.matrix_norm(Pr @ Qr - Qr @ (Qr.T @ Pr @ Qr)) < 1e-10


def test_mdps() -> None:
    m = circle_mdp(10, 4)
    P_walk, R_walk = circle_walk(10, 4, "random_walk")
    assert torch.equal(policy_transition(m, uniform_policy(m)), P_walk) and torch.equal(m.R, R_walk)
    a, b = random_sparse_mdp(15, 3, 4, seed=7), random_sparse_mdp(15, 3, 4, seed=7)
    assert torch.equal(a.P, b.P) and torch.equal(a.R, b.R)
    assert torch.allclose(a.P.sum(-1), torch.ones(3, 15, dtype=F64)) and ((a.P > 0).sum(-1) == 4).all()
    c = chain_mdp(6, slip=0.1)
    assert torch.allclose(c.P.sum(-1), torch.ones(2, 6, dtype=F64)) and c.P[1, 2, 3] == 0.9
    pis = random_policies(c, 3, seed=1)
    assert pis.shape == (3, 6, 2) and torch.allclose(pis.sum(-1), torch.ones(3, 6, dtype=F64))


def test_corollary_4_2_ensemble_features_align_with_ebfs() -> None:
    """Fixed heads (β = 0), R = 0: span(Φ_t) → top-K EBFs of P while Φ_t → 0."""
    P, K = _walk(8), 3
    prob = aux_problem("ensemble", P, torch.zeros(8, dtype=F64), 0.9, K, 50, torch.Generator().manual_seed(0))
    phi0 = torch.randn(8, K, generator=torch.Generator().manual_seed(1), dtype=F64)
    ebf = eigen_basis_functions(P, K)
    phis = fixed_heads_trajectory(phi0, prob.heads, prob.Ps, prob.alpha, [0.0, 10.0, 20.0, 40.0])
    d = [grassmann_distance(F, ebf) for F in phis]
    assert d[0] > 1.0 and d[0] > d[1] > d[2] > d[3] and d[3] < 1e-5
    assert float(phis[2].norm()) < 0.1 * float(phi0.norm())


def test_rk4_matches_exact_fixed_head_solution() -> None:
    """The joint-flow integrator with β = 0 against the matrix-exponential solution, with several head groups."""
    m = chain_mdp(7)
    P = policy_transition(m, uniform_policy(m))
    extra = [policy_transition(m, pi) for pi in random_policies(m, 2, 0)]
    prob = aux_problem("additional_policies", P, m.R, 0.9, 3, 30, torch.Generator().manual_seed(2), extra_P=extra)
    phi0 = torch.randn(7, 3, generator=torch.Generator().manual_seed(3), dtype=F64)
    exact = fixed_heads_trajectory(phi0, prob.heads, prob.Ps, 1.0, [2.0, 5.0])
    rk4, W = integrate_joint_flow(phi0, prob.heads, prob.Ps, 1.0, 0.0, 0.01, [2.0, 5.0])
    assert torch.allclose(rk4, exact, atol=1e-9) and torch.equal(W[-1], prob.heads.W)
    with pytest.raises(ValueError, match="stability"):
        integrate_joint_flow(phi0, prob.heads, prob.Ps, 1.0, 0.0, 50.0, [100.0])


def test_random_cumulants_limit_theorem_4_3() -> None:
    """With α = 1, w^m ~ N(0, I/M), r^m ~ N(0, Σ), β = 0: Φ_∞^M = (I − γP)^{-1} Z_M G_M^{-1}, Z_M = Σ_m r^m w^mᵀ,
    G_M = Σ_m w^m w^mᵀ → I, so Φ_∞^M − (I − γP)^{-1} Z_M → 0 like M^{-1/2} (and Z_M → N(0, Σ) columns)."""
    P, K, gamma = _walk(8), 3, 0.5
    A = torch.eye(8, dtype=F64) - gamma * P
    chol = torch.linalg.cholesky(0.5 * torch.eye(8, dtype=F64) + 0.5)  # a non-isotropic Σ
    phi0 = torch.randn(8, K, generator=torch.Generator().manual_seed(0), dtype=F64)
    errs = {}
    for M in (100, 10**12):
        Z, G = random_cumulant_statistics(M, K, chol, np.random.default_rng(1))
        heads = equivalent_heads(Z, G, gamma)
        phi_T = fixed_heads_trajectory(phi0, heads, P[None], 1.0, [60.0])[0]  # exp(−30) transient: converged
        target = torch.linalg.solve(A, Z)
        errs[M] = float((phi_T - target).norm() / target.norm())
        assert torch.allclose(phi_T, fixed_heads_fixed_point(heads, P[None], 1.0), atol=1e-10)
    assert errs[10**12] < 1e-4 < 1e-3 < errs[100]
    # The M → ∞ closed form solves ∂Φ = −(I − γP)Φ + Z (central difference).
    Z = torch.randn(8, K, generator=torch.Generator().manual_seed(4), dtype=F64)
    a, b = limit_trajectory(A, Z, phi0, [1.0 - 1e-5, 1.0 + 1e-5])
    mid = limit_trajectory(A, Z, phi0, [1.0])[0]
    assert torch.allclose((b - a) / 2e-5, -A @ mid + Z, atol=1e-6)


def test_equivalent_heads_reproduce_explicit_heads_and_law_moments() -> None:
    P, K = _walk(6), 2
    prob = aux_problem("random_cumulants", P, torch.zeros(6, dtype=F64), 0.8, K, 200, torch.Generator().manual_seed(0))
    explicit = Heads(prob.heads.W[:, :200], prob.heads.C[:, :200], prob.heads.gamma[:200], prob.heads.policy[:200])
    W = explicit.W
    eq = equivalent_heads(explicit.C @ W.T, W @ W.T, 0.8)
    phi0 = torch.randn(6, K, generator=torch.Generator().manual_seed(1), dtype=F64)
    a = fixed_heads_trajectory(phi0, explicit, P[None], 1.0, [3.0])
    assert torch.allclose(a, fixed_heads_trajectory(phi0, eq, P[None], 1.0, [3.0]), atol=1e-10)
    # Exact-law sampler: E G = I, Var G_01 = 1/M, Var (Z_M)_ij = Σ_ii · E G_jj = 1 (Σ = I).
    rng = np.random.default_rng(0)
    draws = [random_cumulant_statistics(5, K, torch.eye(3, dtype=F64), rng) for _ in range(4000)]
    G = torch.stack([g for _, g in draws])
    Z = torch.stack([z for z, _ in draws])
    assert torch.allclose(G.mean(0), torch.eye(K, dtype=F64), atol=0.03)
    assert float(G[:, 0, 1].var()) == pytest.approx(1 / 5, rel=0.1)
    assert float(Z.var(0).mean()) == pytest.approx(1.0, rel=0.05)


@pytest.mark.parametrize("task", ["ensemble", "multiple_gammas"])
def test_deviation_subspace_tends_to_ebfs(task: str) -> None:
    """Table 1, last column: span(Φ_t − Φ_∞) → top-K EBFs of P, with r ≠ 0 (Φ_∞ ≠ 0)."""
    P, K = _walk(8), 3
    R = torch.arange(8, dtype=F64)
    prob = aux_problem(task, P, R, 0.9, K, 40, torch.Generator().manual_seed(5), gammas=[0.5, 0.9])
    phi0 = torch.randn(8, K, generator=torch.Generator().manual_seed(6), dtype=F64)
    phi_inf = fixed_heads_fixed_point(prob.heads, prob.Ps, 1.0)
    assert float(phi_inf.norm()) > 1.0
    E = fixed_heads_deviation(phi0 - phi_inf, prob.heads, prob.Ps, 1.0, [0.0, 10.0, 20.0, 40.0])
    d = [grassmann_distance(X, eigen_basis_functions(P, K)) for X in E]
    assert d[0] > 1.0 and d[0] > d[1] > d[2] > d[3] and d[3] < 1e-3


def test_learned_heads_reach_the_value_function() -> None:
    """β > 0 (RK4): every head's prediction Φ w^m converges to V^π."""
    m = chain_mdp(6)
    P = policy_transition(m, uniform_policy(m))
    prob = aux_problem("ensemble", P, m.R, 0.5, 2, 20, torch.Generator().manual_seed(0))
    phi0 = torch.randn(6, 2, generator=torch.Generator().manual_seed(1), dtype=F64)
    phis, ws = integrate_joint_flow(phi0, prob.heads, prob.Ps, 1.0, 1.0, 0.05, [0.0, 60.0])
    v = policy_value(m, uniform_policy(m), 0.5)
    err = (phis @ ws - v[None, :, None]).norm(dim=1).amax(1) / v.norm()
    assert float(err[0]) > 0.5 and float(err[1]) < 1e-6


def test_value_improvement_path_transfer() -> None:
    I = torch.eye(5, dtype=F64)
    v = torch.tensor([1.0, 2.0, 0.0, 0.0, 0.0], dtype=F64)
    assert explained_fraction(I[:, :2], v) == pytest.approx(1.0)
    assert explained_fraction(I[:, 2:], v) == pytest.approx(0.0, abs=1e-15)
    assert explained_fraction(I[:, :1], v) == pytest.approx(0.2)
    m = chain_mdp(12)
    pi0 = torch.zeros(12, 2, dtype=F64)
    pi0[:, 0] = 1.0
    path = value_improvement_path(m, pi0, 0.9)
    values = [policy_value(m, pi, 0.9) for pi in path]
    assert len(path) > 3 and all((b >= a - 1e-12).all() for a, b in zip(values, values[1:], strict=False))
    rows = path_transfer(m, path, 0.9, 3, 20, seed=0)
    r2 = {(r["step"], r["feature_set"], r["with_value"]): r["r2"] for r in rows}
    assert len(rows) == (len(path) - 1) * 6
    assert r2[(0, "ebf", False)] > r2[(0, "random", False)] + 0.3
    assert all(r2[(s, k, True)] >= r2[(s, k, False)] - 1e-12 for s, k, _ in r2)
