"""Decide what a run dir is for before a run touches it: resume its checkpoint, start fresh, or refuse.

Why: a run dir reused without a checkpoint used to mix two runs silently (history deleted, ``config.yaml``
overwritten, the earlier run's ``capacity_target.pt`` reused), and a resume whose history had lost records silently
started a history with a gap. Here every such case is either made explicit (``train.overwrite=true`` moves the
earlier output into ``previous_<time>/``) or refused with one :class:`RunDirError` naming the file, raised before
anything is written or computed, so nothing already recorded is lost.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from repdyn import checkpoint as ckpt
from repdyn.errors import ConfigError
from repdyn.loggers.history import HistoryError, iter_history
from repdyn.paths import CHECKPOINT_DIR, HISTORY_FILE, PREVIOUS_PREFIX

# Hydra writes these into the run dir before the task function runs: they never count as an earlier run's output.
HYDRA_DIR = ".hydra"
HYDRA_LOG_SUFFIX = ".log"  # the job log (<job name>.log), appended to by every invocation
_SHOWN = 8  # names listed in a message


class RunDirError(ConfigError):
    """A run dir that cannot be used as asked (exit 2, like a config error, before anything is written)."""


# run dir → the files of its .hydra/ before this invocation (None: there was none); filled by KeepEarlierHydraDir.
_hydra_before: dict[Path, dict[str, bytes] | None] = {}


def _read_tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _write_tree(folder: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)


class KeepEarlierHydraDir(Callback):
    """Hydra rewrites ``<run dir>/.hydra/`` before the task runs, erasing an earlier run's record of its overrides
    (which the analysis groups by). Remembered here first, so a refused invocation can put it back
    (:func:`restore_hydra_dir`) and ``train.overwrite=true`` can move it aside with the rest. Single runs only:
    Hydra calls no hook before it writes a multirun job's folder."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            run_dir = Path(str(config.hydra.run.dir)).resolve()
        except Exception:  # an interpolation Hydra only resolves later: nothing to protect we could find
            return
        folder = run_dir / HYDRA_DIR
        _hydra_before[run_dir] = _read_tree(folder) if folder.is_dir() else None


def restore_hydra_dir(run_dir: str | Path) -> None:
    """After a refusal: put back the ``.hydra/`` an earlier run left (if one did), so the invocation leaves no trace."""
    run_dir = Path(run_dir)
    before = _hydra_before.get(run_dir.resolve())
    if before is None:
        return
    shutil.rmtree(run_dir / HYDRA_DIR, ignore_errors=True)
    _write_tree(run_dir / HYDRA_DIR, before)


def earlier_output(run_dir: Path) -> list[str]:
    """Names in ``run_dir`` left by an earlier run: everything but Hydra's own files (this invocation rewrote them)
    and folders an earlier ``train.overwrite=true`` already moved aside."""
    if not run_dir.is_dir():
        return []
    return sorted(
        p.name
        for p in run_dir.iterdir()
        if p.name != HYDRA_DIR
        and not (p.is_file() and p.name.endswith(HYDRA_LOG_SUFFIX))
        and not p.name.startswith(PREVIOUS_PREFIX)
    )


def _shown(names: Sequence[str]) -> str:
    more = f", ... ({len(names)} in all)" if len(names) > _SHOWN else ""
    return ", ".join(names[:_SHOWN]) + more


def move_aside(run_dir: Path, names: Sequence[str], now: datetime | None = None) -> Path:
    """Move ``names`` into a new ``run_dir/previous_<time>/`` (renames: instant, nothing copied or deleted)."""
    stamp = (now or datetime.now()).strftime("%Y-%m-%d_%H-%M-%S")
    dest, n = run_dir / f"{PREVIOUS_PREFIX}{stamp}", 1
    while dest.exists():
        n += 1
        dest = run_dir / f"{PREVIOUS_PREFIX}{stamp}_{n}"
    dest.mkdir()
    for name in names:
        os.replace(run_dir / name, dest / name)
    return dest


def history_end(path: Path) -> int | None:
    """The last step recorded in a history file, None if it is missing or empty (raises HistoryError if damaged)."""
    if not path.exists():
        return None
    return max((rec["step"] for rec in iter_history(path)), default=None)


def checkpoint_history_step(state: dict[str, Any]) -> int:
    """The last history step a checkpoint knows (-1: nothing logged yet); the resume truncates the history to it."""
    return int(state.get("counters", {}).get("last_record", {}).get("_step", -1))


def check_history_reaches(path: Path, step: int) -> None:
    """A resume keeps the history up to the checkpoint's last logged ``step`` and appends after it: if records up to
    there are gone, the resumed history would have a silent gap, so refuse."""
    if step < 0:
        return
    try:
        end = history_end(path)
    except HistoryError as e:
        raise RunDirError(str(e)) from None
    if end is None or end < step:
        found = "is missing" if not path.exists() else ("is empty" if end is None else f"ends at step {end}")
        raise RunDirError(
            f"{path} {found}, but the checkpoint in {path.parent / CHECKPOINT_DIR} has logged up to step {step}: "
            "resuming would leave a gap in the history. Restore the history file, or start over in a new run dir"
        )


def prepare(cfg: DictConfig, run_dir: str | Path) -> dict[str, Any] | None:
    """Open ``run_dir`` for a run of ``cfg``: return the checkpoint state to resume from, or None for a fresh start
    (after moving earlier output aside under ``train.overwrite=true``). Raises :class:`RunDirError` otherwise.

    ``train.overwrite`` never discards a resumable checkpoint: a Slurm requeue repeats the command line, and must
    resume, not restart."""
    run_dir = Path(run_dir)
    overwrite = bool(cfg.train.overwrite)
    try:
        state = ckpt.load(run_dir / CHECKPOINT_DIR)
    except ckpt.CheckpointError as e:
        if not overwrite:
            raise RunDirError(
                f"{e}\nRerun with train.overwrite=true to move this run dir's content aside and start over, "
                "or use a new run dir"
            ) from None
        state = None
    if state is not None:
        if overwrite:
            print(
                f"repdyn: train.overwrite=true has no effect: {run_dir} holds a checkpoint, so the run resumes "
                "(use a new run dir to start over)",
                file=sys.stderr,
            )
        check_history_reaches(run_dir / HISTORY_FILE, checkpoint_history_step(state))
        return state
    earlier = earlier_output(run_dir)
    if earlier and not overwrite:
        raise RunDirError(
            f"{run_dir} holds output of an earlier run ({_shown(earlier)}) but no checkpoint to resume from; "
            "rerun with train.overwrite=true to move it into previous_<time>/ there and start fresh, "
            "or use a new run dir"
        )
    if earlier:
        dest = move_aside(run_dir, earlier)
        earlier_hydra = _hydra_before.pop(run_dir.resolve(), None)
        if earlier_hydra is not None:
            _write_tree(dest / HYDRA_DIR, earlier_hydra)
            earlier = [*earlier, HYDRA_DIR]
        print(f"repdyn: train.overwrite=true: moved {_shown(earlier)} of an earlier run to {dest}", file=sys.stderr)
    return None
