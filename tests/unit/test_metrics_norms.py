"""Norms, drift, policy variance, value stats and the combined representation record (docs/metrics.md#norms)."""

from __future__ import annotations

import math

import pytest
import torch

from repdyn.metrics.norms import feature_drift, feature_norm, policy_variance, preact_norm, preact_norm_all, value_stats
from repdyn.metrics.ranks import RANK_KEYS
from repdyn.metrics.representation import representation_metrics
from repdyn.models.mlp import MLP


def test_norms_hand_made() -> None:
    assert feature_norm(torch.tensor([[3.0, 4.0], [0.0, 0.0]])) == pytest.approx(2.5)
    pre = (torch.tensor([[3.0], [0.0]]), torch.tensor([[4.0, 0.0], [0.0, 1.0]]))
    assert preact_norm(pre) == pytest.approx(2.5)  # penultimate only: (4 + 1) / 2
    assert preact_norm_all(pre) == pytest.approx(3.0)  # (‖(3, 4, 0)‖ + ‖(0, 0, 1)‖) / 2


def test_feature_drift() -> None:
    start = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    end = torch.tensor([[0.0, 1.0], [0.0, 2.0], [0.0, 0.0]])
    d = feature_drift(start, end)
    assert d["feature_drift_l2"] == pytest.approx((math.sqrt(2) + 1 + 0) / 3)
    assert d["feature_drift_cos"] == pytest.approx((0 + 1 + 0) / 3)  # zero vector → cosine 0
    assert feature_drift(start[:2], start[:2]) == {"feature_drift_l2": 0.0, "feature_drift_cos": pytest.approx(1.0)}


def test_policy_variance() -> None:
    assert policy_variance(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), "categorical") == pytest.approx(0.25)
    same = torch.tensor([[0.3, 0.7]]).repeat(5, 1)
    assert policy_variance(same, "categorical") == 0.0  # collapsed: same distribution in every state
    assert policy_variance(same.log(), "categorical", from_logits=True) == pytest.approx(0.0, abs=1e-12)
    loc, scale = torch.tensor([[0.0], [2.0]]), torch.tensor([[1.0], [1.0]])
    assert policy_variance((loc, scale), "tanh_normal") == pytest.approx(0.5)  # (Var loc = 1 + Var scale = 0) / 2
    with pytest.raises(ValueError, match="kind"):
        policy_variance(loc, "beta")


def test_value_stats() -> None:
    assert value_stats(torch.tensor([[1.0], [3.0]])) == {"value_mean": 2.0, "value_std": 1.0}


def test_representation_metrics_keys_and_values() -> None:
    torch.manual_seed(0)
    net = MLP(5, (16, 8), 3, activation="relu")
    out, feats, pre = net(torch.randn(40, 5))
    m = representation_metrics(
        feats, pre, "relu", values=out[:, 0], policy=out, policy_kind="categorical", from_logits=True
    )
    expected = set(RANK_KEYS) | {
        "dead_units", "dead_units_frac", "dormant_units", "dormant_units_frac", "feature_norm", "preact_norm",
        "preact_norm_all", "value_mean", "value_std", "policy_variance",
    }  # fmt: skip
    assert set(m) == expected
    assert m["preact_norm"] == pytest.approx(pre[1].norm(dim=1).mean().item(), rel=1e-6)
    assert m["preact_norm_all"] == pytest.approx(torch.cat(pre, 1).norm(dim=1).mean().item(), rel=1e-6)
    with pytest.raises(ValueError, match="together"):
        representation_metrics(feats, pre, "relu", policy=out)
