"""Command-line checks that run before Hydra writes anything, and the exit codes of ``repdyn.train`` (README
"Failures": 0 completed, 2 config error, 3 diverged, 1 anything else — a crash, with its traceback).

Hydra creates the run dir, writes ``.hydra/{config,hydra,overrides}.yaml`` and opens the job log before it calls the
task function, so validating there would leave a run dir behind for a config that never ran, and would overwrite the
``.hydra/`` files of a checkpointed run dir before refusing a different config for it. :class:`Preflight` is a Hydra
callback (``hydra.callbacks.preflight`` in ``conf/train.yaml``) whose ``on_run_start`` / ``on_multirun_start`` run
after composition and before any of that: it validates the composed config (:func:`repdyn.config.validate`), the
run dir path (no secret in it) and resume compatibility, and exits with code 2 on a :class:`ConfigError`. For a sweep
it composes and checks every member the basic sweeper will launch, before the sweep dir exists.

What still reaches the task function with an error (a replay buffer larger than the RAM is only known once the env
is built) exits 2 too; :func:`discard_run_dir` then removes the run dir if it held nothing but Hydra's own files.

Sweeps: a member that is invalid never stops its siblings. Found before launch, the whole sweep is refused (exit 2,
every bad member listed) unless ``sweep.skip_invalid=true``: then the valid members run and each invalid one is
recorded (:func:`write_invalid_summary`; the submitit launchers skip it, the basic launcher's task function records
it instead of running). Found only while building, the member is recorded the same way, its siblings run, and the
sweep ends with exit 2 (0 with ``sweep.skip_invalid=true``), listing it (:meth:`Preflight.on_multirun_end`).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from repdyn.config import ConfigError, round_budget, validate
from repdyn.paths import SUMMARY_FILE

EXIT_CONFIG = 2
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
# Set by repdyn.train.main: the check that a run dir's checkpoint belongs to this config (lives beside the loop).
RESUME_CHECK: Callable[[DictConfig, Path], None] | None = None
_state: dict[str, Any] = {
    "started": False,
    "members": 0,  # members of the sweep being launched
    "skipped": {},  # tuple(overrides) -> (run dir, reason): invalid members skipped under sweep.skip_invalid=true
    "refused": [],  # "#<num> (<overrides>): <reason>" for members refused by their task function (basic launcher)
}


def mark_started() -> None:
    """Composition succeeded: from here on, an exit code 1 is not a Hydra usage error (see :func:`main_exit_code`)."""
    _state["started"] = True


def main_exit_code(code: Any) -> Any:
    """The exit code for a ``SystemExit(code)`` out of the Hydra app: Hydra exits with 1 for its own usage errors
    (unknown group option, wrong type, unparsable override), which happen before composition ends; those are
    config errors (2). After composition, 1 stays 1."""
    return EXIT_CONFIG if code == 1 and not _state["started"] else code


def exit_refused(e: Exception, run_dir: str | Path) -> NoReturn:
    """One message, no traceback, exit 2: the user has to change the command line or the run dir, not the code.
    The earlier run's ``.hydra/`` that Hydra rewrote for this invocation is put back: a refusal leaves no trace."""
    from repdyn.run_dir import RunDirError, restore_hydra_dir

    restore_hydra_dir(run_dir)
    kind = "run dir error" if isinstance(e, RunDirError) else "config error"
    print(f"repdyn: {kind}: {e}", file=sys.stderr)
    sys.exit(EXIT_CONFIG)


def refused_in_task(e: Exception, run_dir: Path, fresh: bool, overrides: list[str], multirun: bool) -> str:
    """A ConfigError found in a Hydra task function (the run dir's content, or found while building): a sweep member
    gets its ``summary.json`` (status invalid, unless the dir holds an earlier run's) and is remembered for the end of
    the sweep, which goes on ("invalid" is returned); a single run leaves no trace and exits 2."""
    if multirun:
        logging.getLogger("repdyn").error("refused: %s", e)
        if fresh:
            write_invalid_summary(run_dir, overrides, str(e))
        record_refused(HydraConfig.get().job.num, overrides, str(e))
        return "invalid"
    if fresh:
        discard_run_dir(run_dir)
    exit_refused(e, run_dir)


def run_hydra_app(hydra_main: Callable[[], Any]) -> None:
    """Call a ``@hydra.main`` app (``repdyn.train`` and every study) with Hydra's own usage errors (an unknown key, a
    wrong type, an unparsable override: before composition ends) exiting 2 like config errors; ``--help`` exits 0 and
    a crash after composition exits 1."""
    import traceback

    try:
        hydra_main()
    except SystemExit as e:
        code = main_exit_code(e.code)
        if code != e.code:
            sys.exit(code)
        raise
    except Exception:  # HYDRA_FULL_ERROR=1 lets Hydra's errors through with their traceback
        if main_exit_code(1) == 1:
            raise
        traceback.print_exc()
        sys.exit(EXIT_CONFIG)


class Preflight(Callback):
    """Validate before Hydra creates the run dir (single run) or the sweep dir (every member of a sweep)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        mark_started()
        exit_on_config_error(lambda: check_job(config, Path(str(config.hydra.run.dir))))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        mark_started()
        exit_on_config_error(lambda: check_sweep(config))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        refused = _state["refused"]
        if not refused:
            return
        listing = "\n  ".join(refused)
        head = f"{len(refused)} of {_state['members']} sweep member(s) refused while building (summary.json: invalid)"
        if OmegaConf.select(config, "sweep.skip_invalid", default=False):
            print(f"repdyn: {head}; skipped (sweep.skip_invalid=true):\n  {listing}", file=sys.stderr)
            return
        print(f"repdyn: config error: {head}:\n  {listing}", file=sys.stderr)
        sys.exit(EXIT_CONFIG)


def exit_on_config_error(fn: Callable[[], None]) -> None:
    """Run a check; a ConfigError becomes one message and exit 2 (in a Hydra callback, before any run dir exists)."""
    try:
        fn()
    except ConfigError as e:
        print(f"repdyn: config error: {e}", file=sys.stderr)
        sys.exit(EXIT_CONFIG)


def overrides_of(config: DictConfig, which: str = "task") -> list[str]:
    """Hydra's ``overrides.<which>`` as typed (unresolved: ``name=${oc.env:X}`` stays an interpolation)."""
    node = config.hydra.overrides if "hydra" in config else HydraConfig.get().overrides
    return [str(o) for o in OmegaConf.to_container(node[which], resolve=False)]


def check_job(config: DictConfig, run_dir: Path) -> None:
    """Everything that can be known about one job before its run dir exists: ``config`` is the composed config with
    its ``hydra`` node, ``run_dir`` where the job would write. Raises :class:`ConfigError`."""
    from repdyn.loggers.secrets import secret_in

    hydra_cfg = copy.deepcopy(config)
    with read_write(hydra_cfg), open_dict(hydra_cfg):
        hydra_cfg.hydra.runtime.output_dir = os.path.abspath(run_dir)
    HydraConfig.instance().set_config(hydra_cfg)  # for ${hydra:...} interpolations, as run_job does
    task = copy.deepcopy(config)
    with read_write(task), open_dict(task):
        del task["hydra"]
    validate(task, overrides_of(config) + overrides_of(config, "hydra"))
    env_var = secret_in(str(run_dir))
    if env_var is not None:
        key = "name" if secret_in(str(task.name)) else "hydra.run.dir"
        raise ConfigError(f"{key}: the run dir path would hold the value of ${env_var}; a path cannot be redacted")
    round_budget(task)  # a run dir's config.yaml holds the rounded budget
    if RESUME_CHECK is not None:
        RESUME_CHECK(task, run_dir)


def sweep_jobs(config: DictConfig) -> list[list[str]] | None:
    """The override lists of the jobs Hydra's basic sweeper launches for this multirun config (sweeper params, then
    the command line, as one Cartesian product); None for another sweeper."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if OmegaConf.select(config, "hydra.sweeper._target_") != BASIC_SWEEPER:
        return None
    params = config.hydra.sweeper.get("params")
    params = OmegaConf.to_container(params, resolve=False) if params is not None else {}
    args = [f"{k}={v}" for k, v in params.items()] + overrides_of(config)
    # The loader resolves group choices in the overrides; outside a Hydra app (reading a sweep's multirun.yaml
    # afterwards) plain parsing is enough to expand the same sweep.
    hydra_up = GlobalHydra.instance().is_initialized()
    parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader() if hydra_up else None)
    return [list(job) for batch in BasicSweeper.split_arguments(parser.parse_overrides(args), None) for job in batch]


def check_sweep(config: DictConfig) -> None:
    """Compose and check every member of the sweep (as the basic launcher will) before the sweep dir exists."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    jobs = sweep_jobs(config)
    _state["skipped"], _state["refused"] = {}, []
    if jobs is None:
        return
    _state["members"] = len(jobs)
    loader = GlobalHydra.instance().config_loader()
    errors = []  # every bad member, so one refusal says everything to fix
    uncomposable = False
    for idx, job in enumerate(jobs):
        where = f"sweep member #{idx}: {' '.join(job)}"
        try:
            job_cfg = loader.load_sweep_config(config, job)
        except (HydraException, OmegaConfBaseException) as e:
            errors.append(f"{where}: {str(e).strip()}")
            uncomposable = True
            continue
        with read_write(job_cfg), open_dict(job_cfg):
            job_cfg.hydra.job.id = idx
            job_cfg.hydra.job.num = idx
        run_dir = Path(str(job_cfg.hydra.sweep.dir)) / str(job_cfg.hydra.sweep.subdir)
        try:
            check_job(job_cfg, run_dir)
        except ConfigError as e:
            errors.append(f"{e} ({where})")
            _state["skipped"][tuple(job)] = (run_dir, str(e))
    skip = bool(OmegaConf.select(config, "sweep.skip_invalid", default=False))
    if errors and skip and not uncomposable and len(errors) < len(jobs):
        print(
            f"repdyn: skipping {len(errors)} of {len(jobs)} invalid sweep member(s) (sweep.skip_invalid=true; "
            "each gets a summary.json with status invalid):\n  " + "\n  ".join(errors),
            file=sys.stderr,
        )
        return
    _state["skipped"] = {}
    # A member Hydra cannot compose would stop Hydra's own launcher; a sweep of only invalid members has nothing to run.
    why = " (members that do not compose cannot be skipped)" if skip and uncomposable else ""
    if len(errors) == 1:
        raise ConfigError(errors[0] + why)
    if errors:
        raise ConfigError(f"{len(errors)} of {len(jobs)} sweep members are invalid{why}:\n  " + "\n  ".join(errors))


def skipped_member(overrides: Any) -> tuple[Path, str] | None:
    """(run dir, reason) when this member's overrides were found invalid and ``sweep.skip_invalid=true``."""
    return _state["skipped"].get(tuple(overrides))


def record_refused(job_num: Any, overrides: list[str], reason: str) -> None:
    """A member's task function refused it: remembered for :meth:`Preflight.on_multirun_end`."""
    _state["refused"].append(f"#{job_num} ({' '.join(overrides)}): {reason}")


def write_invalid_summary(run_dir: Path, overrides: list[str], reason: str) -> None:
    """The record of a sweep member that never ran: ``summary.json`` with ``status: invalid`` and the reason."""
    run_dir.mkdir(parents=True, exist_ok=True)
    record = {"status": "invalid", "reason": reason, "overrides": list(overrides), "env_steps": 0}
    (run_dir / SUMMARY_FILE).write_text(json.dumps(record, indent=1) + "\n")


def holds_only_hydra_files(run_dir: Path, job_name: str) -> bool:
    """True when ``run_dir`` holds nothing but what Hydra wrote for this job (``.hydra/`` and the job log)."""
    try:
        return all(p.name in (".hydra", f"{job_name}.log") for p in run_dir.iterdir())
    except OSError:
        return False


def discard_run_dir(run_dir: Path) -> None:
    """Remove a run dir created for a config that never ran, then its parents up to the working dir while empty."""
    run_dir = run_dir.resolve()
    shutil.rmtree(run_dir, ignore_errors=True)
    cwd = Path.cwd().resolve()
    for parent in run_dir.parents:
        if parent == cwd or cwd not in parent.parents:
            break
        try:
            parent.rmdir()
        except OSError:
            break
