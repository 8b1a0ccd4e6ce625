"""PPO trust-region toy (Moalla et al. 2024 App. C): autograd + shared PPO loss vs the closed-form update."""

from __future__ import annotations

import math

import pytest
import torch

from repdyn.theory.trust_region_toy import simulate, simulate_many


def action_probs(theta: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """Softmax probabilities π(a_i|s) ∝ exp(θ_i φ(s)) for 1-D features ``phi`` [N] and head ``theta`` [2] → [N, 2]."""
    return torch.softmax(phi[:, None] * theta[None, :], dim=-1)


def closed_form_step(
    theta: torch.Tensor, phi_s: float, old_prob_a1: float, advantage: float, lr: float, clip_eps: float
) -> torch.Tensor:
    """One SGD ascent step of PPO-Clip on the single sample (s, a1), in closed form (Moalla et al. App. C, eqs. 3-4).

    θ1_new = θ1 + δ_s, θ2_new = θ2 − δ_s, δ_s = η · A/π_old(a1|s) · φ(s) · π_θ(a1|s) π_θ(a2|s), where the bracket is
    ∂π(a1|s)/∂θ1 = −∂π(a1|s)/∂θ2. The clipped surrogate has zero gradient when the ratio r = π_θ(a1|s)/π_old(a1|s)
    is past the clip limit in the direction the advantage pushes (r > 1 + ε for A > 0, r < 1 − ε for A < 0).
    """
    p = action_probs(theta, torch.tensor([phi_s], dtype=theta.dtype))[0]
    ratio = p[0] / old_prob_a1
    if (advantage > 0 and ratio > 1 + clip_eps) or (advantage < 0 and ratio < 1 - clip_eps):
        return theta.clone()
    delta = lr * advantage / old_prob_a1 * phi_s * p[0] * p[1]
    return theta + torch.stack([delta, -delta])


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def test_closed_form_step_known_numbers() -> None:
    # θ0 = 0, φ = 1: π = ½, δ = η A/π_old φ π1 π2 = 1.5 · 2 · 1 · ¼ = 0.75 → θ = (0.75, −0.75), π(a1|x) = σ(1.5).
    theta = closed_form_step(torch.zeros(2, dtype=torch.float64), 1.0, 0.5, 1.0, 1.5, 0.1)
    assert torch.allclose(theta, torch.tensor([0.75, -0.75], dtype=torch.float64))
    p = action_probs(theta, torch.tensor([1.0, 3.0, -1.0], dtype=torch.float64))[:, 0]
    assert p.tolist() == pytest.approx([_sigmoid(1.5), _sigmoid(4.5), _sigmoid(-1.5)], abs=1e-12)


def test_closed_form_step_zero_past_clip() -> None:
    theta = torch.tensor([2.0, -2.0], dtype=torch.float64)
    # π(a1) = σ(4) ≈ 0.982 against π_old = 0.5: ratio 1.96 > 1 + ε with A > 0 → no update.
    assert torch.equal(closed_form_step(theta, 1.0, 0.5, 1.0, 1.5, 0.1), theta)
    # Same ratio with A < 0 is inside the gradient region of min(rA, clip(r)A) → it moves.
    assert not torch.equal(closed_form_step(theta, 1.0, 0.5, -1.0, 1.5, 0.1), theta)


@pytest.mark.parametrize("alpha", [3.0, -1.0])
@pytest.mark.parametrize(("phi_x", "theta0"), [(0.39, (0.2, -0.4)), (-1.3, (0.7, 0.1)), (0.05, (0.0, 0.0))])
def test_first_step_matches_closed_form(alpha: float, phi_x: float, theta0: tuple[float, float]) -> None:
    res = simulate(alpha, phi_x, theta0, clip_eps=0.1, lr=1.5, epochs=1)
    t0 = torch.tensor(theta0, dtype=torch.float64)
    old_px = float(action_probs(t0, torch.tensor([phi_x], dtype=torch.float64))[0, 0])
    expected = closed_form_step(t0, phi_x, old_px, 1.0, 1.5, 0.1)
    got = torch.tensor([res.table["theta1"].iloc[1], res.table["theta2"].iloc[1]], dtype=torch.float64)
    assert torch.allclose(got, expected, atol=1e-12)
    # The step on x moves π(a1|y) exactly as App. C says: up for α > 0, down for α < 0.
    p_y = action_probs(expected, torch.tensor([alpha * phi_x], dtype=torch.float64))[0, 0]
    assert res.table["p_a1_y"].iloc[1] == pytest.approx(float(p_y), abs=1e-12)
    moved_up = res.table["p_a1_y"].iloc[1] > res.table["p_a1_y"].iloc[0]
    assert moved_up == (alpha * phi_x * phi_x > 0)


def test_whole_trajectory_matches_iterated_closed_form() -> None:
    phi_x, theta0, alpha = 0.8, torch.tensor([0.3, -0.1], dtype=torch.float64), -1.0
    res = simulate(alpha, phi_x, theta0, epochs=10)
    old = action_probs(theta0, torch.tensor([phi_x, alpha * phi_x], dtype=torch.float64))[:, 0]
    theta = theta0.clone()
    for step in range(1, 21):
        i = (step - 1) % 2
        theta = closed_form_step(theta, [phi_x, alpha * phi_x][i], float(old[i]), 1.0, 1.5, 0.1)
        row = res.table.iloc[step]
        assert [row["theta1"], row["theta2"]] == pytest.approx(theta.tolist(), abs=1e-10)


def test_simulate_many_matches_simulate() -> None:
    phis = torch.tensor([0.39, -1.3, 0.9], dtype=torch.float64)
    thetas = torch.tensor([[0.2, -0.4], [0.7, 0.1], [-0.5, 0.5]], dtype=torch.float64)
    for alpha in (3.0, -1.0):
        many = simulate_many(alpha, phis, thetas)
        for b in range(3):
            single = simulate(alpha, float(phis[b]), thetas[b]).table[["ratio_x", "ratio_y"]].to_numpy()
            assert torch.allclose(many[:, b], torch.tensor(single), atol=1e-10)


def test_collapse_breaks_the_trust_region() -> None:
    # φ(x) = 0.3, θ0 = 0: an own step moves the ratio by ~1.07 < 1 + ε, so only interference can break the region.
    over = simulate(3.0, 0.3, (0.0, 0.0)).table
    assert over["ratio_x"].iloc[1] < 1.1  # own step on x stays inside its clip range
    assert over["ratio_y"].iloc[1] > 1.1  # …but y is pushed past ITS limit by x's step (overshoot)
    inter = simulate(-1.0, 0.3, (0.0, 0.0)).table
    assert min(inter["ratio_x"].iloc[-1], inter["ratio_y"].iloc[-1]) < 1.0  # one ends below its initial value


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="order"):
        simulate(3.0, 0.4, (0.0, 0.0), order="zz")
    with pytest.raises(ValueError, match="clip_eps"):
        simulate(3.0, 0.4, (0.0, 0.0), clip_eps=1.5)
    with pytest.raises(ValueError, match="epochs"):
        simulate(3.0, 0.4, (0.0, 0.0), epochs=0)
