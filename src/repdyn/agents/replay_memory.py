"""Replay storage for DQN: in RAM (torchrl ``LazyTensorStorage``) or memory-mapped on disk (``LazyMemmapStorage``),
with a size check before any compute, and the one adapter that reads a storage's tensors for minibatch sampling
(:func:`storage_tensors`).

Both storages allocate lazily on the first write and fill page by page, so an oversized buffer would only fail hours
into a run (the ALE default of 1M transitions × observation + next observation of 4×84×84 uint8 is ~56 GB). The check
compares the buffer's full size with what the machine (or the Slurm allocation) offers and stops with one message
naming the keys to change.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from tensordict import NestedKey, TensorDict, is_tensor_collection
from torchrl.data import LazyMemmapStorage, LazyTensorStorage
from torchrl.data.replay_buffers.storages import TensorStorage

from repdyn.errors import ConfigError

__all__ = [
    "KeywiseTensorStorage",
    "available_ram_bytes",
    "check_replay_fits",
    "make_storage",
    "storage_tensors",
    "transition_bytes",
]

# Bookkeeping per transition besides the observations: action (int64), reward (float32), done/terminated (bool), and
# the tensordict index; generous, it is noise next to any observation.
_SCALARS_BYTES = 32


def transition_bytes(obs_shape: tuple[int, ...], obs_itemsize: int, next_last_frame: bool = False) -> int:
    """Bytes one stored transition takes: observation + next observation (or only its newest frame, the leading
    dim of a frame stack, with ``next_last_frame``) + scalars."""
    numel = 1
    for d in obs_shape:
        numel *= d
    next_numel = numel // obs_shape[0] if next_last_frame else numel
    return (numel + next_numel) * obs_itemsize + _SCALARS_BYTES


def available_ram_bytes(environ: Mapping[str, str] = os.environ, meminfo: str = "/proc/meminfo") -> int | None:
    """RAM this process may still use: ``MemAvailable`` of the machine, capped by the Slurm job's allocation
    (``SLURM_MEM_PER_NODE``, or ``SLURM_MEM_PER_CPU`` × ``SLURM_CPUS_ON_NODE``, in MB); None when unknown."""
    limits = []
    try:
        for line in Path(meminfo).read_text().splitlines():
            if line.startswith("MemAvailable:"):
                limits.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    if environ.get("SLURM_MEM_PER_NODE", "").isdigit():
        limits.append(int(environ["SLURM_MEM_PER_NODE"]) * 2**20)
    elif environ.get("SLURM_MEM_PER_CPU", "").isdigit() and environ.get("SLURM_CPUS_ON_NODE", "").isdigit():
        limits.append(int(environ["SLURM_MEM_PER_CPU"]) * int(environ["SLURM_CPUS_ON_NODE"]) * 2**20)
    return min(limits) if limits else None


def check_replay_fits(
    capacity: int, per_transition: int, storage: str, replay_dir: Path, ram: int | None = None
) -> None:
    """Raise :class:`ConfigError` when ``capacity`` transitions cannot fit: in RAM for ``storage="memory"``
    (``ram`` defaults to :func:`available_ram_bytes`), on the disk holding ``replay_dir`` for ``"memmap"``."""
    need = capacity * per_transition
    gb = 1e9
    if storage == "memory":
        ram = available_ram_bytes() if ram is None else ram
        if ram is not None and need > ram:
            raise ConfigError(
                f"agent.buffer_size={capacity} needs {need / gb:.1f} GB of RAM for the replay ({per_transition} bytes "
                f"per transition) but {ram / gb:.1f} GB is available; lower agent.buffer_size or use "
                f"agent.replay_storage=memmap (disk-backed, under agent.replay_dir)"
            )
        return
    probe = replay_dir
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if need > free:
        raise ConfigError(
            f"agent.buffer_size={capacity} needs {need / gb:.1f} GB of disk for the memmap replay in {replay_dir} "
            f"but {free / gb:.1f} GB is free; lower agent.buffer_size or point agent.replay_dir at a larger disk"
        )


class KeywiseTensorStorage(LazyTensorStorage):
    """``LazyTensorStorage`` whose writes of a ``TensorDict`` of transitions go key by key into its tensors.

    Why: ``TensorStorage.set`` writes a batch with ``TensorDict.__setitem__`` (index checks and key matching per
    call), ~0.3 ms for DQN's 4-transition batches; one ``tensor[index] = value`` per key writes the same rows in
    ~0.035 ms. ``ReplayBuffer.extend`` of such a batch: 0.54 ms with ``LazyTensorStorage``, 0.23 ms with this
    (``python -m repdyn.bench dqn``, "replay insert"; a DQN batch of 4 env steps costs ~6 ms in all). Everything
    else — the writer's cursor, the length, the first (allocating) write, state dicts, sampling — is the parent's;
    a batch whose keys are not exactly the storage's takes the parent's path too."""

    def set(self, cursor: Any, data: Any, *, set_cursor: bool = True) -> None:
        if not (self.initialized and type(data) is TensorDict and self._storage_keys is None):
            return super().set(cursor, data, set_cursor=set_cursor)
        values = dict(data.items(True, True))
        store = self._storage
        cached = getattr(self, "_leaf_keys", None)
        if cached is None or cached[0] is not store:  # the storage's keys are fixed once it is allocated
            cached = self._leaf_keys = (store, set(store.keys(True, True)))
        if values.keys() != cached[1]:
            return super().set(cursor, data, set_cursor=set_cursor)
        if set_cursor:  # the parent's bookkeeping, in its order
            self._set_last_cursor(cursor)
            self._get_new_len(data, cursor)
        for key, value in values.items():
            store.get(key)[cursor] = value
        self._bump_mutation_revision()


def make_storage(capacity: int, storage: str, replay_dir: Path | None) -> LazyTensorStorage | LazyMemmapStorage:
    """The torchrl storage for ``agent.replay_storage``; memmap files go to ``replay_dir`` (reused on resume: the
    replay of an ALE run is not checkpointed, so a resumed run refills it from empty)."""
    if storage == "memory":
        return KeywiseTensorStorage(capacity)
    if replay_dir is None:
        raise ValueError("agent.replay_storage=memmap needs a replay_dir")
    replay_dir.mkdir(parents=True, exist_ok=True)
    return LazyMemmapStorage(capacity, scratch_dir=str(replay_dir), existsok=True)


def storage_tensors(storage: TensorStorage, keys: Sequence[NestedKey]) -> list[torch.Tensor]:
    """The tensors ``storage`` writes transitions into, one per key, all ``storage.max_size`` rows, as plain
    ``torch.Tensor`` views (no copy): ``tensors[i][idx]`` is ``storage.get(idx)[keys[i]]`` for indices below
    ``len(storage)``; rows from ``len(storage)`` on are not written yet (both writers fill slots 0, 1, … first).

    The only place repdyn reads torchrl private state: ``TensorStorage._storage``, the TensorDict of ``max_size`` rows
    behind ``LazyTensorStorage`` / ``LazyMemmapStorage`` (torchrl 0.14; ``storage.get(idx)`` would build a
    TensorDict per minibatch, which is what DQN's gradient step avoids). Memory-mapped tensors come back as ordinary
    tensor views of the same memory, so indexing skips ``MemoryMappedTensor``'s dispatch. ``load_state_dict`` on an
    uninitialised storage swaps that TensorDict, so call this again after loading (the DQN agent calls it once per
    update)."""
    data = getattr(storage, "_storage", None)
    if not isinstance(storage, TensorStorage) or not is_tensor_collection(data):
        raise TypeError(f"storage_tensors needs an initialised TensorDict-backed TensorStorage, got {type(storage)}")
    return [data.get(k).as_subclass(torch.Tensor) for k in keys]
