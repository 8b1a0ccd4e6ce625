"""The torchrl ``Collector`` every loop and benchmark uses, built one way."""

from __future__ import annotations

from typing import Any

from torchrl.collectors import Collector


def make_collector(env: Any, policy: Any, frames_per_batch: int, total_frames: int = -1) -> Collector:
    """A single-process ``Collector`` of ``frames_per_batch`` env steps per batch (``total_frames=-1``: endless).

    ``auto_register_policy_transforms=False``: the policies need no env transforms. Devices are left to torchrl:
    naming them (``device="cpu"``) measured no different on Hopper (563/659/601 vs 564/855/496 frames/s, A/B)."""
    return Collector(
        env, policy, frames_per_batch=frames_per_batch, total_frames=total_frames, auto_register_policy_transforms=False
    )
