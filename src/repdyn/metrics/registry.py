"""Name → metric function, with the config switch and cadence that govern it and the log keys it writes.

Adding a metric: write one pure function in a module of this package (formula + source in its docstring, a known-answer
unit test), add one :class:`MetricSpec` to :data:`REGISTRY` (and, if it is optional, a flag and cadence field in
:class:`repdyn.metrics.config.MetricsConfig`). The training loop asks :func:`active` which metrics to run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from repdyn.metrics.capacity import fit_to_target
from repdyn.metrics.norms import feature_drift
from repdyn.metrics.ntk import ntk_summary
from repdyn.metrics.representation import representation_metrics
from repdyn.metrics.trust_region import trust_region_metrics
from repdyn.metrics.update_rank import update_rank_metrics

__all__ = ["REGISTRY", "MetricSpec", "active", "get_metric"]


@dataclass(frozen=True)
class MetricSpec:
    name: str
    fn: Callable[..., Any]
    keys: str  # log-key pattern(s) written from the function's result
    enabled: str | None  # MetricsConfig boolean field switching it on; None = always on
    every: str  # MetricsConfig field holding the cadence (fraction of the training budget)
    doc: str  # where docs/metrics.md defines it


REGISTRY: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec(
            "representation",
            representation_metrics,
            "batch_{start,end}/<net>/<key>",
            "representation",
            "every",
            "docs/metrics.md#representation-metrics",
        ),
        MetricSpec(
            "feature_drift",
            feature_drift,
            "batch_diff/<net>/feature_drift_{l2,cos}",
            "representation",
            "every",
            "docs/metrics.md#feature-drift",
        ),
        MetricSpec(
            "trust_region", trust_region_metrics, "trust_region/<key>", None, "every", "docs/metrics.md#trust-region"
        ),
        MetricSpec(
            "capacity",
            fit_to_target,
            "capacity/{actor,critic}/loss",
            "capacity",
            "capacity_every",
            "docs/metrics.md#capacity-loss",
        ),
        MetricSpec(
            "ntk",
            ntk_summary,
            "ntk/<net>/{trace,entropy,kernel_alignment}",
            "ntk",
            "ntk_every",
            "docs/metrics.md#empirical-ntk",
        ),
        MetricSpec(
            "update_rank",
            update_rank_metrics,
            "update_rank/<net>/rank",
            "update_rank",
            "update_rank_every",
            "docs/metrics.md#update-rank",
        ),
    )
}


def get_metric(name: str) -> MetricSpec:
    """The registered metric ``name``; ValueError listing the registered names otherwise."""
    if name not in REGISTRY:
        raise ValueError(f"unknown metric {name!r}; registered: {sorted(REGISTRY)}")
    return REGISTRY[name]


def active(cfg: Any) -> list[MetricSpec]:
    """Metrics switched on by a ``MetricsConfig`` (or the matching DictConfig), in registry order."""
    return [s for s in REGISTRY.values() if s.enabled is None or bool(getattr(cfg, s.enabled))]
