"""The training loop: collect a batch, update, measure and record what is due, checkpoint; until the budget is spent or
a stop signal (or ``debug.stop_after_batches``) asks for a checkpoint and an exit.

It drives the :class:`repdyn.run_parts.RunParts` and writes through :class:`repdyn.record_sinks.RecordSinks` and
:class:`repdyn.run_state.RunState`; it reads no config beyond the explicit values it is given. The order of the calls
within a batch is part of the run's numbers (docs/architecture.md#data-path).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from repdyn.progress import progress_bar

if TYPE_CHECKING:
    from repdyn.metrics.registry import ScheduledMetric
    from repdyn.metrics.scheduled import MetricContext
    from repdyn.run_parts import RunParts
    from repdyn.run_state import RunState
    from repdyn.stop_signal import StopRequest

Measured = list[tuple["ScheduledMetric", "MetricContext"]]


class TrainingLoop:
    """Trains ``parts`` from the state in ``state`` on. ``mcfg`` is the ``metrics`` section the scheduled metrics
    read; ``stop_after`` (``debug.stop_after_batches``) plants a stop after that many batches; ``show_progress``
    draws the progress bar."""

    def __init__(
        self, parts: RunParts, state: RunState, *, mcfg: Any, stop_after: int | None, show_progress: bool
    ) -> None:
        self.parts, self.state = parts, state
        self.progress, self.sinks, self.episodes = state.progress, state.sinks, state.episodes
        self.mcfg, self.stop_after, self.show_progress = mcfg, stop_after, show_progress
        self.t_start, self.steps_start, self.metric_time = time.time(), 0, 0.0  # for the perf/* keys

    def run(self, stop: StopRequest) -> bool:
        """Train to the end of the budget (then a final checkpoint; returns False), or until a stop is asked for at a
        batch boundary (a checkpoint; returns True, the run is to be resumed). A stop signal during an on-policy
        batch raises :class:`repdyn.stop_signal.BatchAborted` (the caller writes :meth:`RunState.abandon_batch`)."""
        p = self.progress
        bar = progress_bar(
            total=p.total, initial=p.env_steps, unit="step", enabled=self.show_progress, dynamic_ncols=True
        )
        self.t_start, self.steps_start, self.metric_time = time.time(), p.env_steps, 0.0
        self._record_initial_network()
        while p.env_steps < p.total:
            # from here to the record, a stop signal abandons the batch (when its start state is held)
            stop.arm(self.state.mark_batch_start(self.parts.agent.on_policy))
            frames = self._batch(stop, bar)
            stop.arm(False)
            bar.update(frames)
            if self._checkpoint(stop):
                bar.close()
                return True
        bar.close()
        self.state.save(keep=True)
        return False

    def _batch(self, stop: StopRequest, bar: Any) -> int:
        """Collect, process and learn from one batch, and write its record when a schedule is due; returns its size."""
        parts, p = self.parts, self.progress
        batch = next(parts.batches)
        p.env_steps += batch.numel()
        p.batches += 1
        self.episodes.add(batch)
        record = parts.hooks.on_batch_collected(batch, parts.agent)
        parts.agent.process_batch(batch)
        due = parts.schedule.due(p.env_steps)
        measured = self._before_update(due, batch, record)
        result = parts.agent.update(batch, p.env_steps, parts.hooks)
        parts.hooks.after_batch_update(parts.agent, min(1.0, p.env_steps / p.total))
        parts.collector.update_policy_weights_()
        if due:
            self._record(record, result.scalars, measured, due, stop)
            bar.set_postfix(sps=f"{record['perf/sps']:.0f}", ret=f"{record.get('env/return', float('nan')):.1f}")
        return batch.numel()

    def _context(self, spec: ScheduledMetric, batch: Any) -> MetricContext:
        from repdyn.metrics.scheduled import MetricContext

        state = self.parts.metric_state.get(spec.name)
        return MetricContext(batch, self.parts.agent, self.mcfg, self.parts.probe_gen, self.progress.env_steps, state)

    def _before_update(self, due: set[str], batch: Any, record: dict[str, Any]) -> Measured:
        """The contexts of the due metrics, and the ``before_update`` part of their records (on the same states as
        their records, before the update changes them)."""
        t0 = time.time()
        measured = [(s, self._context(s, batch)) for s in self.parts.metrics if s.name in due]
        for spec, ctx in measured:
            if spec.before_update is not None:
                record.update(spec.before_update(ctx))
        self.metric_time += time.time() - t0
        return measured

    def _record(
        self, record: dict[str, Any], scalars: dict[str, float], measured: Measured, due: set[str], stop: StopRequest
    ) -> None:
        """Complete the batch's record (update scalars, the due metrics, episodes, ``perf/*``) and write it."""
        p = self.progress
        t0 = time.time()
        record.update(scalars)
        for spec, ctx in measured:
            record.update(spec.record(ctx))
        self.metric_time += time.time() - t0
        stop.arm(False)  # the record and checkpoint are written whole
        record.update(self.episodes.pop_record())
        elapsed = time.time() - self.t_start
        record["perf/sps"] = (p.env_steps - self.steps_start) / max(elapsed, 1e-9)
        record["perf/wall_time"] = p.wall_time()
        record["perf/metrics_share"] = self.metric_time / max(elapsed, 1e-9)
        self.sinks.log(p.env_steps, record)
        self.parts.schedule.advance(due, p.env_steps)

    def _record_initial_network(self) -> None:
        """Metrics with ``at_start`` (the capacity probe) also measure the untrained network: one record at step 0,
        kept as a checkpoint, before the first batch (point 0 of the capacity probe's 41)."""
        schedule, step = self.parts.schedule, self.progress.env_steps
        due = [s for s in self.parts.metrics if s.at_start and schedule.starts_at_zero(s.name, step)]
        if not due:
            return
        record: dict[str, Any] = {}
        for spec in due:
            record.update(spec.record(self._context(spec, None)))
        self.sinks.log(step, record)
        schedule.advance([spec.name for spec in due], 0)
        self.state.save(keep=True)

    def _checkpoint(self, stop: StopRequest) -> bool:
        """Checkpoint when due, or when a stop is asked for (a signal, or the planted ``stop_after``); returns
        whether to stop."""
        p, schedule = self.progress, self.parts.schedule
        planted = self.stop_after is not None and p.batches >= self.stop_after
        if not (schedule.checkpoint_due(p.env_steps) or stop.signum is not None or planted):
            return False
        keep = schedule.checkpoint_due(p.env_steps)
        schedule.advance_checkpoints(p.env_steps)
        self.state.save(keep=keep)
        return stop.signum is not None or planted  # a signal that arrived during the save stops here too
