"""Save/restore everything a resume needs, so a resumed run continues bit-for-bit (CPU).

Contents: agent networks and optimizers, intervention states, loop counters, torch/numpy/python RNG states, env
transform buffers (obs-norm stats), the simulator state of every sub-env (:mod:`repdyn.envs.state`), the collector's
carried tensordict (current observation and episode accumulators), the last history step and the W&B run id.
Writes are atomic (tmp + rename) so a kill during a save keeps the previous checkpoint.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

LAST = "last.pt"


def rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def save(ckpt_dir: str | os.PathLike, state: dict[str, Any], *, keep_step: int | None = None) -> Path:
    """Write ``last.pt`` (and ``step_<n>.pt`` when ``keep_step`` is given, for offline capacity probes)."""
    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    tmp = ckpt_dir / (LAST + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, ckpt_dir / LAST)
    if keep_step is not None:
        models = {k: state[k] for k in ("agent", "counters") if k in state}
        torch.save(models, ckpt_dir / f"step_{keep_step:012d}.pt")
    return ckpt_dir / LAST


def load(ckpt_dir: str | os.PathLike) -> dict[str, Any] | None:
    path = Path(ckpt_dir) / LAST
    if not path.exists():
        return None
    return torch.load(path, weights_only=False)
