"""Train an agent: compose → build env, agent, interventions → collect/update loop → log → checkpoint.

``python -m repdyn.train [overrides]`` (or ``repdyn-train``); ``-m`` sweeps. Outputs land in the Hydra run dir:
``config.yaml`` (resolved), ``history.jsonl`` (one record per log step), ``summary.json``, ``checkpoints/``, ``wandb/``.
A run resumes by itself when its run dir holds ``checkpoints/last.pt`` (requeue, or a restart with the same
``hydra.run.dir``); SIGTERM/SIGUSR2 make it checkpoint at the next batch boundary, then exit (or let submitit requeue).
"""

from __future__ import annotations

import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from repdyn import checkpoint as ckpt
from repdyn.config import ConfigError, register_configs, to_container, validate
from repdyn.episode_stats import EpisodeStats
from repdyn.paths import CHECKPOINT_DIR, CONF_DIR, CONFIG_FILE, SUMMARY_FILE
from repdyn.record_sinks import RecordSinks
from repdyn.run_parts import build_run_parts
from repdyn.run_state import Progress, RunState
from repdyn.stop_signal import BatchAborted, StopRequest
from repdyn.training_loop import TrainingLoop

log = logging.getLogger("repdyn.train")
EXIT_DIVERGED = 3
EXIT_CONFIG = 2

register_configs()


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


def start_run(cfg: DictConfig, run_dir: Path, overrides: list[str], saved: dict[str, Any] | None) -> TrainingLoop:
    """Build the run of ``cfg`` in ``run_dir``, restore ``saved`` (a checkpoint) if any, open its sinks and write the
    ``running`` summary; returns the loop, ready to train (its ``state`` holds the rest)."""
    from repdyn.loggers.logger import redact, write_json

    progress = Progress(total=cfg.train.total_frames)
    parts = build_run_parts(cfg, run_dir)
    sinks = RecordSinks(run_dir, cfg.train.total_frames)
    state = RunState(parts, progress, EpisodeStats(), sinks, seed=cfg.seed, checkpoint_dir=run_dir / CHECKPOINT_DIR)
    if saved is not None:
        state.load_state_dict(saved)
        log.info("resumed from %s at %d env steps", run_dir / CHECKPOINT_DIR, progress.env_steps)
    config = redact(to_container(cfg))  # after the build, which may fill in agent.replay_dir
    sinks.open(saved is not None, logger_cfg=cfg.logger, run_name=cfg.name, config=config, overrides=overrides)
    write_json(run_dir / SUMMARY_FILE, sinks.summary("running", counters=progress.counters(), overrides=overrides))
    stop_after = cfg.debug.stop_after_batches  # read once: an OmegaConf lookup costs ~0.1 ms per batch
    return TrainingLoop(parts, state, mcfg=cfg.metrics, stop_after=stop_after, show_progress=cfg.train.progress)


def train_to_end(loop: TrainingLoop, stop: StopRequest) -> tuple[str, dict[str, Any]]:
    """Run ``loop`` until it ends; returns the status (``completed``, ``interrupted``, ``diverged``) and the
    summary's extra keys. A stop signal during an on-policy batch checkpoints the batch's start state at once."""
    from repdyn.agents.base import Diverged

    state = loop.state
    try:
        try:
            interrupted = loop.run(stop)
        except BatchAborted:
            state.abandon_batch()
            interrupted = True
            log.warning(
                "signal %d: abandoned the batch under way; checkpoint of its start (%d env steps) written %.2f s "
                "after the signal",
                stop.signum,
                state.progress.env_steps,
                time.time() - stop.received,
            )
    except Diverged as e:
        log.error("run diverged at %d env steps: %s", state.progress.env_steps, e)
        return "diverged", {"diverged_at_step": state.progress.env_steps, "diverged_key": e.key}
    if interrupted:
        return "interrupted", {"signal": int(stop.signum) if stop.signum is not None else None}
    return "completed", {}


def run(cfg: DictConfig, run_dir: str | Path, overrides: list[str] | None = None) -> str:
    """Execute one run in ``run_dir`` (resuming from its checkpoint if any); returns the final status.

    Raises ConfigError (a :class:`repdyn.run_dir.RunDirError` for the run dir's content) before writing anything."""
    from repdyn import run_dir as rundir
    from repdyn.loggers.logger import redact, write_json

    run_dir = Path(run_dir)
    check_resume_compatible(cfg, run_dir)
    saved = rundir.prepare(cfg, run_dir)  # the checkpoint to resume, or None (the dir holds no earlier output)
    run_dir.mkdir(parents=True, exist_ok=True)
    overrides = list(overrides or [])
    OmegaConf.save(OmegaConf.create(redact(to_container(cfg))), run_dir / CONFIG_FILE)
    loop = start_run(cfg, run_dir, overrides, saved)
    stop = StopRequest()
    status, extra = "failed", {}
    try:
        status, extra = train_to_end(loop, stop)
    except BaseException as e:
        extra = {"error": f"{type(e).__name__}: {e}"}
        raise
    finally:
        summary = loop.sinks.summary(status, counters=loop.progress.counters(), overrides=overrides, **extra)
        write_json(run_dir / SUMMARY_FILE, summary)
        loop.sinks.close(summary)
        loop.parts.collector.shutdown()
        stop.restore()
        if stop.signum is not None:
            stop.hand_over()
    return status


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
        return preflight.refused_in_task(e, run_dir, fresh, overrides, hc.mode == RunMode.MULTIRUN)
    print(f"repdyn: run {status}; outputs in {hc.runtime.output_dir}", flush=True)
    if status == "diverged" and hc.mode != RunMode.MULTIRUN:
        sys.exit(EXIT_DIVERGED)  # in a multirun the status is in summary.json and the sweep continues
    return status


def main() -> None:
    """The ``repdyn-train`` entry point: the Hydra app, with Hydra's own usage errors exiting 2 like config errors."""
    from repdyn import preflight

    preflight.RESUME_CHECK = check_resume_compatible
    preflight.run_hydra_app(_hydra_main)


if __name__ == "__main__":
    main()
