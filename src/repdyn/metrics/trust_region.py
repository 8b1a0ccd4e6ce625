"""Trust-region statistics of PPO probability ratios (docs/metrics.md#trust-region; Moalla et al. 2024 §3-4, App. B.4).

r = π_θ(a|s) / π_old(a|s) for every sample of the whole optimisation phase of a batch (all epochs, all minibatches):

- ``ratio_above_mean`` = mean{r : r > 1 + ε}, ``n_above`` = #{r > 1 + ε};
- ``ratio_below_mean`` = mean{r : r < 1 − ε}, ``n_below`` = #{r < 1 − ε};
- ``excess_ratio`` = ratio_above_mean / ratio_below_mean.

A mean over an empty set is undefined, so ``ratio_above_mean`` / ``ratio_below_mean`` are absent when their set is
empty and ``excess_ratio`` is absent unless both sets are non-empty (not logged). For continuous actions
ratios are clipped to [1e-12, 1e12] before averaging (App. B.4: they diverge to 0 and ∞ before collapse). NaN ratios
belong to neither set.

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
    values average exactly). Returns n_above, n_below always, the means and ``excess_ratio`` when defined."""
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
        out["excess_ratio"] = out["ratio_above_mean"] / out["ratio_below_mean"]
    return out


def approx_kl(log_ratio: Tensor) -> tuple[float, float]:
    """Estimators of KL(π_old ‖ π_θ) from log r = log π_θ − log π_old on samples from π_old (Schulman 2020,
    "Approximating KL divergence"): k1 = mean(−log r) (unbiased, high variance), k3 = mean((r − 1) − log r)
    (unbiased, non-negative). Returns ``(k1, k3)``."""
    lr = log_ratio.detach().double().reshape(-1)
    if lr.numel() == 0:
        raise ValueError("log_ratio must be non-empty")
    return (-lr).mean().item(), (torch.expm1(lr) - lr).mean().item()


def clip_fraction(ratios: Tensor | Sequence[Tensor], eps: float) -> float:
    """Fraction of samples whose ratio is outside [1 − ε, 1 + ε] (where PPO-Clip's gradient is zeroed or clipped)."""
    if not 0.0 < eps < 1.0:
        raise ValueError(f"eps must be in (0, 1), got {eps!r}")
    r = _flat(ratios).double()
    return ((r - 1.0).abs() > eps).double().mean().item()
