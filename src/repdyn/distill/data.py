"""The teacher's data: transitions collected by the teacher's ε-policy into a torchrl replay buffer the student
samples minibatches from (uniformly), and the fixed batch of teacher states the probes and rank metrics read."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDict
from torchrl.data import LazyTensorStorage, ReplayBuffer
from torchrl.data.replay_buffers.samplers import RandomSampler

from repdyn.lean_collector import LeanCollector

TRANSITION_KEYS = ("observation", "action", ("next", "observation"), ("next", "reward"), ("next", "terminated"))


def make_buffer(capacity: int, minibatch_size: int) -> ReplayBuffer:
    """Uniform replay of ``capacity`` transitions (FIFO once full)."""
    return ReplayBuffer(storage=LazyTensorStorage(capacity), sampler=RandomSampler(), batch_size=minibatch_size)


def collect(collector: LeanCollector, buffer: ReplayBuffer, frames: int) -> dict[str, float]:
    """Run the teacher's policy for at least ``frames`` env steps (whole steps of every env) into ``buffer``; returns
    the mean return of the episodes that ended meanwhile (``data/teacher_return``), if any."""
    # The collector's batch length is set per call: one collector keeps the envs' carried state across the initial
    # fill (thousands of steps) and the online top-ups (a few steps).
    collector.steps = max(1, -(-frames // collector.num_envs))
    batch = collector.rollout().reshape(-1)
    buffer.extend(batch.select(*TRANSITION_KEYS).clone())
    done = batch["next", "done"].squeeze(-1)
    if not done.any():
        return {}
    return {"data/teacher_return": float(batch["next", "episode_reward"][done].mean())}


def minibatch_tensors(batch: TensorDict) -> dict[str, torch.Tensor]:
    """A sampled minibatch as the plain tensors the objectives read."""
    return {
        "observation": batch["observation"],
        "action": batch["action"].reshape(-1),
        "next_observation": batch["next", "observation"],
        "reward": batch["next", "reward"].reshape(-1),
        "terminated": batch["next", "terminated"].reshape(-1),
    }


def probe_states(buffer: ReplayBuffer, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` distinct teacher states drawn uniformly from the buffer (all if fewer): the fixed probe batch."""
    size = len(buffer)
    idx = torch.randperm(size, generator=generator)[: min(n, size)]
    return buffer[idx]["observation"].clone()


def sample_transitions(buffer: ReplayBuffer, k: int, generator: torch.Generator) -> dict[str, Any]:
    """``k`` transitions drawn with ``generator`` (not the global RNG the training minibatches use)."""
    idx = torch.randperm(len(buffer), generator=generator)[: min(k, len(buffer))]
    return minibatch_tensors(buffer[idx])
