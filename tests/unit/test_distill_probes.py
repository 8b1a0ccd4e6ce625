"""Robustness probes (docs/distillation.md#robustness-probes): exact at noise 0, falling for a network with a known
sensitive input, 1.0 for a constant-action network, defined on degenerate input."""

from __future__ import annotations

import torch

from repdyn.distill.probes import feature_std, interpolation_pairs, interpolation_probe, perturbation_probe

SCALES = [0.0, 0.01, 0.1, 0.5, 2.0]


def sign_of_first_input(x: torch.Tensor) -> torch.Tensor:
    """Action 1 when x_0 > 0 else action 0: states near x_0 = 0 flip under small noise."""
    return torch.stack([-x[:, 0], x[:, 0]], -1) * 10.0


def constant_action(x: torch.Tensor) -> torch.Tensor:
    return torch.stack([x.sum(-1), x.sum(-1) + 100.0], -1)


def test_perturbation_is_exactly_one_at_zero_noise_and_decreases_for_a_sensitive_input() -> None:
    states = torch.randn(512, 3, generator=torch.Generator().manual_seed(0))
    out = perturbation_probe(sign_of_first_input, states, SCALES, feature_std(states), torch.Generator().manual_seed(1))
    agree = [out[s][0] for s in SCALES]
    assert out[0.0] == (1.0, 0.0)
    assert all(a >= b for a, b in zip(agree, agree[1:], strict=False)), agree
    assert agree[-1] < 0.8 and agree[1] > 0.95, agree
    assert out[2.0][1] > out[0.01][1] > 0.0  # the L1 distance between output distributions grows with the noise


def test_constant_action_network_is_fully_robust_and_consistent() -> None:
    states = torch.randn(64, 3)
    out = perturbation_probe(constant_action, states, SCALES, feature_std(states), torch.Generator().manual_seed(1))
    assert all(out[s][0] == 1.0 for s in SCALES)
    first, second = interpolation_pairs(64, torch.Generator().manual_seed(2))
    assert interpolation_probe(constant_action, states[first], states[second], [0.25, 0.5, 0.75]) == {
        0.25: 1.0,
        0.5: 1.0,
        0.75: 1.0,
    }


def test_interpolation_counts_actions_outside_the_end_points() -> None:
    # three actions by the first input's band: end points in the outer bands, the midpoint in the middle one
    def bands(x: torch.Tensor) -> torch.Tensor:
        return torch.stack([-x[:, 0] - 0.5, -(x[:, 0].abs()), x[:, 0] - 0.5], -1)

    first, second = torch.tensor([[-2.0, 0.0]]), torch.tensor([[2.0, 0.0]])
    assert interpolation_probe(bands, first, second, [0.5]) == {0.5: 0.0}
    assert interpolation_probe(bands, first, second, [0.1]) == {0.1: 1.0}


def test_degenerate_inputs() -> None:
    empty = torch.zeros(0, 3)
    assert perturbation_probe(constant_action, empty, [0.0, 0.5], torch.zeros(3), torch.Generator()) == {
        0.0: (1.0, 0.0),
        0.5: (1.0, 0.0),
    }
    assert interpolation_probe(constant_action, empty, empty, [0.5]) == {0.5: 1.0}
    one = torch.ones(1, 3)
    assert feature_std(one).tolist() == [0.0, 0.0, 0.0]
    same = torch.ones(8, 3)  # constant features: zero std, so no noise at any scale
    out = perturbation_probe(sign_of_first_input, same, [0.5], feature_std(same), torch.Generator())
    assert out[0.5] == (1.0, 0.0)
