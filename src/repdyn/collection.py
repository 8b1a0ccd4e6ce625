"""The collector every loop and benchmark uses, built one way, and its checkpoint state behind one adapter.

``train.collector=lean`` (default): :class:`repdyn.lean_collector.LeanCollector`, the agent's plain-tensor policy
over the env's plain-tensor step. ``train.collector=torchrl``: torchrl's single-process ``Collector`` over the
TensorDict policy. Both give the same batches for a seed (tests/integration/test_lean_collector.py);
``python -m repdyn.bench throughput`` measures both.
"""

from __future__ import annotations

from typing import Any

from torchrl.collectors import Collector

from repdyn.lean_collector import LeanCollector

COLLECTORS = ("lean", "torchrl")


def make_collector(env: Any, agent: Any, frames_per_batch: int, kind: str = "lean") -> LeanCollector | Collector:
    """An endless collector of ``frames_per_batch`` env steps per batch with ``agent``'s exploration policy.

    ``torchrl``: ``auto_register_policy_transforms=False`` (the policies need no env transforms); devices are left to
    torchrl: naming them (``device="cpu"``) measured no different on Hopper (563/659/601 vs 564/855/496 frames/s)."""
    if kind == "lean":
        return LeanCollector(env, agent.act, frames_per_batch)
    if kind == "torchrl":
        return Collector(
            env, agent.policy, frames_per_batch=frames_per_batch, total_frames=-1, auto_register_policy_transforms=False
        )
    raise ValueError(f"train.collector: unknown collector {kind!r}; choose one of {COLLECTORS}")


def collector_state(collector: LeanCollector | Collector) -> Any:
    """What a checkpoint needs to continue the rollout exactly: the carried observation and counters (torchrl keeps
    them in its private ``_carrier``; this is the one place that reads it)."""
    if isinstance(collector, LeanCollector):
        return collector.state_dict()
    carrier = getattr(collector, "_carrier", None)
    return None if carrier is None else carrier.clone()


def load_collector_state(collector: LeanCollector | Collector, state: Any) -> None:
    """Inverse of :func:`collector_state`; ``None`` (an env whose simulator is not captured, e.g. ALE) starts the
    rollout from a full reset instead."""
    if state is None:
        if isinstance(collector, Collector):
            collector._carrier = None
        collector.reset()
    elif isinstance(collector, LeanCollector):
        collector.load_state_dict(state)
    else:
        collector._carrier = state
