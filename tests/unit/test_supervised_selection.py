"""Selection rules of Jansson 2025 §3.6: swap search never lowers its metric; top-n by K(x, x) maximises the trace."""

from __future__ import annotations

import itertools

import pytest
import torch

from repdyn.metrics.ntk import kernel_test_alignment, ntk_gram, ntk_metrics
from repdyn.models.mlp import MLP
from repdyn.supervised.selection import METRICS, all_subset_metrics, subset_metric, swap_search, top_n_by_diag


def _kernel(n: int = 12, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    x, y = torch.randn(n, 3, dtype=torch.float64), torch.randn(n, dtype=torch.float64)
    return ntk_gram(MLP(3, (16, 16), 1, activation="relu", init="default").double(), x), y


@pytest.mark.parametrize("metric", METRICS)
def test_swap_search_never_decreases_its_metric(metric: str) -> None:
    K, y = _kernel(20)
    pool, test = torch.arange(14), torch.arange(14, 20)

    def fn(idx: torch.Tensor) -> float:
        return subset_metric(K, y, idx, metric, test if metric == "kernel_test_alignment" else None)

    init = torch.tensor([0, 1, 2, 3, 4])
    idx, values = swap_search(fn, init, pool, 60, torch.Generator().manual_seed(1))
    assert len(values) == 61
    assert all(b >= a for a, b in zip(values, values[1:], strict=False))
    assert values[-1] == pytest.approx(fn(idx))  # the returned set has the last recorded value
    assert idx.numel() == 5 and idx.unique().numel() == 5 and bool(torch.isin(idx, pool).all())
    if metric == "trace":  # {0..4} is not the top-5 by K(x, x) here, so some swap must have helped
        assert values[-1] > values[0]


def test_swap_search_with_a_noisy_metric_is_still_monotone() -> None:
    gen_noise = torch.Generator().manual_seed(5)

    def noisy(idx: torch.Tensor) -> float:  # re-evaluating the same set gives a different value
        return float(idx.double().sum() + torch.randn((), generator=gen_noise, dtype=torch.float64) * 3)

    _, values = swap_search(noisy, torch.arange(4), torch.arange(10), 50, torch.Generator().manual_seed(0))
    assert all(b >= a for a, b in zip(values, values[1:], strict=False))


def test_top_n_maximises_trace_exactly() -> None:
    K, y = _kernel(12, seed=3)
    pool = torch.tensor([0, 2, 3, 5, 6, 8, 9, 11])
    diag = torch.diagonal(K)
    for n in (1, 3, 5):
        best = max(
            subset_metric(K, y, torch.tensor(c), "trace", None) for c in itertools.combinations(pool.tolist(), n)
        )
        idx = top_n_by_diag(diag, pool, n)
        assert subset_metric(K, y, idx, "trace", None) == pytest.approx(best, rel=1e-12)
        assert bool(torch.isin(idx, pool).all()) and idx.unique().numel() == n


def test_subset_metrics_are_the_metrics_package_formulas() -> None:
    K, y = _kernel(10)
    idx, ref = torch.tensor([1, 4, 7, 8]), torch.tensor([0, 2, 3])
    got = all_subset_metrics(K, y, idx, ref)
    want = ntk_metrics(K[idx][:, idx], y[idx])
    assert got["trace"] == pytest.approx(float(torch.diagonal(K)[idx].mean()))
    assert got["entropy"] == pytest.approx(want["entropy"])
    assert got["kernel_alignment"] == pytest.approx(want["kernel_alignment"])
    assert got["kernel_test_alignment"] == pytest.approx(kernel_test_alignment(K[ref][:, idx], y[idx], y[ref]))


def test_bad_inputs() -> None:
    K, y = _kernel(6)
    with pytest.raises(ValueError, match="metric must be one of"):
        subset_metric(K, y, torch.arange(3), "rank", None)
    with pytest.raises(ValueError, match="reference set"):
        subset_metric(K, y, torch.arange(3), "kernel_test_alignment", None)
    with pytest.raises(ValueError, match="subset of candidates"):
        swap_search(lambda i: 0.0, torch.tensor([9]), torch.arange(5), 3, torch.Generator())
    with pytest.raises(ValueError, match="n must be in"):
        top_n_by_diag(torch.diagonal(K), torch.arange(4), 5)
