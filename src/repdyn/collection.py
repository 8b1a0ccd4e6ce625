"""The torchrl ``Collector`` every loop and benchmark uses, built one way."""

from __future__ import annotations

from typing import Any

from torchrl.collectors import Collector


def make_collector(env: Any, policy: Any, frames_per_batch: int, total_frames: int = -1) -> Collector:
    """A single-process ``Collector`` of ``frames_per_batch`` env steps per batch (``total_frames=-1``: endless).

    Devices are named (all CPU): left unset, the Collector casts its carrier tensordict to the env's device at every
    step — measured with ``python -m repdyn.bench ppo`` on Hopper (2 envs × 1024): 4.2 s per batch unset vs 2.3-2.9 s
    with the devices named. ``auto_register_policy_transforms=False``: the policy needs no env transforms."""
    return Collector(
        env,
        policy,
        frames_per_batch=frames_per_batch,
        total_frames=total_frames,
        device="cpu",
        auto_register_policy_transforms=False,
    )
