"""Rank metrics of a feature matrix Φ ∈ R^{N×D} from ONE ``torch.linalg.svdvals`` (docs/metrics.md#feature-rank;
Moalla et al. 2024, arXiv:2405.00662, §2 and App. E.1).

With σ_1 ≥ … ≥ σ_K (K = min(N, D)) the singular values of Φ and δ the threshold (0.01 by default):

| key | formula | source |
|---|---|---|
| ``effective_rank`` | exp(H(p)), p_i = σ_i / Σσ, H Shannon entropy, 0·log 0 = 0 | Roy & Vetterli 2007; Moalla App. E |
| ``approx_rank`` | min k with Σ_{i≤k} σ_i² / Σ_j σ_j² > 1 − δ (PCA, 99% of the variance) | Moalla 2024 §2 |
| ``srank`` | min k with Σ_{i≤k} σ_i / Σ_j σ_j > 1 − δ | Kumar et al. 2021, arXiv:2010.14498 |
| ``feature_rank`` | #{i : σ_i / √N > δ} | Lyle et al. 2022, arXiv:2204.09560 |
| ``numerical_rank`` | #{i : σ_i > σ_1 · max(N, D) · eps(dtype)} (``matrix_rank`` default) | Moalla 2024 App. E |
| ``stable_rank`` | Σσ_i² / σ_1² = ‖Φ‖_F² / ‖Φ‖_2² | — |
| ``sv_max``, ``sv_2``, ``sv_min`` | σ_1/√N, σ_2/√N, σ_K/√N | Moalla 2024 (their code) |

Choices (the papers are silent): the zero matrix has every rank 0, *including* ``effective_rank = 0`` (the entropy is
0/0; 0 keeps "collapsed → 0" true for every variant); ``sv_2 = 0`` when K = 1; for N < D, σ_{N+1..D} are structurally
zero, so ``sv_min`` is σ_K with K = min(N, D) (the smallest *computed* singular value) rather than a trivial 0.
Non-finite Φ (a diverged network) gives NaN for every key instead of raising mid-run. Half-precision inputs are
promoted to float32 (LAPACK has no half SVD); ``numerical_rank`` uses the eps of the dtype the SVD runs in.

Degenerate input: the zero matrix gives 0 for every key; a rank-one matrix (constant entries, or every sample
identical: a collapsed representation) gives approx_rank = srank = numerical_rank = 1 and effective_rank ≈ stable_rank
≈ 1; one sample (N = 1) gives K = 1 and ``sv_2 = 0``. Finite input of any magnitude gives finite values: each matrix is
divided by its largest |entry| before the SVD (every rank is scale-invariant; the singular values are scaled back) and
the ranks are computed in float64, so entries near the float32 limits (1e30, 3.4e38, 1e-30) neither overflow σ² to inf
nor underflow it to 0. Only non-finite input gives NaN. Papers: Roy & Vetterli 2007, "The effective rank: A measure of
effective dimensionality" (EUSIPCO); Kumar, Agarwal, Ghosh & Levine 2021, "Implicit Under-Parameterization Inhibits
Data-Efficient Deep Reinforcement Learning", arXiv:2010.14498; Lyle, Rowland & Dabney 2022, "Understanding and
Preventing Capacity Loss in Reinforcement Learning", arXiv:2204.09560; Moalla, Miele, Pyatko, Pascanu & Gulcehre 2024,
"No Representation, No Trust: Connecting Representation, Collapse, and Trust Issues in PPO", arXiv:2405.00662.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["RANK_KEYS", "rank_metrics", "rank_metrics_batched", "ranks_from_svdvals"]

RANK_KEYS = (
    "effective_rank",
    "approx_rank",
    "srank",
    "feature_rank",
    "numerical_rank",
    "stable_rank",
    "sv_max",
    "sv_2",
    "sv_min",
)


def _check_delta(delta: float) -> None:
    if not 0.0 <= delta < 1.0:
        raise ValueError(f"delta must be in [0, 1), got {delta!r}")


def _min_k_exceeding(weights: Tensor, threshold: float) -> Tensor:
    """min k (1-based) with cumsum(w)[:k] / sum(w) > threshold, batched over leading dims; 0 where sum(w) = 0."""
    total = weights.sum(-1, keepdim=True)
    frac = weights.cumsum(-1) / total.clamp_min(torch.finfo(weights.dtype).tiny)
    # Rounding can leave the full cumulative fraction a hair below 1 (matters only for δ ≈ 0): cap at K.
    k = (frac <= threshold).sum(-1) + 1
    k = k.clamp_max(weights.shape[-1])
    return torch.where(total.squeeze(-1) > 0, k, torch.zeros_like(k))


def ranks_from_svdvals(
    s: Tensor, n: int, d: int, delta: float = 0.01, *, svd_eps: float | None = None
) -> dict[str, Tensor]:
    """All rank metrics from singular values ``s`` ``[..., K]`` (descending, non-negative) of ``[..., n, d]`` matrices.

    Returns a dict of float64 tensors shaped like the batch dims. ``svd_eps``: machine epsilon of the dtype the SVD ran
    in, for ``numerical_rank`` (default: that of ``s``'s dtype). See the module docstring.

    Degenerate input: all-zero ``s`` gives 0 for every key; any finite ``s`` (σ up to float64's range: the scale-free
    ranks are computed on σ / σ_1) gives finite values; a matrix whose ``s`` holds a non-finite value gets NaN for every
    key."""
    _check_delta(delta)
    eps = torch.finfo(s.dtype).eps if svd_eps is None else svd_eps
    finite = torch.isfinite(s).all(-1)
    s = torch.where(finite.unsqueeze(-1), s, torch.zeros_like(s)).double()
    sqrt_n = math.sqrt(n)
    s1 = s[..., 0]
    positive = s1 > 0
    # every rank below is scale-invariant: compute it on σ / σ_1 ∈ [0, 1], whose squares cannot overflow or underflow
    u = s / torch.where(positive, s1, torch.ones_like(s1)).unsqueeze(-1)
    tiny = torch.finfo(u.dtype).tiny

    p = u / u.sum(-1, keepdim=True).clamp_min(tiny)
    plogp = torch.where(p > 0, p * torch.log(p.clamp_min(tiny)), torch.zeros_like(p))
    effective = torch.where(positive, torch.exp(-plogp.sum(-1)), torch.zeros_like(s1))

    out = {
        "effective_rank": effective,
        "approx_rank": _min_k_exceeding(u.square(), 1.0 - delta).to(u.dtype),
        "srank": _min_k_exceeding(u, 1.0 - delta).to(u.dtype),
        "feature_rank": (s / sqrt_n > delta).sum(-1).to(u.dtype),
        "numerical_rank": (u > max(n, d) * eps).sum(-1).to(u.dtype) * positive,
        "stable_rank": torch.where(positive, u.square().sum(-1), 0.0),
        "sv_max": s1 / sqrt_n,
        "sv_2": (s[..., 1] if s.shape[-1] > 1 else torch.zeros_like(s1)) / sqrt_n,
        "sv_min": s[..., -1] / sqrt_n,
    }
    nan = torch.full_like(s1, float("nan"))
    return {k: torch.where(finite, v, nan) for k, v in out.items()}


def _svdvals(phis: Tensor) -> tuple[Tensor, Tensor, float]:
    """float64 svdvals of each finite matrix, computed on the matrix divided by its largest |entry| (so no entry
    overflows or underflows inside LAPACK) and scaled back; returns (s, finite mask over the batch, eps of the dtype the
    SVD ran in)."""
    if phis.dtype in (torch.float16, torch.bfloat16) or not phis.is_floating_point():
        phis = phis.float()
    phis = phis.detach()
    finite = torch.isfinite(phis).flatten(-2).all(-1)
    safe = torch.where(finite[..., None, None], phis, torch.zeros_like(phis))
    scale = safe.abs().amax(dim=(-2, -1))
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    s = torch.linalg.svdvals(safe / scale[..., None, None])
    return s.double() * scale.double().unsqueeze(-1), finite, torch.finfo(phis.dtype).eps


def rank_metrics_batched(phis: Tensor, delta: float = 0.01) -> dict[str, Tensor]:
    """Rank metrics for a stack of equal-shape feature matrices ``[B, N, D]`` (one batched SVD); values ``[B]``."""
    _check_delta(delta)
    if phis.ndim != 3 or phis.shape[1] == 0 or phis.shape[2] == 0:
        raise ValueError(f"phis must be a non-empty stack of matrices [B, N, D], got shape {tuple(phis.shape)}")
    s, finite, svd_eps = _svdvals(phis)
    out = ranks_from_svdvals(s, phis.shape[1], phis.shape[2], delta, svd_eps=svd_eps)
    nan = torch.full_like(finite, float("nan"), dtype=s.dtype)
    return {k: torch.where(finite, v, nan) for k, v in out.items()}


def rank_metrics(phi: Tensor, delta: float = 0.01) -> dict[str, float]:
    """Rank metrics of one feature matrix ``phi`` ``[N, D]``, as Python floats keyed by :data:`RANK_KEYS`."""
    if phi.ndim != 2:
        raise ValueError(f"phi must be a matrix [N, D], got shape {tuple(phi.shape)}")
    return {k: v.item() for k, v in rank_metrics_batched(phi.unsqueeze(0), delta).items()}
