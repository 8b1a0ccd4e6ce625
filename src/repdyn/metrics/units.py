"""Dead and dormant units of a layer's post-activations h ∈ R^{N×D} (docs/metrics.md#dead-and-dormant-units).

- Dead units (Moalla et al. 2024 §2, footnote 7): a ReLU (or CReLU half) unit is dead when it is exactly 0 for all
  N samples; a tanh unit when its standard deviation over the samples is below 1e-3. For GELU/ELU (no exact zeros, no
  rule in the paper) we use the tanh rule — a unit whose output does not vary across states carries no information;
  our choice. The standard deviation is the population one (correction 0) so a batch of one sample is defined.
- Dormant units (Sokar et al. 2023, "The dormant neuron phenomenon in deep RL"): score s_i = mean_n |h_ni| /
  mean_j mean_n |h_nj|; unit i is τ-dormant when s_i ≤ τ (τ = 0.025 default). When the whole layer is zero the score
  is 0/0; we count every unit dormant (the layer is inactive), our choice.

Degenerate input: counts are always integers in [0, D] for finite input. An all-zero layer has every unit dead (both
rules) and dormant (dead-unit fraction 1, dormant fraction 1); every sample identical (a collapsed representation, or
N = 1) makes every unit dead under the std rule, and only its exactly-zero units dead under the ReLU rule; a constant
non-zero layer has no dormant unit (every score is 1). The std is computed in float64 after subtracting the first
sample, so a constant column is exactly std 0 at any magnitude (1e30 included) and squares never overflow; the
dormancy scores are float64 too. Features holding any NaN/±inf (a diverged network) give NaN for both keys instead of
counting garbage. Papers: Moalla, Miele, Pyatko, Pascanu & Gulcehre 2024, "No Representation, No Trust: Connecting
Representation, Collapse, and Trust Issues in PPO", arXiv:2405.00662 (dead units); Sokar, Agarwal, Castro & Evci 2023,
"The Dormant Neuron Phenomenon in Deep Reinforcement Learning", arXiv:2302.12902 (dormant units).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["DEAD_RULES", "dead_units", "dormant_mask", "dormant_units"]

# activation name → rule; "zero": exactly 0 on every sample, "std": std over samples < threshold.
DEAD_RULES: dict[str, str] = {"relu": "zero", "crelu": "zero", "tanh": "std", "gelu": "std", "elu": "std"}


def _check_matrix(h: Tensor, name: str) -> None:
    if h.ndim != 2 or h.shape[0] == 0 or h.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty matrix [N, D], got shape {tuple(h.shape)}")


def _nan_counts(prefix: str) -> dict[str, float]:
    return {prefix: float("nan"), f"{prefix}_frac": float("nan")}


def dead_units(features: Tensor, activation: str, *, std_threshold: float = 1e-3) -> dict[str, float]:
    """Count of dead units of post-activations ``features`` ``[N, D]`` and their fraction of D.

    Returns ``{"dead_units": count, "dead_units_frac": count / D}``; the rule is chosen from ``activation`` via
    :data:`DEAD_RULES` (module docstring).

    Degenerate input: all-zero features → every unit dead (fraction 1); identical samples or N = 1 → every unit dead
    under the std rule; non-finite features → NaN for both keys."""
    if activation not in DEAD_RULES:
        raise ValueError(f"activation={activation!r}; choose one of {sorted(DEAD_RULES)}")
    _check_matrix(features, "features")
    h = features.detach()
    if not bool(torch.isfinite(h).all()):
        return _nan_counts("dead_units")
    if DEAD_RULES[activation] == "zero":
        dead = (h == 0).all(dim=0)
    else:
        # std is shift-invariant: relative to the first sample a constant column is exactly 0 at any magnitude
        h = h.double()
        dead = (h - h[:1]).std(dim=0, correction=0) < std_threshold
    count = int(dead.sum().item())
    return {"dead_units": float(count), "dead_units_frac": count / h.shape[1]}


def dormant_mask(features: Tensor, tau: float = 0.025) -> Tensor:
    """Boolean [D]: unit i of post-activations ``features`` ``[N, D]`` is τ-dormant (Sokar et al. 2023), i.e.
    s_i = mean_n |h_ni| / mean_j mean_n |h_nj| ≤ τ; every unit when the whole layer is zero (module docstring).
    Shared by the metric below and the ``redo`` intervention, so both call the same units dormant."""
    if not tau >= 0:
        raise ValueError(f"tau must be >= 0, got {tau!r}")
    _check_matrix(features, "features")
    activity = features.detach().double().abs().mean(dim=0)
    mean_activity = activity.mean()
    if mean_activity > 0:
        return activity / mean_activity <= tau
    return torch.ones_like(activity, dtype=torch.bool)


def dormant_units(features: Tensor, tau: float = 0.025) -> dict[str, float]:
    """τ-dormant units (Sokar et al. 2023) of post-activations ``features`` ``[N, D]``.

    s_i = mean_n |h_ni| / mean_j mean_n |h_nj|, dormant iff s_i ≤ τ. Returns ``{"dormant_units": count,
    "dormant_units_frac": count / D}``.

    Degenerate input: an all-zero layer → every unit dormant (fraction 1); a constant non-zero layer → none; non-finite
    features → NaN for both keys."""
    if not tau >= 0:
        raise ValueError(f"tau must be >= 0, got {tau!r}")
    _check_matrix(features, "features")
    if not bool(torch.isfinite(features).all()):
        return _nan_counts("dormant_units")
    count = int(dormant_mask(features, tau).sum().item())
    return {"dormant_units": float(count), "dormant_units_frac": count / features.shape[1]}
