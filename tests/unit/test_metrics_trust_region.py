"""Trust-region statistics (docs/metrics.md#trust-region) on hand-made ratio vectors."""

from __future__ import annotations

import math

import pytest
import torch

from repdyn.metrics.trust_region import approx_kl, clip_fraction, trust_region_metrics


def test_excess_ratio_hand_made() -> None:
    r = torch.tensor([1.5, 1.3, 0.5, 0.7, 1.0, 1.05, 0.85])
    m = trust_region_metrics(r, eps=0.2, continuous=False)
    assert m == {
        "n_above": 2.0,
        "n_below": 2.0,
        "ratio_above_mean": pytest.approx(1.4),
        "ratio_below_mean": pytest.approx(0.6),
        "excess_ratio": pytest.approx(1.4 / 0.6),
    }
    # a list of per-minibatch tensors is the same optimisation phase
    assert trust_region_metrics([r[:3], r[3:]], eps=0.2, continuous=False) == m


def test_excess_ratio_absent_when_a_side_is_empty() -> None:
    m = trust_region_metrics(torch.tensor([1.5, 1.0, 0.95]), eps=0.1, continuous=False)
    assert m == {"n_above": 1.0, "n_below": 0.0, "ratio_above_mean": 1.5}
    m = trust_region_metrics(torch.tensor([1.0, 1.05]), eps=0.1, continuous=True)
    assert m == {"n_above": 0.0, "n_below": 0.0}


def test_continuous_ratios_are_clipped() -> None:
    r = torch.tensor([1e20, float("inf"), 1e-20, 0.0], dtype=torch.float64)
    cont = trust_region_metrics(r, eps=0.2, continuous=True)
    assert cont["ratio_above_mean"] == 1e12 and cont["ratio_below_mean"] == 1e-12
    assert cont["excess_ratio"] == pytest.approx(1e24)
    disc = trust_region_metrics(r, eps=0.2, continuous=False)
    assert math.isinf(disc["ratio_above_mean"]) and disc["ratio_below_mean"] == 5e-21


def test_approx_kl_and_clip_fraction() -> None:
    k1, k3 = approx_kl(torch.tensor([0.0, math.log(2.0)]))
    assert k1 == pytest.approx(-math.log(2.0) / 2)
    assert k3 == pytest.approx((1 - math.log(2.0)) / 2)  # ((r − 1) − log r) averaged: (0 + (1 − ln 2)) / 2
    assert clip_fraction(torch.tensor([1.0, 1.3, 0.7, 1.1]), eps=0.2) == pytest.approx(0.5)


def test_bad_eps_raises() -> None:
    with pytest.raises(ValueError, match="eps"):
        trust_region_metrics(torch.ones(3), eps=0.0, continuous=False)
