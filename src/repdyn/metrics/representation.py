"""All representation metrics of one network on one batch, keyed by their log-key suffixes (docs/metrics.md).

The caller prefixes the keys with ``<scope>/<network>/`` (``batch_start``, ``batch_end``; ``actor``, ``critic``,
``trunk``, ``qnet``); ``batch_diff`` comes from :func:`repdyn.metrics.norms.feature_drift`.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from repdyn.metrics.norms import feature_norm, policy_variance, preact_norm, preact_norm_all, value_stats
from repdyn.metrics.ranks import rank_metrics
from repdyn.metrics.units import dead_units, dormant_units

__all__ = ["representation_metrics"]


def representation_metrics(
    features: Tensor,
    preacts: Sequence[Tensor],
    activation: str,
    *,
    delta: float = 0.01,
    tau: float = 0.025,
    values: Tensor | None = None,
    policy: Tensor | tuple[Tensor, Tensor] | None = None,
    policy_kind: str | None = None,
    from_logits: bool = False,
) -> dict[str, float]:
    """Ranks (:mod:`repdyn.metrics.ranks`), dead/dormant units (:mod:`repdyn.metrics.units`) and norms
    (:mod:`repdyn.metrics.norms`) of one network: ``features`` = penultimate post-activations ``[N, D]``,
    ``preacts`` = every hidden pre-activation (last = penultimate), ``activation`` picks the dead-unit rule.

    Optional: ``values`` ``[N]`` adds ``value_mean``/``value_std``; ``policy`` with ``policy_kind`` adds
    ``policy_variance`` (see :func:`repdyn.metrics.norms.policy_variance`).
    Keys: effective_rank, approx_rank, srank, feature_rank, numerical_rank, stable_rank, sv_max, sv_2, sv_min,
    dead_units, dead_units_frac, dormant_units, dormant_units_frac, feature_norm, preact_norm, preact_norm_all
    [, value_mean, value_std] [, policy_variance].

    Degenerate input: the key set depends only on the optional arguments, never on the values. Each key follows its
    function's rule: all-zero features give 0 for every rank and norm and dead/dormant fractions of 1; identical
    samples (a collapsed representation) give rank 1, variance 0 and every unit dead under the std rule; finite input
    of any float32 magnitude gives finite values; non-finite features give NaN for the keys computed from them.
    """
    if (policy is None) != (policy_kind is None):
        raise ValueError("policy and policy_kind must be given together")
    if features.ndim != 2:
        raise ValueError(f"features must be a matrix [N, D], got shape {tuple(features.shape)}")
    out = rank_metrics(features, delta)
    out.update(dead_units(features, activation))
    out.update(dormant_units(features, tau))
    out["feature_norm"] = feature_norm(features)
    out["preact_norm"] = preact_norm(preacts)
    out["preact_norm_all"] = preact_norm_all(preacts)
    if values is not None:
        out.update(value_stats(values))
    if policy is not None:
        out["policy_variance"] = policy_variance(policy, policy_kind, from_logits=from_logits)
    return out
