"""The parts of one training run, built from its config: env, agent, interventions, scheduled metrics, collector.

:func:`build_run_parts` is the one place that reads the run config to build them, in the order that fixes the run's
random numbers (threads, seeds, env, obs-norm statistics, agent, interventions, metric setups, collector): a resumed
run builds the same parts, then :class:`repdyn.run_state.RunState` restores their state.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from omegaconf import DictConfig

from repdyn.schedule import Schedule

if TYPE_CHECKING:
    from repdyn.interventions import Hooks
    from repdyn.metrics.registry import ScheduledMetric

log = logging.getLogger("repdyn.train")


def available_cpus(environ: Any = None) -> int:
    """CPUs this process may run on: its affinity mask, capped by a Slurm allocation (``SLURM_CPUS_PER_TASK``)."""
    environ = os.environ if environ is None else environ
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    slurm = str(environ.get("SLURM_CPUS_PER_TASK", ""))
    return max(1, min(n, int(slurm))) if slurm.isdigit() else max(1, n)


def torch_threads(threads: int | None, model: str, cpus: int | None = None) -> int:
    """``train.threads`` when set; otherwise 1 for MLPs (tiny matmuls: extra threads only add synchronisation) and
    every available CPU for the CNN (compute-bound)."""
    if threads is not None:
        return threads
    return (available_cpus() if cpus is None else cpus) if model == "cnn" else 1


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class RunParts:
    """What the loop drives. ``metrics`` are the scheduled metrics the config switches on and the agent provides,
    ``metric_state`` what their ``setup`` built (by name), ``schedule`` the log / metric / checkpoint cadences and
    ``probe_gen`` the generator of the metrics' sample choices (both saved in the checkpoint)."""

    env: Any
    agent: Any
    hooks: Hooks
    collector: Any
    batches: Iterator[Any]  # the collector's iterator: one batch per ``next``
    schedule: Schedule
    probe_gen: torch.Generator
    metrics: list[ScheduledMetric] = field(default_factory=list)
    metric_state: dict[str, Any] = field(default_factory=dict)


def scheduled_metrics(cfg: DictConfig) -> tuple[list[ScheduledMetric], Schedule]:
    """The scheduled metrics the ``metrics`` section switches on, and the run's schedule: each cadence is due at the
    first batch end at or past each multiple of its fraction of the budget (the first batch always, except
    checkpoints), and at the end of training; one for logging and one per metric (repdyn.metrics.registry)."""
    from repdyn.metrics.registry import active

    metrics = active(cfg.metrics)
    fractions = {"log": cfg.train.log_every, **{s.name: s.fraction(cfg.metrics) for s in metrics}}
    return metrics, Schedule(cfg.train.total_frames, fractions, cfg.train.checkpoint_every)


def build_run_parts(cfg: DictConfig, run_dir: Path) -> RunParts:
    """Build every part of the run of ``cfg`` in ``run_dir`` (a DQN memmap replay without ``agent.replay_dir``
    lives in ``<run_dir>/replay``)."""
    from repdyn.agents import build_agent
    from repdyn.collection import make_collector
    from repdyn.envs.make import make_env
    from repdyn.envs.obs_norm import add_frozen_obs_norm
    from repdyn.interventions import Hooks

    metrics, schedule = scheduled_metrics(cfg)
    probe_gen = torch.Generator().manual_seed(cfg.seed + 1)  # the scheduled metrics' sample choices
    torch.set_num_threads(torch_threads(cfg.train.threads, cfg.model.name))
    seed_everything(cfg.seed)
    env = make_env(cfg.env, cfg.seed)
    if cfg.env.obs_norm:
        add_frozen_obs_norm(env, cfg.env.obs_norm_steps)
    if cfg.agent.name == "dqn" and cfg.agent.replay_storage == "memmap" and cfg.agent.replay_dir is None:
        cfg.agent.replay_dir = str(run_dir / "replay")
    agent = build_agent(cfg, env)
    hooks = Hooks.from_config(cfg)
    hooks.on_agent_built(agent)
    for spec in [s for s in metrics if not s.supports(agent)]:
        log.warning("%s is on but agent %s does not provide it; skipped", spec.config_key, cfg.agent.name)
        metrics.remove(spec)
        schedule.drop(spec.name)
    metric_state = {s.name: s.setup(cfg, run_dir, env) for s in metrics if s.setup}
    batch_frames = cfg.env.num_envs * cfg.env.frames_per_env
    collector = make_collector(env, agent, batch_frames, cfg.train.collector)
    return RunParts(env, agent, hooks, collector, iter(collector), schedule, probe_gen, metrics, metric_state)
