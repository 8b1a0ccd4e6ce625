"""Dead and dormant units (docs/metrics.md#dead-and-dormant-units) on hand-made batches with planted units."""

from __future__ import annotations

import pytest
import torch

from repdyn.metrics.units import dead_units, dormant_units


def test_relu_dead_units_are_exact_zero_columns() -> None:
    g = torch.Generator().manual_seed(0)
    h = torch.relu(torch.randn(64, 10, generator=g)) + 0.01  # every unit alive
    h[:, [1, 4, 7]] = 0.0  # planted dead units
    h[:, 2] = 0.0
    h[5, 2] = 0.3  # zero on all but one sample: alive
    assert dead_units(h, "relu") == {"dead_units": 3.0, "dead_units_frac": 0.3}


def test_tanh_dead_units_use_std_threshold() -> None:
    g = torch.Generator().manual_seed(1)
    h = torch.tanh(torch.randn(64, 8, generator=g))
    h[:, 0] = 0.7 + 1e-5 * torch.randn(64, generator=g)  # saturated, std ≈ 1e-5: dead
    h[:, 3] = -1.0  # constant: dead
    h[:, 5] = 0.2 + 0.01 * torch.randn(64, generator=g)  # std ≈ 1e-2: alive
    assert dead_units(h, "tanh") == {"dead_units": 2.0, "dead_units_frac": 0.25}
    # the ReLU rule would call none of them dead (no exact-zero columns)
    assert dead_units(h, "relu")["dead_units"] == 0.0


def test_dormant_units_hand_made_batch() -> None:
    # mean |h| per unit = (1, 2, 0, 0.01); layer mean 0.7525; scores (1.33, 2.66, 0, 0.0133)
    h = torch.tensor([[1.0, 2.0, 0.0, 0.01], [-1.0, 2.0, 0.0, -0.01]])
    assert dormant_units(h, tau=0.025) == {"dormant_units": 2.0, "dormant_units_frac": 0.5}
    assert dormant_units(h, tau=0.01)["dormant_units"] == 1.0
    assert dormant_units(h, tau=0.0)["dormant_units"] == 1.0  # s_i ≤ τ includes exact zeros
    assert dormant_units(torch.zeros(3, 4))["dormant_units"] == 4.0


def test_bad_input_raises() -> None:
    with pytest.raises(ValueError, match="activation"):
        dead_units(torch.ones(3, 2), "sigmoid")
    with pytest.raises(ValueError, match="features"):
        dormant_units(torch.ones(3))
