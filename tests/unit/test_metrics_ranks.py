"""Rank metrics against a float64 numpy reference on matrices of exact rank and known singular values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from repdyn.metrics.ranks import RANK_KEYS, rank_metrics, rank_metrics_batched


def numpy_reference(phi: np.ndarray, delta: float) -> dict[str, float]:
    """Independent float64 implementation of the rank metrics (zero matrix: every rank 0)."""
    n, d = phi.shape
    s = np.linalg.svd(phi, compute_uv=False)
    if s.sum() == 0:
        return dict.fromkeys(RANK_KEYS, 0.0)
    p = s / s.sum()
    nz = p[p > 0]
    cum_sq = np.cumsum(s**2) / np.sum(s**2)
    cum = np.cumsum(s) / np.sum(s)
    tol = s[0] * max(n, d) * np.finfo(phi.dtype).eps
    return {
        "effective_rank": float(np.exp(-(nz * np.log(nz)).sum())),
        "approx_rank": float(min(np.argmax(cum_sq > 1 - delta) + 1, len(s))),
        "srank": float(min(np.argmax(cum > 1 - delta) + 1, len(s))),
        "feature_rank": float((s / math.sqrt(n) > delta).sum()),
        "numerical_rank": float((s > tol).sum()),
        "stable_rank": float((s**2).sum() / s[0] ** 2),
        "sv_max": s[0] / math.sqrt(n),
        "sv_2": (s[1] if len(s) > 1 else 0.0) / math.sqrt(n),
        "sv_min": s[-1] / math.sqrt(n),
    }


def exact_rank_matrix(n: int, d: int, r: int, seed: int = 0) -> np.ndarray:
    """Φ = U diag(s) Vᵀ with r non-zero singular values spread over [1, 10]·√n."""
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.standard_normal((n, n)))
    v, _ = np.linalg.qr(rng.standard_normal((d, d)))
    s = np.linspace(10.0, 1.0, r) * math.sqrt(n) if r else np.zeros(0)
    return (u[:, :r] * s) @ v[:, :r].T


@pytest.mark.parametrize(
    ("n", "d", "r"),
    [(50, 8, 0), (50, 8, 1), (50, 8, 5), (50, 8, 8), (6, 10, 1), (6, 10, 3), (6, 10, 6)],
)
def test_exact_rank_matches_numpy_reference(n: int, d: int, r: int) -> None:
    phi = exact_rank_matrix(n, d, r)
    ours = rank_metrics(torch.from_numpy(phi), delta=0.01)
    ref = numpy_reference(phi, 0.01)
    assert set(ours) == set(RANK_KEYS)
    for key in RANK_KEYS:
        assert ours[key] == pytest.approx(ref[key], rel=1e-9, abs=1e-9), key
    # every absolute / count rank recovers the planted rank exactly
    for key in ("feature_rank", "numerical_rank"):
        assert ours[key] == r, key
    assert ours["numerical_rank"] == torch.linalg.matrix_rank(torch.from_numpy(phi)).item()


def test_float32_numerical_rank_matches_torch_matrix_rank() -> None:
    phi = torch.from_numpy(exact_rank_matrix(64, 16, 7)).float()
    assert rank_metrics(phi)["numerical_rank"] == torch.linalg.matrix_rank(phi).item() == 7


def test_known_singular_values() -> None:
    # σ = (4, 2, 1, 1) on N = 100 rows: p = (1/2, 1/4, 1/8, 1/8), H = 1.75 ln 2.
    n = 100
    s = torch.tensor([4.0, 2.0, 1.0, 1.0], dtype=torch.float64)
    phi = torch.zeros(n, 4, dtype=torch.float64)
    phi[:4, :4] = torch.diag(s)
    m = rank_metrics(phi, delta=0.01)
    assert m["effective_rank"] == pytest.approx(2**1.75)
    assert m["stable_rank"] == pytest.approx(22 / 16)
    assert m["approx_rank"] == 4 and m["srank"] == 4
    assert (m["sv_max"], m["sv_2"], m["sv_min"]) == pytest.approx((0.4, 0.2, 0.1))
    # cumulative σ²: 16/22 = .727, 20/22 = .909; cumulative σ: .5, .75, .875
    assert rank_metrics(phi, delta=0.1)["approx_rank"] == 2
    assert rank_metrics(phi, delta=0.2)["srank"] == 3
    assert rank_metrics(phi, delta=0.15)["feature_rank"] == 2  # σ/√N = .4, .2, .1, .1


def test_zero_matrix_has_every_rank_zero() -> None:
    m = rank_metrics(torch.zeros(10, 4))
    assert m == dict.fromkeys(RANK_KEYS, 0.0)


def test_batched_equals_single() -> None:
    phis = torch.stack([torch.from_numpy(exact_rank_matrix(20, 6, r, seed=r)) for r in (0, 2, 6)])
    batched = rank_metrics_batched(phis)
    for b in range(3):
        single = rank_metrics(phis[b])
        for key in RANK_KEYS:
            assert batched[key][b].item() == pytest.approx(single[key], abs=1e-12)
    assert batched["numerical_rank"].tolist() == [0.0, 2.0, 6.0]


def test_non_finite_gives_nan_not_an_error() -> None:
    phi = torch.ones(5, 3)
    phi[0, 0] = float("inf")
    assert all(math.isnan(v) for v in rank_metrics(phi).values())


def test_bad_input_raises() -> None:
    with pytest.raises(ValueError, match="delta"):
        rank_metrics(torch.ones(3, 2), delta=1.5)
    with pytest.raises(ValueError, match="phi"):
        rank_metrics(torch.ones(3))
