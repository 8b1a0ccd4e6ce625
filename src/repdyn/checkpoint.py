"""Save/restore everything a resume needs, so a resumed run continues bit-for-bit (CPU).

Contents: agent networks and optimizers, intervention states, loop counters, torch/numpy/python RNG states, env
transform buffers (obs-norm stats), the simulator state of every sub-env (:mod:`repdyn.envs.state`), the collector's
carried tensordict (current observation and episode accumulators), the last history step and the W&B run id.

``last.pt`` is the state to resume from; ``step_<n>.pt`` (kept every ``train.checkpoint_every``) holds the same full
state, so the offline capacity probe can read its networks and a resume can fall back to it when ``last.pt`` is
damaged. Every file is written atomically (temp file, fsync, rename, fsync of the folder): a kill or a crash during a
save leaves the previous file, never a partial one.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

LAST = "last.pt"
STEP_GLOB = "step_*.pt"
# Marks a file as a full resume state. Step files written before they held full states lack it (networks only).
FORMAT_KEY = "_repdyn_checkpoint"
FULL_STATE = "resume-v1"

log = logging.getLogger("repdyn.checkpoint")


class CheckpointError(ValueError):
    """``last.pt`` exists but neither it nor any step file can be resumed from (the message names the files)."""


def rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def step_file(step: int) -> str:
    return f"step_{step:012d}.pt"


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable: without it a power loss can bring back the old directory entry."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories; the rename itself is still atomic
    finally:
        os.close(fd)


def _atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temp file beside ``path``, fsync, then rename over it: readers see old or new, whole."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        torch.save(obj, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def save(ckpt_dir: str | os.PathLike, state: dict[str, Any], *, keep_step: int | None = None) -> Path:
    """Write ``last.pt`` (and ``step_<n>.pt`` when ``keep_step`` is given: the same full state, for offline capacity
    probes and as a fallback when ``last.pt`` is damaged)."""
    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    full = {**state, FORMAT_KEY: FULL_STATE}
    _atomic_save(full, ckpt_dir / LAST)
    if keep_step is not None:
        _atomic_save(full, ckpt_dir / step_file(keep_step))
    return ckpt_dir / LAST


def _read(path: Path, *, need_full: bool) -> tuple[dict[str, Any] | None, str]:
    """(state, "") or (None, why it cannot be resumed from); never raises, so one bad file cannot hide the others."""
    try:
        state = torch.load(path, weights_only=False)
    except Exception as e:  # torch raises RuntimeError, EOFError, UnpicklingError, ... for a damaged file
        first = (str(e).splitlines() or [""])[0].split(". ")[0][:160]  # torch appends paragraphs of advice
        return None, f"unreadable ({type(e).__name__}{': ' + first if first else ''})"
    if not isinstance(state, dict):
        return None, f"holds a {type(state).__name__}, not a checkpoint"
    if need_full and state.get(FORMAT_KEY) != FULL_STATE:
        return None, "holds networks only (written before step files were full resume states)"
    return state, ""


def _newest_step_files(ckpt_dir: Path) -> Iterator[Path]:
    yield from sorted(ckpt_dir.glob(STEP_GLOB), reverse=True)  # zero-padded steps: name order is step order


def load(ckpt_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The state to resume from, or None when there is no ``last.pt``.

    A damaged ``last.pt`` (truncated copy, full disk, a save from before saves were atomic) falls back to the newest
    ``step_<n>.pt`` holding a full state, with a warning: training since that step is redone. When none does, raise
    :class:`CheckpointError` naming every file tried, instead of a torch traceback."""
    ckpt_dir = Path(ckpt_dir)
    last = ckpt_dir / LAST
    if not last.exists():
        return None
    state, why = _read(last, need_full=False)
    if state is not None:
        return state
    tried = [f"{last}: {why}"]
    for path in _newest_step_files(ckpt_dir):
        state, why_step = _read(path, need_full=True)
        if state is not None:
            log.warning(
                "%s cannot be resumed from; resuming from %s instead (training after it is redone). Skipped:\n  %s",
                last,
                path,
                "\n  ".join(tried),
            )
            return state
        tried.append(f"{path.name}: {why_step}")
    raise CheckpointError(f"no checkpoint to resume from in {ckpt_dir}:\n  " + "\n  ".join(tried))
