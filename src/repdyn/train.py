"""Train an agent: compose → build env, agent, interventions → collect/update loop → log → checkpoint.

``python -m repdyn.train [overrides]`` (or ``repdyn-train``); ``-m`` sweeps. Outputs land in the Hydra run dir:
``config.yaml`` (resolved), ``history.jsonl`` (one record per log step), ``summary.json``, ``checkpoints/``, ``wandb/``.
A run resumes by itself when its run dir holds ``checkpoints/last.pt`` (requeue, or a restart with the same
``hydra.run.dir``); SIGTERM/SIGUSR2 make it checkpoint at the next batch boundary, then exit (or let submitit requeue).
"""

from __future__ import annotations

import copy
import logging
import os
import random
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from repdyn import checkpoint as ckpt
from repdyn.collection import collector_state, load_collector_state
from repdyn.config import ConfigError, register_configs, to_container, validate
from repdyn.paths import CHECKPOINT_DIR, CONF_DIR, CONFIG_FILE, HISTORY_FILE, REPO_ROOT, SUMMARY_FILE
from repdyn.progress import progress_bar
from repdyn.schedule import Schedule
from repdyn.stop_signal import BatchAborted, StopRequest

if TYPE_CHECKING:
    from repdyn.metrics.registry import ScheduledMetric
    from repdyn.metrics.scheduled import MetricContext

log = logging.getLogger("repdyn.train")
EXIT_DIVERGED = 3
EXIT_CONFIG = 2

register_configs()


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


class Run:
    """One training run in ``run_dir``: ``build()``, optionally ``load_state_dict()``, ``open_sinks()``, ``train()``."""

    def __init__(self, cfg: DictConfig, run_dir: Path, overrides: list[str]) -> None:
        from repdyn.metrics.registry import active

        self.cfg, self.run_dir, self.overrides = cfg, run_dir, overrides
        self.batch_frames = cfg.env.num_envs * cfg.env.frames_per_env
        self.total = cfg.train.total_frames
        self.env_steps, self.batches = 0, 0
        # Each schedule is due at the first batch end at or past each multiple of its fraction of the budget
        # (the first batch always, except checkpoints), and at the end of training: the log schedule and one per
        # scheduled metric the config switches on (repdyn.metrics.registry; build() drops those the agent lacks).
        self.metrics = active(cfg.metrics)
        fractions = {"log": cfg.train.log_every, **{s.name: s.fraction(cfg.metrics) for s in self.metrics}}
        self.schedule = Schedule(self.total, fractions, cfg.train.checkpoint_every)
        self.metric_state: dict[str, Any] = {}  # what each metric's setup built, by name
        self.probe_gen = torch.Generator().manual_seed(cfg.seed + 1)  # the scheduled metrics' sample choices
        self.episodes = {"return": [], "length": [], "return_raw": []}
        self.last_record: dict[str, Any] = {}
        self.tail: dict[str, list[float]] = {}  # values logged in the last 5% of the budget, for the summary
        self.wall_start = time.time()
        self.wall_before = 0.0  # wall time of earlier segments of a resumed run
        self.wandb_id: str | None = None
        self.interrupted = False  # stopped at a batch boundary with a checkpoint, to be resumed
        self.batch_start: dict[str, Any] | None = None  # a copy of the state at the start of the batch under way

    # --- build ---------------------------------------------------------------------------------------------
    def build(self) -> None:
        from repdyn.agents import build_agent
        from repdyn.collection import make_collector
        from repdyn.envs.make import make_env
        from repdyn.envs.obs_norm import add_frozen_obs_norm
        from repdyn.interventions import Hooks

        cfg = self.cfg
        torch.set_num_threads(torch_threads(cfg.train.threads, cfg.model.name))
        _seed_everything(cfg.seed)
        self.env = make_env(cfg.env, cfg.seed)
        if cfg.env.obs_norm:
            add_frozen_obs_norm(self.env, cfg.env.obs_norm_steps)
        if cfg.agent.name == "dqn" and cfg.agent.replay_storage == "memmap" and cfg.agent.replay_dir is None:
            cfg.agent.replay_dir = str(self.run_dir / "replay")
        self.agent = build_agent(cfg, self.env)
        self.hooks = Hooks.from_config(cfg)
        self.hooks.on_agent_built(self.agent)
        for spec in [s for s in self.metrics if not s.supports(self.agent)]:
            log.warning("%s is on but agent %s does not provide it; skipped", spec.config_key, cfg.agent.name)
            self.metrics.remove(spec)
            self.schedule.drop(spec.name)
        self.metric_state = {s.name: s.setup(cfg, self.run_dir, self.env) for s in self.metrics if s.setup}
        self.collector = make_collector(self.env, self.agent, self.batch_frames, cfg.train.collector)
        self.collector_iter = iter(self.collector)

    # --- checkpoint -----------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        from repdyn.envs.state import get_env_state

        return {
            "agent": self.agent.state_dict(),
            "interventions": self.hooks.state_dict(),
            "counters": {
                "env_steps": self.env_steps,
                "batches": self.batches,
                **self.schedule.state_dict(),
                "probe_gen": self.probe_gen.get_state(),
                "episodes": self.episodes,
                "tail": self.tail,
                "last_record": self.last_record,
                "wall_time": self.wall_time(),
            },
            "rng": ckpt.rng_state(),
            "env_transform": self.env.transform.state_dict(),
            "env_sim": get_env_state(self.env),
            "carrier": collector_state(self.collector),
            "wandb_id": self.wandb_id,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        from repdyn.envs.state import set_env_state

        self.agent.load_state_dict(state["agent"])
        self.hooks.load_state_dict(state["interventions"])
        c = state["counters"]
        self.env_steps, self.batches = c["env_steps"], c["batches"]
        self.schedule.load_state_dict(c)
        self.probe_gen.set_state(c["probe_gen"])
        self.episodes, self.tail, self.last_record = c["episodes"], c["tail"], c["last_record"]
        self.wall_before = c["wall_time"]
        self.env.transform.load_state_dict(state["env_transform"])
        exact = set_env_state(self.env, state["env_sim"])
        if not exact:  # ALE: the simulator is not captured; re-seed deterministically from (seed, env steps)
            self.env.set_seed(self.cfg.seed + self.env_steps)
        load_collector_state(self.collector, state["carrier"] if exact else None)
        ckpt.set_rng_state(state["rng"])
        self.wandb_id = state["wandb_id"]

    def save_checkpoint(self, keep: bool) -> None:
        ckpt.save(self.run_dir / CHECKPOINT_DIR, self.state_dict(), keep_step=self.env_steps if keep else None)

    def abandon_batch(self) -> None:
        """A stop signal abandoned the batch under way: checkpoint the state it started from (a resume redoes the
        batch exactly) and report the counters of that state."""
        state = self.batch_start
        ckpt.save(self.run_dir / CHECKPOINT_DIR, state)
        c = state["counters"]
        self.env_steps, self.batches, self.tail, self.last_record = (
            c["env_steps"],
            c["batches"],
            c["tail"],
            c["last_record"],
        )
        self.interrupted = True

    # --- logging --------------------------------------------------------------------------------------------
    def open_sinks(self, resumed: bool) -> None:
        from repdyn.loggers.history import History
        from repdyn.loggers.logger import Logger

        hist_path = self.run_dir / HISTORY_FILE
        if resumed:
            History.truncate_after(hist_path, self.last_record.get("_step", -1))
        elif hist_path.exists():
            hist_path.unlink()  # a fresh run in a reused dir without checkpoint starts a fresh history
        sinks = []
        lc = self.cfg.logger
        if lc.backend == "wandb" and lc.mode != "disabled":
            from repdyn.loggers.logger import redact
            from repdyn.loggers.wandb_sink import WandbSink

            sink = WandbSink(
                str(self.run_dir),
                redact(to_container(self.cfg)),
                project=lc.project,
                entity=lc.entity,
                group=lc.group or self.cfg.name,
                name=f"{self.cfg.name}/{self.run_dir.name}",
                tags=redact(self.overrides),
                mode=lc.mode,
                run_id=self.wandb_id,
            )
            self.wandb_id = sink.run_id
            sinks.append(sink)
        self.logger = Logger(History(hist_path), sinks)

    def _episode_stats(self, batch: Any) -> None:
        done = batch["next", "done"].squeeze(-1)
        if done.any():
            self.episodes["return"] += batch["next", "episode_reward"][done].squeeze(-1).tolist()
            self.episodes["length"] += batch["next", "step_count"][done].squeeze(-1).tolist()
            if ("next", "episode_reward_raw") in batch.keys(True):
                self.episodes["return_raw"] += batch["next", "episode_reward_raw"][done].squeeze(-1).tolist()

    def _episode_record(self) -> dict[str, float]:
        rec = {f"env/{k}": float(np.mean(v)) for k, v in self.episodes.items() if v}
        if self.episodes["return"]:
            rec["env/episodes"] = float(len(self.episodes["return"]))
        self.episodes = {k: [] for k in self.episodes}
        return rec

    def _log(self, record: dict[str, Any]) -> None:
        from repdyn.agents.base import Diverged
        from repdyn.loggers.logger import first_non_finite

        bad = first_non_finite({k: v for k, v in record.items() if not k.startswith("perf/")})
        if bad is not None:
            raise Diverged(bad)
        self.logger.log(self.env_steps, record)
        self.last_record = {**record, "_step": self.env_steps}
        if self.env_steps >= 0.95 * self.total:
            for k, v in record.items():
                self.tail.setdefault(k, []).append(float(v))

    def _metric_context(self, spec: ScheduledMetric, batch: Any) -> MetricContext:
        from repdyn.metrics.scheduled import MetricContext

        state = self.metric_state.get(spec.name)
        return MetricContext(batch, self.agent, self.cfg.metrics, self.probe_gen, self.env_steps, state=state)

    def _record_initial_network(self) -> None:
        """Metrics with ``at_start`` (the capacity probe) also measure the untrained network: one record at step 0,
        kept as a checkpoint, before the first batch (point 0 of the capacity probe's 41)."""
        due = [s for s in self.metrics if s.at_start and self.schedule.starts_at_zero(s.name, self.env_steps)]
        if not due:
            return
        record: dict[str, Any] = {}
        for spec in due:
            record.update(spec.record(self._metric_context(spec, None)))
        self._log(record)
        self.schedule.advance([spec.name for spec in due], 0)
        self.save_checkpoint(keep=True)

    def wall_time(self) -> float:
        """Seconds spent in this run over all its segments (resumes included)."""
        return self.wall_before + time.time() - self.wall_start

    # --- loop -----------------------------------------------------------------------------------------------
    def train(self, stop: StopRequest) -> None:
        cfg = self.cfg
        stop_after = cfg.debug.stop_after_batches  # read once: an OmegaConf lookup costs ~0.1 ms per batch
        bar = progress_bar(
            total=self.total,
            initial=self.env_steps,
            unit="step",
            enabled=cfg.train.progress,
            dynamic_ncols=True,
        )
        t_start, steps_start, metric_time = time.time(), self.env_steps, 0.0
        self._record_initial_network()
        while self.env_steps < self.total:
            self.batch_start = copy.deepcopy(self.state_dict()) if self.agent.on_policy else None
            stop.arm(self.batch_start is not None)  # from here to the record, a stop signal abandons the batch
            batch = next(self.collector_iter)
            self.env_steps += batch.numel()
            self.batches += 1
            self._episode_stats(batch)
            record = self.hooks.on_batch_collected(batch, self.agent)
            self.agent.process_batch(batch)
            due = self.schedule.due(self.env_steps)
            t0 = time.time()
            measured = [(s, self._metric_context(s, batch)) for s in self.metrics if s.name in due]
            for spec, ctx in measured:
                if spec.before_update is not None:  # on the same states as its record, before they change
                    record.update(spec.before_update(ctx))
            metric_time += time.time() - t0
            result = self.agent.update(batch, self.env_steps, self.hooks)
            self.hooks.after_batch_update(self.agent, min(1.0, self.env_steps / self.total))
            self.collector.update_policy_weights_()
            if due:
                t0 = time.time()
                record.update(result.scalars)
                for spec, ctx in measured:
                    record.update(spec.record(ctx))
                metric_time += time.time() - t0
                stop.arm(False)  # the record and checkpoint are written whole
                record.update(self._episode_record())
                elapsed = time.time() - t_start
                record["perf/sps"] = (self.env_steps - steps_start) / max(elapsed, 1e-9)
                record["perf/wall_time"] = self.wall_time()
                record["perf/metrics_share"] = metric_time / max(elapsed, 1e-9)
                self._log(record)
                self.schedule.advance(due, self.env_steps)
                bar.set_postfix(sps=f"{record['perf/sps']:.0f}", ret=f"{record.get('env/return', float('nan')):.1f}")
            stop.arm(False)
            bar.update(batch.numel())
            planted_stop = stop_after is not None and self.batches >= stop_after
            if self.schedule.checkpoint_due(self.env_steps) or stop.signum is not None or planted_stop:
                keep = self.schedule.checkpoint_due(self.env_steps)
                self.schedule.advance_checkpoints(self.env_steps)
                self.save_checkpoint(keep=keep)
                if stop.signum is not None or planted_stop:
                    self.interrupted = True
                    bar.close()
                    return
        bar.close()
        self.save_checkpoint(keep=True)

    # --- summary --------------------------------------------------------------------------------------------
    def summary(self, status: str, **extra: Any) -> dict[str, Any]:
        final = {k: v for k, v in self.last_record.items() if not k.startswith("_")}
        return {
            "status": status,
            "env_steps": self.env_steps,
            "total_frames": self.total,
            "batches": self.batches,
            "wall_time": self.wall_time(),
            "git_commit": _git_commit(),
            "overrides": self.overrides,
            "final": final,
            "last_5pct": {k: float(np.mean(v)) for k, v in self.tail.items()},
            **extra,
        }


# Keys that may change between a run and its resume: presentation, logging destination and test-only switches.
# train.overwrite only acts on a run dir without a checkpoint, so it never blocks a resume either.
_RESUMABLE_PREFIXES = ("train.progress", "train.threads", "train.overwrite", "logger.", "debug.", "sweep.")


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        return {k: v for key, val in d.items() for k, v in _flat(val, f"{prefix}{key}.").items()}
    return {prefix[:-1]: d}


def check_resume_compatible(cfg: DictConfig, run_dir: str | Path) -> None:
    """A run dir holding a checkpoint may only be resumed with the config it was started with (up to the keys in
    ``_RESUMABLE_PREFIXES``); otherwise raise one ConfigError listing the differing keys, before anything is built."""
    from repdyn.loggers.logger import redact

    run_dir = Path(run_dir)
    if not (run_dir / CHECKPOINT_DIR / ckpt.LAST).exists() or not (run_dir / CONFIG_FILE).exists():
        return
    old = _flat(OmegaConf.to_container(OmegaConf.load(run_dir / CONFIG_FILE)))
    new = _flat(redact(to_container(cfg)))
    diff = sorted(
        k for k in old.keys() | new.keys() if old.get(k) != new.get(k) and not k.startswith(_RESUMABLE_PREFIXES)
    )
    if diff:
        shown = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff[:8])
        raise ConfigError(
            f"{run_dir} holds a checkpoint of a different config ({shown}); use a new run dir or the same config"
        )


def run(cfg: DictConfig, run_dir: str | Path, overrides: list[str] | None = None) -> str:
    """Execute one run in ``run_dir`` (resuming from its checkpoint if any); returns the final status.

    Raises ConfigError (a :class:`repdyn.run_dir.RunDirError` for the run dir's content) before writing anything."""
    from repdyn import run_dir as rundir
    from repdyn.agents.base import Diverged
    from repdyn.loggers.logger import redact, write_json

    run_dir = Path(run_dir)
    check_resume_compatible(cfg, run_dir)
    state = rundir.prepare(cfg, run_dir)  # the checkpoint to resume, or None (the dir holds no earlier output)
    run_dir.mkdir(parents=True, exist_ok=True)
    overrides = list(overrides or [])
    OmegaConf.save(OmegaConf.create(redact(to_container(cfg))), run_dir / CONFIG_FILE)
    r = Run(cfg, run_dir, overrides)
    r.build()
    if state is not None:
        r.load_state_dict(state)
        log.info("resumed from %s at %d env steps", run_dir / CHECKPOINT_DIR, r.env_steps)
    r.open_sinks(resumed=state is not None)
    write_json(run_dir / SUMMARY_FILE, r.summary("running"))
    stop = StopRequest()
    status, extra = "completed", {}
    try:
        try:
            r.train(stop)
        except BatchAborted:
            r.abandon_batch()
            log.warning(
                "signal %d: abandoned the batch under way; checkpoint of its start (%d env steps) written %.2f s "
                "after the signal",
                stop.signum,
                r.env_steps,
                time.time() - stop.received,
            )
        if r.interrupted:
            status, extra = "interrupted", {"signal": int(stop.signum) if stop.signum is not None else None}
    except Diverged as e:
        status, extra = "diverged", {"diverged_at_step": r.env_steps, "diverged_key": e.key}
        log.error("run diverged at %d env steps: %s", r.env_steps, e)
    except BaseException as e:
        status, extra = "failed", {"error": f"{type(e).__name__}: {e}"}
        raise
    finally:
        summary = r.summary(status, **extra)
        write_json(run_dir / SUMMARY_FILE, summary)
        r.logger.close(summary)
        r.collector.shutdown()
        stop.restore()
        if stop.signum is not None:
            stop.hand_over()
    return status


def _refuse(e: ConfigError, run_dir: str) -> NoReturn:
    """One message, no traceback, exit 2: the user has to change the command line or the run dir, not the code.
    The earlier run's ``.hydra/`` that Hydra rewrote for this invocation is put back: a refusal leaves no trace."""
    from repdyn.run_dir import RunDirError, restore_hydra_dir

    restore_hydra_dir(run_dir)
    kind = "run dir error" if isinstance(e, RunDirError) else "config error"
    print(f"repdyn: {kind}: {e}", file=sys.stderr)
    sys.exit(EXIT_CONFIG)


@hydra.main(config_path=str(CONF_DIR), config_name="train", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> str:
    from repdyn import preflight
    from repdyn.config import round_budget
    from repdyn.loggers.secrets import ScrubFilter, scrub_file

    preflight.mark_started()
    warnings.filterwarnings("ignore", message="Nested TransformedEnvs")
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    fresh = preflight.holds_only_hydra_files(run_dir, hc.job.name)  # Hydra made it for this call: nothing to keep
    for f in (run_dir / hc.output_subdir).glob("*.yaml") if hc.output_subdir else ():
        scrub_file(f)
    for handler in logging.getLogger().handlers:  # the job log in the run dir, and the console
        handler.addFilter(ScrubFilter())
    overrides = preflight.overrides_of(cfg)  # as typed: an ${oc.env:...} in them stays unresolved
    skipped = preflight.skipped_member(overrides) if hc.mode == RunMode.MULTIRUN else None
    if skipped is not None:  # found invalid before the sweep started, and sweep.skip_invalid=true: record, don't run
        preflight.write_invalid_summary(run_dir, overrides, skipped[1])
        return "invalid"
    try:
        validate(cfg, overrides + preflight.overrides_of(cfg, "hydra"))
        note = round_budget(cfg)
        if note:
            log.warning(note)
        status = run(cfg, run_dir, overrides)  # checks resume compatibility first
    except ConfigError as e:  # the run dir's content, or found while building (a replay buffer larger than the RAM)
        if hc.mode == RunMode.MULTIRUN:  # a sweep goes on with the next member; its end reports this one
            log.error("refused: %s", e)
            if fresh:  # else the dir holds an earlier run's summary.json, which stays
                preflight.write_invalid_summary(run_dir, overrides, str(e))
            preflight.record_refused(hc.job.num, overrides, str(e))
            return "invalid"
        if fresh:
            preflight.discard_run_dir(run_dir)
        _refuse(e, run_dir)
    print(f"repdyn: run {status}; outputs in {hc.runtime.output_dir}", flush=True)
    if status == "diverged" and hc.mode != RunMode.MULTIRUN:
        sys.exit(EXIT_DIVERGED)  # in a multirun the status is in summary.json and the sweep continues
    return status


def main() -> None:
    """The ``repdyn-train`` entry point: the Hydra app, with Hydra's own usage errors exiting 2 like config errors."""
    import traceback

    from repdyn import preflight

    preflight.RESUME_CHECK = check_resume_compatible
    try:
        _hydra_main()
    except SystemExit as e:
        code = preflight.main_exit_code(e.code)
        if code != e.code:
            sys.exit(code)
        raise
    except Exception:  # HYDRA_FULL_ERROR=1 lets Hydra's errors through with their traceback
        if preflight.main_exit_code(1) == 1:
            raise
        traceback.print_exc()
        sys.exit(EXIT_CONFIG)


if __name__ == "__main__":
    main()
