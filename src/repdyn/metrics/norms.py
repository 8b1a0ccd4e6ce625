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

Degenerate input: every function is computed in float64, so finite float32 input of any magnitude (1e30, 3.4e38,
1e-30) gives finite values (float32 squares would overflow to inf at |x| > 1.8e19). Zeros give norm 0 and drift 0; a
zero vector has cosine 0 with anything; one sample, or every sample identical, gives variance and std exactly 0 (they
are computed relative to the first sample, so round-off in the mean of a constant column cannot leave a spurious
non-zero). Input holding any NaN/±inf (a diverged network) gives NaN for every key of the function. Norms of the
pre-activations and the policy's variance across states as collapse diagnostics: Moalla, Miele, Pyatko, Pascanu &
Gulcehre 2024, "No Representation, No Trust: Connecting Representation, Collapse, and Trust Issues in PPO",
arXiv:2405.00662.
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


NAN = float("nan")


def _check_batch(x: Tensor, name: str) -> None:
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a batch [N, ...] with N >= 1, got shape {tuple(x.shape)}")


def _finite(*xs: Tensor) -> bool:
    return all(bool(torch.isfinite(x).all()) for x in xs)


def _pop_var(x: Tensor) -> Tensor:
    """Population variance over dim 0 of float64 ``x``, relative to the first sample (shift-invariant, and exactly 0
    for a constant column whatever its magnitude)."""
    return (x - x[:1]).var(dim=0, correction=0)


def feature_norm(features: Tensor) -> float:
    """mean_n ‖φ_n‖₂ of post-activations ``[N, D]``.

    Degenerate input: zeros → 0; a constant c → |c|·√D; non-finite features → NaN."""
    _check_batch(features, "features")
    if not _finite(features):
        return NAN
    return features.detach().flatten(1).double().norm(dim=1).mean().item()


def preact_norm(preacts: Sequence[Tensor]) -> float:
    """mean_n ‖z_n‖₂ of the penultimate pre-activation ``preacts[-1]`` ``[N, D]``."""
    if len(preacts) == 0:
        raise ValueError("preacts must hold at least one pre-activation tensor")
    return feature_norm(preacts[-1])


def preact_norm_all(preacts: Sequence[Tensor]) -> float:
    """mean_n of the L2 norm of all hidden pre-activations concatenated per sample.

    Degenerate input: all zeros → 0; any non-finite pre-activation → NaN."""
    if len(preacts) == 0:
        raise ValueError("preacts must hold at least one pre-activation tensor")
    for z in preacts:
        _check_batch(z, "preacts[i]")
    if not _finite(*preacts):
        return NAN
    # ‖[z¹, …, z^L]‖² = Σ_l ‖z^l‖², so no concatenated copy is needed.
    sq = sum(z.detach().flatten(1).double().square().sum(1) for z in preacts)
    return sq.sqrt().mean().item()


def feature_drift(start: Tensor, end: Tensor) -> dict[str, float]:
    """Drift of features on the same observations: ``feature_drift_l2`` = mean_n ‖end_n − start_n‖₂ and
    ``feature_drift_cos`` = mean_n cos(start_n, end_n) (docs/metrics.md#feature-drift).

    Degenerate input: identical features → l2 0 and cos 1 (0 for a zero row: a zero vector has cosine 0 with
    anything); zeros on either side → cos 0; non-finite features on either side → NaN for both keys."""
    _check_batch(start, "start")
    if start.shape != end.shape:
        raise ValueError(f"start {tuple(start.shape)} and end {tuple(end.shape)} must have the same shape")
    if not _finite(start, end):
        return {"feature_drift_l2": NAN, "feature_drift_cos": NAN}
    a, b = start.detach().flatten(1).double(), end.detach().flatten(1).double()
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
    A policy that outputs the same distribution in every state has variance 0 (Moalla et al. 2024, Fig. 2).

    Degenerate input: one state, or the same parameters in every state (a collapsed policy) → exactly 0; huge logits
    are fine (the softmax is shift-invariant); non-finite parameters → NaN."""
    if kind not in POLICY_KINDS:
        raise ValueError(f"kind={kind!r}; choose one of {list(POLICY_KINDS)}")
    if kind == "categorical":
        if not isinstance(params, Tensor):
            raise ValueError("categorical policy_variance needs a probability (or logit) tensor [N, A]")
        _check_batch(params, "params")
        if not _finite(params):
            return NAN
        values = torch.softmax(params.detach().double(), -1) if from_logits else params.detach().double()
    else:
        if isinstance(params, Tensor) or len(params) != 2:
            raise ValueError(f"{kind} policy_variance needs params=(loc, scale), each [N, A]")
        loc, scale = params
        _check_batch(loc, "loc")
        if loc.shape != scale.shape:
            raise ValueError(f"loc {tuple(loc.shape)} and scale {tuple(scale.shape)} must have the same shape")
        if not _finite(loc, scale):
            return NAN
        values = torch.cat([loc.detach().double(), scale.detach().double()], dim=-1)
    return _pop_var(values.flatten(1)).mean().item()


def value_stats(values: Tensor) -> dict[str, float]:
    """``value_mean`` and ``value_std`` (population) across states of values ``[N]`` or ``[N, 1]``.

    Degenerate input: one state or a constant value c → mean c, std exactly 0; non-finite values → NaN for both."""
    v = values.detach().double()
    if v.ndim == 2 and v.shape[1] == 1:
        v = v.squeeze(1)
    if v.ndim != 1 or v.shape[0] == 0:
        raise ValueError(f"values must be [N] or [N, 1] with N >= 1, got shape {tuple(values.shape)}")
    if not _finite(v):
        return {"value_mean": NAN, "value_std": NAN}
    shifted = v - v[0]  # relative to the first sample: a constant c gives mean exactly c, std exactly 0
    return {"value_mean": (v[0] + shifted.mean()).item(), "value_std": shifted.var(correction=0).sqrt().item()}
