"""``python -m repdyn.distill teacher=<run dir> objective=<name> [overrides]``: the Hydra app (``conf/distill.yaml``).

Same conventions as ``repdyn.train`` (README "Where outputs go", "Resume", "Failures"): a run dir with
``config.yaml``, ``history.jsonl``, ``summary.json`` and ``checkpoints/``; ``-m`` sweeps with
``hydra/launcher=basic|local|slurm``; exit 2 with one message naming the key for a bad config (before Hydra writes the
run dir: :class:`DistillPreflight`), 3 for a diverged run, 128 + signal after a stop signal's checkpoint; a run dir
holding ``checkpoints/last.pt`` resumes from it.
"""

from __future__ import annotations

import copy
import logging
import sys
import warnings
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from repdyn import preflight
from repdyn.distill.config import register_distill_configs, validate_distill
from repdyn.errors import ConfigError
from repdyn.paths import CHECKPOINT_DIR, CONF_DIR, CONFIG_FILE, SUMMARY_FILE

log = logging.getLogger("repdyn.distill")
EXIT_CONFIG, EXIT_DIVERGED = 2, 3
# keys that may change between a run and its resume (presentation, logging destination, test switches)
_RESUMABLE = ("distill.progress", "distill.overwrite", "distill.threads", "logger.", "debug.")

register_distill_configs()


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        return {k: v for key, val in d.items() for k, v in _flat(val, f"{prefix}{key}.").items()}
    return {prefix[:-1]: d}


def check_resume_compatible(cfg: DictConfig, run_dir: Path) -> None:
    """A checkpointed run dir resumes only with the config it started with (up to ``_RESUMABLE``)."""
    from repdyn.config import to_container
    from repdyn.loggers.logger import redact

    if not (run_dir / CHECKPOINT_DIR / "last.pt").exists() or not (run_dir / CONFIG_FILE).exists():
        return
    old = _flat(OmegaConf.to_container(OmegaConf.load(run_dir / CONFIG_FILE)))
    new = _flat(redact(to_container(cfg)))
    diff = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k) and not k.startswith(_RESUMABLE))
    if diff:
        shown = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff[:8])
        raise ConfigError(f"{run_dir} holds a checkpoint of a different config ({shown}); use a new run dir")


def check_job(config: DictConfig, run_dir: Path) -> None:
    """Everything known before the run dir exists (``config`` with its ``hydra`` node). Raises ConfigError."""
    task = copy.deepcopy(config)
    with read_write(task), open_dict(task):
        del task["hydra"]
    if OmegaConf.is_missing(task, "teacher"):
        raise ConfigError("teacher: required: the run dir of a trained repdyn run (teacher=<run dir>)")
    validate_distill(task)
    check_resume_compatible(task, run_dir)


def check_sweep(config: DictConfig) -> None:
    """Compose and check every member of a basic-sweeper multirun before the sweep dir exists."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    jobs = preflight.sweep_jobs(config)
    if jobs is None:
        return
    loader = GlobalHydra.instance().config_loader()
    errors = []
    for idx, job in enumerate(jobs):
        try:
            job_cfg = loader.load_sweep_config(config, job)
        except (HydraException, OmegaConfBaseException) as e:
            errors.append(f"{str(e).strip()} (sweep member #{idx}: {' '.join(job)})")
            continue
        with read_write(job_cfg), open_dict(job_cfg):
            job_cfg.hydra.job.num = idx
        run_dir = Path(str(job_cfg.hydra.sweep.dir)) / str(job_cfg.hydra.sweep.subdir)
        try:
            check_job(job_cfg, run_dir)
        except ConfigError as e:
            errors.append(f"{e} (sweep member #{idx}: {' '.join(job)})")
    if errors:
        raise ConfigError(f"{len(errors)} of {len(jobs)} sweep members are invalid:\n  " + "\n  ".join(errors))


class DistillPreflight(Callback):
    """Validate before Hydra creates the run dir (single run) or the sweep dir (every member)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        preflight.mark_started()
        preflight.exit_on_config_error(lambda: check_job(config, Path(str(config.hydra.run.dir))))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        preflight.mark_started()
        preflight.exit_on_config_error(lambda: check_sweep(config))


def run(cfg: DictConfig, teacher_cfg: DictConfig, run_dir: Path, overrides: list[str] | None = None) -> str:
    """One distillation run in ``run_dir`` (resuming its checkpoint if any); returns the final status. Raises
    ConfigError (the run dir's content) before writing anything."""
    from repdyn import run_dir as rundir
    from repdyn.agents.base import Diverged
    from repdyn.config import to_container
    from repdyn.distill.loop import Distillation
    from repdyn.loggers.logger import redact, write_json
    from repdyn.stop_signal import StopRequest

    run_dir = Path(run_dir)
    check_resume_compatible(cfg, run_dir)
    # the run dir rules of repdyn.train (resume / refuse / move aside), driven by distill.overwrite
    state = rundir.prepare(OmegaConf.create({"train": {"overwrite": bool(cfg.distill.overwrite)}}), run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(OmegaConf.create(redact(to_container(cfg))), run_dir / CONFIG_FILE)
    r = Distillation(cfg, teacher_cfg, run_dir, list(overrides or []))
    r.build()
    if state is not None:
        r.load_state_dict(state)
        log.info("resumed from %s at step %d", run_dir / CHECKPOINT_DIR, r.step)
    else:
        r.start()
    r.open_sinks(resumed=state is not None)
    write_json(run_dir / SUMMARY_FILE, r.summary("running"))
    stop = StopRequest()
    status, extra = "completed", {}
    try:
        r.train(stop)
        if r.interrupted:
            status, extra = "interrupted", {"signal": int(stop.signum) if stop.signum is not None else None}
    except Diverged as e:
        status, extra = "diverged", {"diverged_at_step": r.step, "diverged_key": e.key}
        log.error("distillation diverged at step %d: %s", r.step, e)
    except BaseException as e:
        status, extra = "failed", {"error": f"{type(e).__name__}: {e}"}
        raise
    finally:
        summary = r.summary(status, **extra)
        write_json(run_dir / SUMMARY_FILE, summary)
        r.sinks.close(summary)
        r.collector.shutdown()
        stop.restore()
        if stop.signum is not None:
            stop.hand_over()
    return status


@hydra.main(config_path=str(CONF_DIR), config_name="distill", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> str:
    from repdyn.loggers.secrets import ScrubFilter, scrub_file

    preflight.mark_started()
    warnings.filterwarnings("ignore", message="Nested TransformedEnvs")
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    fresh = preflight.holds_only_hydra_files(run_dir, hc.job.name)
    for f in (run_dir / hc.output_subdir).glob("*.yaml") if hc.output_subdir else ():
        scrub_file(f)
    for handler in logging.getLogger().handlers:
        handler.addFilter(ScrubFilter())
    overrides = preflight.overrides_of(cfg)
    try:
        teacher_cfg = validate_distill(cfg)
        status = run(cfg, teacher_cfg, run_dir, overrides)
    except ConfigError as e:
        return preflight.refused_in_task(e, run_dir, fresh, overrides, HydraConfig.get().mode == RunMode.MULTIRUN)
    print(f"repdyn: distillation {status}; outputs in {run_dir}", flush=True)
    if status == "diverged" and hc.mode != RunMode.MULTIRUN:
        sys.exit(EXIT_DIVERGED)
    return status


def main() -> None:
    """The entry point: Hydra's own usage errors (before composition ends) exit 2 like config errors."""
    preflight.run_hydra_app(_hydra_main)
