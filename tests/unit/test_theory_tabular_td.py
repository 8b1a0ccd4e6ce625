"""Tabular / kernel TD closed forms (Lyle et al. 2022b §4.1-4.2) against Euler integration and known answers."""

from __future__ import annotations

import math

import pytest
import torch

from repdyn.theory.linear_ode import linear_ode_solution
from repdyn.theory.tabular_td import (
    circle_mdp,
    eigen_coefficients,
    kernel_mc_system,
    kernel_rates,
    kernel_td_system,
    mc_closed_form,
    rbf_kernel,
    td_closed_form,
    value_function,
)


def euler_td(P: torch.Tensor, R: torch.Tensor, gamma: float, v0: torch.Tensor, dt: float, n_steps: int) -> torch.Tensor:
    """Explicit Euler of ∂V = −(I − γP)V + R, i.e. expected tabular TD(0) with learning rate ``dt``; returns V after
    ``n_steps`` steps."""
    v = v0.clone()
    for _ in range(n_steps):
        v = v + dt * (R + gamma * (P @ v) - v)
    return v


def _random_mdp(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    P = torch.rand(n, n, generator=g, dtype=torch.float64)
    return P / P.sum(1, keepdim=True), torch.randn(n, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 0.9])
def test_td_closed_form_matches_euler(gamma: float) -> None:
    P, R = _random_mdp(7, 0)
    v0 = torch.randn(7, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    t, dt = 3.0, 1e-4
    closed = td_closed_form(P, R, gamma, v0, [t])[0]
    euler = euler_td(P, R, gamma, v0, dt, round(t / dt))
    # Explicit Euler is first order: global error O(dt), here ≲ 1e-4 of the values.
    assert torch.allclose(closed, euler, atol=2e-4)
    # The generic augmented-exponential solver gives the same trajectory.
    A = gamma * P - torch.eye(7, dtype=torch.float64)
    assert torch.allclose(linear_ode_solution(A, R, v0, [t])[0], closed, atol=1e-10)


def test_value_function_is_bellman_fixed_point_and_limit() -> None:
    P, R = _random_mdp(6, 2)
    v_pi = value_function(P, R, 0.8)
    assert torch.allclose(v_pi, R + 0.8 * P @ v_pi, atol=1e-12)
    assert torch.allclose(td_closed_form(P, R, 0.8, torch.zeros(6, dtype=torch.float64), [200.0])[0], v_pi)
    assert torch.allclose(mc_closed_form(v_pi, torch.zeros(6, dtype=torch.float64), [0.0])[0], torch.zeros(6).double())


def test_circle_mdp_value_is_geometric() -> None:
    P, R = circle_mdp(50, 25, "shift")
    gamma = 0.5
    v = value_function(P, R, gamma)
    # From state s ≤ 25 the reward state is 25 − s steps ahead, then every 50 steps: V = γ^{25−s} / (1 − γ^50).
    for s in (1, 10, 25):
        assert float(v[s - 1]) == pytest.approx(gamma ** (25 - s) / (1 - gamma**50), rel=1e-12)
    assert torch.allclose(P.sum(1), torch.ones(50, dtype=torch.float64))


@pytest.mark.parametrize("policy", ["shift", "random_walk"])
def test_observation_4_1_coefficient_decay(policy: str) -> None:
    P, R = circle_mdp(12, 4, policy)
    gamma, t = 0.9, 2.5
    v0 = torch.randn(12, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    v_pi = value_function(P, R, gamma)
    lam, a_t = eigen_coefficients(P, td_closed_form(P, R, gamma, v0, [t])[0])
    _, a_pi = eigen_coefficients(P, v_pi)
    _, a_0 = eigen_coefficients(P, v0)
    expected = torch.exp(-t * (1 - gamma * lam)) * (a_0 - a_pi)
    assert torch.allclose(a_t - a_pi, expected, atol=1e-10)


def test_kernel_td_with_identity_kernel_on_all_states_is_tabular_td() -> None:
    P, R = _random_mdp(5, 4)
    A, c = kernel_td_system(torch.eye(5, dtype=torch.float64), P, R, 0.7, torch.arange(5))
    v0 = torch.zeros(5, dtype=torch.float64)
    assert torch.allclose(linear_ode_solution(A, c, v0, [1.3])[0], td_closed_form(P, R, 0.7, v0, [1.3])[0])


def test_kernel_td_closed_form_matches_euler_and_untrained_states_follow_kernel() -> None:
    P, R = circle_mdp(10, 3, "shift")
    K = rbf_kernel(torch.arange(1, 11, dtype=torch.float64), 1.5)
    train = torch.arange(7)
    A, c = kernel_td_system(K, P, R, 0.9, train)
    v0 = torch.zeros(10, dtype=torch.float64)
    v, dt = v0.clone(), 1e-4
    for _ in range(round(1.0 / dt)):
        v = v + dt * (A @ v + c)
    closed = linear_ode_solution(A, c, v0, [1.0])[0]
    assert torch.allclose(closed, v, atol=1e-4)
    # Lyle 2022b eq. 51: test-state changes are the kernel interpolation of train-state changes, V_t(test) − V_0(test)
    # = K(test, tr) K(tr, tr)^{-1} (V_t(tr) − V_0(tr)).
    test = torch.arange(7, 10)
    interp = K[test][:, train] @ torch.linalg.solve(K[train][:, train], closed[train] - v0[train])
    assert torch.allclose(closed[test] - v0[test], interp, atol=1e-8)


def test_kernel_rates_are_nonzero_spectrum() -> None:
    P, R = circle_mdp(8, 2, "shift")
    K = rbf_kernel(torch.arange(1, 9, dtype=torch.float64), 0.8)
    train = torch.arange(6)
    A, _ = kernel_td_system(K, P, R, 0.5, train)
    rates = kernel_rates(K, 0.5 * P - torch.eye(8, dtype=torch.float64), train)
    full = torch.linalg.eigvals(A)
    nonzero = full[full.abs() > 1e-9]
    key = lambda z: (round(float(z.real), 6), round(float(z.imag), 6))  # noqa: E731
    assert sorted(map(key, rates)) == sorted(map(key, nonzero))
    # MC kernel regression on the train states is a gradient flow: every rate is real and ≤ 0.
    mc = kernel_rates(K, -torch.eye(8, dtype=torch.float64), train)
    assert float(mc.real.max()) < 0 and float(mc.imag.abs().max()) < 1e-10
    A_mc, c_mc = kernel_mc_system(K, value_function(P, R, 0.5), train)
    assert torch.allclose(torch.linalg.eigvals(A_mc).real.max(), torch.tensor(0.0, dtype=torch.float64), atol=1e-9)
    assert math.isfinite(float(c_mc.sum()))


def test_bad_inputs() -> None:
    P, R = circle_mdp(5, 2)
    with pytest.raises(ValueError, match="gamma"):
        value_function(P, R, 1.0)
    with pytest.raises(ValueError, match="policy"):
        circle_mdp(5, 2, "teleport")
    with pytest.raises(ValueError, match="reward_state"):
        circle_mdp(5, 9)
    with pytest.raises(ValueError, match="lengthscale"):
        rbf_kernel(torch.arange(3.0), 0.0)
    with pytest.raises(ValueError, match="train_idx"):
        kernel_td_system(torch.eye(5, dtype=torch.float64), P, R, 0.5, torch.tensor([0, 7]))
