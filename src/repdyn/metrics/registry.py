"""The scheduled metrics: name → config switch, cadence, agent capability, per-run setup and record function.

The training run (``repdyn.run_parts``, ``repdyn.training_loop``) reads nothing else about them: it builds one cadence
per entry that :func:`active` returns, drops the entries whose ``needs`` the agent does not implement (with a
warning), builds each entry's ``setup`` once, and at a batch end where an entry is due calls its ``before_update``
(before the batch's update) and its ``record`` (after it) with a :class:`repdyn.metrics.scheduled.MetricContext`.

Adding a scheduled metric (docs/architecture.md#adding-a-metric) takes one function, one entry and one yaml key:

1. ``def my_record(ctx: MetricContext) -> dict[str, float]``: picks its data from the context (``ctx.batch``,
   ``ctx.agent``, ``ctx.generator``, ``ctx.mcfg``) and returns keys under its own prefix;
2. ``register(ScheduledMetric("my_metric", my_record, keys="my_metric/<net>/<key>", doc="docs/metrics.md#..."))``
   (or one more entry in :data:`REGISTRY` below);
3. ``scheduled: {my_metric: 0.025}`` in a ``conf/metrics/*.yaml`` option, or ``+metrics.scheduled.my_metric=0.025``
   on the command line: the key's presence switches the metric on and its value is the cadence (a fraction of
   ``train.total_frames``, like every other cadence).

Why one ``metrics.scheduled`` mapping instead of a switch and a cadence field per metric: ``MetricsConfig`` is a
structured dataclass, so a new field means editing the schema, and a metric registered at runtime (a test, a notebook,
a plug-in module) cannot add one at all. A ``dict[str, float]`` field keeps the structured checks (Hydra rejects a
non-float cadence, ``MetricsConfig.validate`` one outside (0, 1], ``repdyn.config.validate`` a name no entry
registers, which would otherwise silently measure nothing) while taking any registered name. The four metrics that
predate the mapping keep their dedicated fields (``metrics.ntk`` / ``metrics.ntk_every``, ...): their entries name
them in ``switch`` / ``cadence``, so existing configs, experiment presets and run dirs (a resume compares configs)
stay valid.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repdyn.agents.base import CapacityProbed, NTKViews, UpdateRankViews
from repdyn.metrics.capacity_probe import CapacityProbe
from repdyn.metrics.scheduled import (
    MetricContext,
    capacity_record,
    ntk_record,
    representation_end,
    representation_start,
    update_rank_record,
)

__all__ = ["REGISTRY", "MetricContext", "ScheduledMetric", "active", "get_metric", "register"]

Record = Callable[[MetricContext], dict[str, float]]


@dataclass(frozen=True)
class ScheduledMetric:
    """One scheduled metric. ``record`` runs after the batch's update; ``before_update``, when set, runs on the same
    batch before it (its ``ctx.carry`` reaches ``record``); ``setup(cfg, run_dir, env)`` builds per-run state once,
    handed over as ``ctx.state``; ``at_start`` also records the initial network at step 0, before the first batch."""

    name: str
    record: Record
    keys: str  # the log-key pattern(s) it writes, as documented in docs/metrics.md
    doc: str  # where docs/metrics.md defines the keys
    switch: str | None = None  # MetricsConfig bool field; None: on when ``metrics.scheduled`` holds ``name``
    cadence: str | None = None  # MetricsConfig fraction field; None: ``metrics.scheduled.<name>``
    needs: type | None = None  # capability protocol of repdyn.agents.base the agent must implement; None: any agent
    setup: Callable[[Any, Path, Any], Any] | None = None
    before_update: Record | None = None
    at_start: bool = False

    @property
    def config_key(self) -> str:
        """The config key that switches the metric on."""
        return f"metrics.{self.switch}" if self.switch else f"metrics.scheduled.{self.name}"

    def enabled(self, mcfg: Any) -> bool:
        """Whether the ``metrics`` config section (a MetricsConfig or the matching DictConfig) switches it on."""
        if self.switch is not None:
            return bool(getattr(mcfg, self.switch))
        return self.name in (getattr(mcfg, "scheduled", None) or {})

    def fraction(self, mcfg: Any) -> float:
        """Its cadence, a fraction of the training budget."""
        return float(getattr(mcfg, self.cadence) if self.cadence else mcfg.scheduled[self.name])

    def supports(self, agent: Any) -> bool:
        """Whether ``agent`` provides what the metric needs."""
        return self.needs is None or isinstance(agent, self.needs)


REGISTRY: dict[str, ScheduledMetric] = {
    spec.name: spec
    for spec in (
        ScheduledMetric(
            "representation",
            representation_end,
            "batch_{start,end}/<net>/<key>, batch_diff/<net>/feature_drift_{l2,cos}",
            "docs/metrics.md#representation-metrics",
            switch="representation",
            cadence="every",
            before_update=representation_start,
        ),
        ScheduledMetric(
            "capacity",
            capacity_record,
            "capacity/<net>/loss",
            "docs/metrics.md#capacity-loss",
            switch="capacity",
            cadence="capacity_every",
            needs=CapacityProbed,
            setup=CapacityProbe.of_run,
            at_start=True,
        ),
        ScheduledMetric(
            "ntk",
            ntk_record,
            "ntk/<net>/{trace,entropy,kernel_alignment}",
            "docs/metrics.md#empirical-ntk",
            switch="ntk",
            cadence="ntk_every",
            needs=NTKViews,
        ),
        ScheduledMetric(
            "update_rank",
            update_rank_record,
            "update_rank/<net>/rank",
            "docs/metrics.md#update-rank",
            switch="update_rank",
            cadence="update_rank_every",
            needs=UpdateRankViews,
        ),
    )
}


def register(spec: ScheduledMetric) -> ScheduledMetric:
    """Add ``spec`` to :data:`REGISTRY` (after the built-in entries, so it runs after them); ValueError when the
    name is taken."""
    if spec.name in REGISTRY:
        raise ValueError(f"a scheduled metric {spec.name!r} is already registered")
    REGISTRY[spec.name] = spec
    return spec


def get_metric(name: str) -> ScheduledMetric:
    """The registered metric ``name``; ValueError listing the registered names otherwise."""
    if name not in REGISTRY:
        raise ValueError(f"unknown metric {name!r}; registered: {sorted(REGISTRY)}")
    return REGISTRY[name]


def active(mcfg: Any) -> list[ScheduledMetric]:
    """Metrics switched on by a ``MetricsConfig`` (or the matching DictConfig), in registry order: the order in which
    they draw from the run's probe generator, so a new entry never changes the earlier entries' samples."""
    return [s for s in REGISTRY.values() if s.enabled(mcfg)]
