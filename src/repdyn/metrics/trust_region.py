"""Trust-region statistics of PPO probability ratios (docs/metrics.md#trust-region; Moalla et al. 2024 §3-4, App. B.4).

r = π_θ(a|s) / π_old(a|s) for every sample of the whole optimisation phase of a batch (all epochs, all minibatches):

- ``ratio_above_mean`` = mean{r : r > 1 + ε}, ``n_above`` = #{r > 1 + ε};
- ``ratio_below_mean`` = mean{r : r < 1 − ε}, ``n_below`` = #{r < 1 − ε};
- ``excess_ratio`` = ratio_above_mean / ratio_below_mean.

A mean over an empty set is undefined, so ``ratio_above_mean`` / ``ratio_below_mean`` are absent when their set is
empty and ``excess_ratio`` is absent unless both sets are non-empty (not logged). For continuous actions
ratios are clipped to [1e-12, 1e12] before averaging (App. B.4: they diverge to 0 and ∞ before collapse). NaN ratios
belong to neither set.

Degenerate input (the collapse regime, e.g. ``agent.lr=100``, is what these statistics exist to measure, so none of
them may raise there). A discrete π_θ(a|s) that underflowed to exactly 0 gives ratios of 0 below the range and
``ratio_below_mean = 0``; the ratio of means is then taken with its denominator floored at the continuous clip's lower
end, ``excess_ratio = ratio_above_mean / max(ratio_below_mean, 1e-12)`` (so at most 1e12 × ratio_above_mean, a large
finite value, instead of a division by zero). For finite ratios (non-negative by construction) every returned value is
finite; all ratios inside the range give only ``n_above = n_below = 0``; a single sample is a set of one. Non-finite
ratios: NaN is in neither set; +inf is above the range (continuous: clipped to 1e12; discrete: ``ratio_above_mean`` and
``excess_ratio`` are then +inf, which the training loop reads as divergence). Ratios and the PPO-Clip objective:
Schulman, Wolski, Dhariwal, Radford & Klimov 2017, "Proximal Policy Optimization Algorithms", arXiv:1707.06347; the
above/below statistics: Moalla, Miele, Pyatko, Pascanu & Gulcehre 2024, "No Representation, No Trust: Connecting
Representation, Collapse, and Trust Issues in PPO", arXiv:2405.00662.

The clipped surrogate itself lives in :func:`repdyn.agents.losses.ppo_clip_objective` (shared with the theory toy).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["approx_kl", "clip_fraction", "trust_region_metrics"]

RATIO_CLIP = (1e-12, 1e12)


def _flat(ratios: Tensor | Sequence[Tensor]) -> Tensor:
    if isinstance(ratios, Tensor):
        return ratios.detach().reshape(-1)
    if len(ratios) == 0:
        raise ValueError("ratios must hold at least one tensor")
    return torch.cat([r.detach().reshape(-1) for r in ratios])


def trust_region_metrics(ratios: Tensor | Sequence[Tensor], eps: float, continuous: bool) -> dict[str, float]:
    """Ratio statistics above / below the clip range [1 − ε, 1 + ε] (module docstring).

    ``ratios``: a tensor or a list of per-minibatch tensors (concatenated; float64 accumulation so 1e12-clipped
    values average exactly). Returns n_above, n_below always, the means and ``excess_ratio`` when defined.

    Degenerate input: never raises for a tensor of any values (module docstring); ``excess_ratio`` =
    ratio_above_mean / max(ratio_below_mean, 1e-12), finite whenever the ratios are."""
    if not 0.0 < eps < 1.0:
        raise ValueError(f"eps must be in (0, 1), got {eps!r}")
    r = _flat(ratios).double()
    if continuous:
        r = r.clamp(*RATIO_CLIP)
    above = r[r > 1.0 + eps]
    below = r[r < 1.0 - eps]
    out: dict[str, float] = {"n_above": float(above.numel()), "n_below": float(below.numel())}
    if above.numel():
        out["ratio_above_mean"] = above.mean().item()
    if below.numel():
        out["ratio_below_mean"] = below.mean().item()
    if above.numel() and below.numel():
        # floored denominator: discrete ratios reach exactly 0 at collapse (module docstring)
        out["excess_ratio"] = (above.mean() / below.mean().clamp_min(RATIO_CLIP[0])).item()
    return out


def approx_kl(log_ratio: Tensor) -> tuple[float, float]:
    """Estimators of KL(π_old ‖ π_θ) from log r = log π_θ − log π_old on samples from π_old (Schulman 2020,
    "Approximating KL divergence"): k1 = mean(−log r) (unbiased, high variance), k3 = mean((r − 1) − log r)
    (unbiased, non-negative). Returns ``(k1, k3)``.

    Degenerate input: all-zero log-ratios (π_θ = π_old) give (0, 0); one sample is its own mean. Any non-finite
    log-ratio gives (NaN, NaN). Finite input gives finite values except k3 = +inf when a log-ratio exceeds
    log(float64 max) ≈ 709.78 (e^x is then not representable; the true k3 exceeds 1e308)."""
    lr = log_ratio.detach().double().reshape(-1)
    if lr.numel() == 0:
        raise ValueError("log_ratio must be non-empty")
    if not bool(torch.isfinite(lr).all()):
        return float("nan"), float("nan")
    return (-lr).mean().item(), (torch.expm1(lr) - lr).mean().item()


def clip_fraction(ratios: Tensor | Sequence[Tensor], eps: float) -> float:
    """Fraction of samples whose ratio is outside [1 − ε, 1 + ε] (where PPO-Clip's gradient is zeroed or clipped).

    Degenerate input: always finite in [0, 1]; a NaN ratio counts as inside (the same rule as
    :func:`trust_region_metrics`, where NaN belongs to neither set), ±inf as outside."""
    if not 0.0 < eps < 1.0:
        raise ValueError(f"eps must be in (0, 1), got {eps!r}")
    r = _flat(ratios).double()
    return ((r - 1.0).abs() > eps).double().mean().item()
