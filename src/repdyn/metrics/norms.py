"""Norms, drift and output diversity of a network on a batch of states (docs/metrics.md#norms; Moalla et al. 2024 §3).

| key | formula |
|---|---|
| ``feature_norm`` | mean_n ‖φ_n‖₂ of the penultimate post-activations |
| ``preact_norm`` | mean_n ‖z_n‖₂ of the penultimate pre-activations (``preacts[-1]``) |
| ``preact_norm_all`` | mean_n ‖[z¹_n, …, z^L_n]‖₂, all hidden pre-activations concatenated (per sample, flattened) |
| ``feature_drift_l2`` | mean_n ‖φ_end,n − φ_start,n‖₂ (same observations before / after the update epochs) |
| ``feature_drift_cos`` | mean_n cos(φ_start,n, φ_end,n) (a zero vector has cosine 0 with anything, our choice) |
| ``policy_variance`` | Var_n of the distribution parameters, averaged over parameter dims (categorical: |
|  | probabilities; Normal and TanhNormal: [loc, scale] of the underlying Normal) |
| ``value_mean``, ``value_std`` | mean and std over states of the value (population statistics) |

Variances/stds across states are population statistics (correction 0): the batch is the population being described.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "POLICY_KINDS",
    "feature_drift",
    "feature_norm",
    "policy_variance",
    "preact_norm",
    "preact_norm_all",
    "value_stats",
]

POLICY_KINDS = ("categorical", "normal", "tanh_normal")


def _check_batch(x: Tensor, name: str) -> None:
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a batch [N, ...] with N >= 1, got shape {tuple(x.shape)}")


def feature_norm(features: Tensor) -> float:
    """mean_n ‖φ_n‖₂ of post-activations ``[N, D]``."""
    _check_batch(features, "features")
    return features.detach().flatten(1).float().norm(dim=1).mean().item()


def preact_norm(preacts: Sequence[Tensor]) -> float:
    """mean_n ‖z_n‖₂ of the penultimate pre-activation ``preacts[-1]`` ``[N, D]``."""
    if len(preacts) == 0:
        raise ValueError("preacts must hold at least one pre-activation tensor")
    return feature_norm(preacts[-1])


def preact_norm_all(preacts: Sequence[Tensor]) -> float:
    """mean_n of the L2 norm of all hidden pre-activations concatenated per sample."""
    if len(preacts) == 0:
        raise ValueError("preacts must hold at least one pre-activation tensor")
    for z in preacts:
        _check_batch(z, "preacts[i]")
    # ‖[z¹, …, z^L]‖² = Σ_l ‖z^l‖², so no concatenated copy is needed.
    sq = sum(z.detach().flatten(1).float().square().sum(1) for z in preacts)
    return sq.sqrt().mean().item()


def feature_drift(start: Tensor, end: Tensor) -> dict[str, float]:
    """Drift of features on the same observations: ``feature_drift_l2`` = mean_n ‖end_n − start_n‖₂ and
    ``feature_drift_cos`` = mean_n cos(start_n, end_n) (docs/metrics.md#feature-drift)."""
    _check_batch(start, "start")
    if start.shape != end.shape:
        raise ValueError(f"start {tuple(start.shape)} and end {tuple(end.shape)} must have the same shape")
    a, b = start.detach().flatten(1).float(), end.detach().flatten(1).float()
    l2 = (b - a).norm(dim=1).mean().item()
    na, nb = a.norm(dim=1), b.norm(dim=1)
    denom = na * nb
    cos = torch.where(denom > 0, (a * b).sum(1) / denom.clamp_min(torch.finfo(a.dtype).tiny), torch.zeros_like(denom))
    return {"feature_drift_l2": l2, "feature_drift_cos": cos.mean().item()}


def policy_variance(params: Tensor | tuple[Tensor, Tensor], kind: str, *, from_logits: bool = False) -> float:
    """Variance across states of the action-distribution parameters, averaged over parameter dims (docs/metrics.md).

    ``kind="categorical"``: ``params`` = probabilities ``[N, A]`` (or logits with ``from_logits=True``).
    ``kind="normal"`` / ``"tanh_normal"``: ``params`` = ``(loc, scale)`` each ``[N, A]`` (for TanhNormal the parameters
    of the Normal before the tanh); the variance is averaged over the 2A values [loc, scale].
    A policy that outputs the same distribution in every state has variance 0 (Moalla et al. 2024 Fig. 2)."""
    if kind not in POLICY_KINDS:
        raise ValueError(f"kind={kind!r}; choose one of {list(POLICY_KINDS)}")
    if kind == "categorical":
        if not isinstance(params, Tensor):
            raise ValueError("categorical policy_variance needs a probability (or logit) tensor [N, A]")
        _check_batch(params, "params")
        values = torch.softmax(params.detach().float(), -1) if from_logits else params.detach().float()
    else:
        if isinstance(params, Tensor) or len(params) != 2:
            raise ValueError(f"{kind} policy_variance needs params=(loc, scale), each [N, A]")
        loc, scale = params
        _check_batch(loc, "loc")
        if loc.shape != scale.shape:
            raise ValueError(f"loc {tuple(loc.shape)} and scale {tuple(scale.shape)} must have the same shape")
        values = torch.cat([loc.detach().float(), scale.detach().float()], dim=-1)
    return values.flatten(1).var(dim=0, correction=0).mean().item()


def value_stats(values: Tensor) -> dict[str, float]:
    """``value_mean`` and ``value_std`` (population) across states of values ``[N]`` or ``[N, 1]``."""
    v = values.detach().float()
    if v.ndim == 2 and v.shape[1] == 1:
        v = v.squeeze(1)
    if v.ndim != 1 or v.shape[0] == 0:
        raise ValueError(f"values must be [N] or [N, 1] with N >= 1, got shape {tuple(values.shape)}")
    return {"value_mean": v.mean().item(), "value_std": v.std(correction=0).item()}
