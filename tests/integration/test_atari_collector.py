"""A few hundred random steps of the ALE env through ``torchrl.collectors.Collector`` (issue 4).

The point is the autoreset contract: every transition torchrl records must belong to one episode. With frame stacking
this is checkable without the emulator: the next stack of a transition is its current stack shifted by one frame
(also on terminal transitions, whose next obs must be the final one), the root obs after a non-terminal transition is
that transition's next obs, and the root obs after a terminal one is a fresh stack (older slots zero).
"""

from __future__ import annotations

import torch
from omegaconf import OmegaConf
from torchrl.collectors import Collector
from torchrl.envs.utils import RandomPolicy

from repdyn.envs.atari import make_atari_env
from repdyn.paths import CONF_DIR
from tests.atari_envs import make_atari_env_from_config

STEPS_PER_BATCH, BATCHES = 128, 3


def collect(env) -> torch.Tensor:
    collector = Collector(
        env,
        RandomPolicy(env.action_spec),
        frames_per_batch=env.batch_size[0] * STEPS_PER_BATCH,
        total_frames=env.batch_size[0] * STEPS_PER_BATCH * BATCHES,
    )
    batches = [batch.clone() for batch in collector]
    collector.shutdown()
    env.close()
    data = torch.cat(batches, dim=-1)  # [num_envs, time]: batches continue each other
    assert data.batch_size == (8, STEPS_PER_BATCH * BATCHES)
    return data


def episode_lengths(done: torch.Tensor) -> list[int]:
    """Lengths of the episodes completed in each row of a [envs, time] done mask (collection starts at a reset)."""
    lengths = []
    for row in done:
        ends = row.nonzero().flatten().tolist()
        starts = [-1, *ends][: len(ends)]
        lengths += [b - a for a, b in zip(starts, ends, strict=True)]
    return lengths


def check_transitions(data) -> None:
    obs, nxt = data["observation"], data["next", "observation"]
    assert obs.dtype == torch.uint8 and obs.shape == (8, STEPS_PER_BATCH * BATCHES, 4, 84, 84)
    done = data["next", "done"][..., 0]
    terminated, truncated = data["next", "terminated"][..., 0], data["next", "truncated"][..., 0]
    assert torch.equal(done, terminated | truncated) and not (terminated & truncated).any()
    assert torch.equal(data["next", "reward"], torch.sign(data["next", "reward_raw"]))
    # Stack shift holds on every transition, terminal ones included (next obs is the final frame stack there).
    assert torch.equal(nxt[:, :, :3], obs[:, :, 1:])
    cont = ~done[:, :-1]
    assert torch.equal(obs[:, 1:][cont], nxt[:, :-1][cont])
    after_end = obs[:, 1:][done[:, :-1]]
    assert (after_end[:, :3] == 0).all()  # a new episode's stack
    assert (data["next", "episode_frame_number"][:, 1:][done[:, :-1]] == 3).all()  # its first step: 3 frames
    first = data["observation"][:, 0]
    assert (first[:, :3] == 0).all()  # the collector starts from a full reset


def test_collector_random_policy_game_over_terminations() -> None:
    """Breakout (v5 settings) ends under random play within a few hundred steps: real game-over terminations."""
    data = collect(make_atari_env("ALE/Breakout-v5", 8, 0))
    check_transitions(data)
    terminated = data["next", "terminated"][..., 0]
    assert terminated.sum() >= 4 and not data["next", "truncated"].any()
    assert min(episode_lengths(terminated)) > 30


def test_collector_preset_with_frame_cap_truncates_exactly() -> None:
    """The Qbert preset with a 300-frame cap: every capped episode is exactly 100 agent steps long."""
    cfg = OmegaConf.load(CONF_DIR / "env" / "atari" / "qbert.yaml")
    cfg.atari.max_num_frames_per_episode = 300  # 100 agent steps at frameskip 3
    data = collect(make_atari_env_from_config(cfg, seed=1))
    check_transitions(data)
    done = data["next", "done"][..., 0]
    truncated_rows = data["next", "truncated"][..., 0].sum(-1)
    assert (truncated_rows >= 1).all()
    lengths = episode_lengths(done)
    truncated_lengths = [n for n, t in zip(lengths, _ends(data, "truncated"), strict=True) if t]
    assert truncated_lengths and all(n == 100 for n in truncated_lengths)
    assert all(n <= 100 for n in lengths)


def _ends(data, key: str) -> list[bool]:
    """For every completed episode (same order as ``episode_lengths``), whether it ended with ``key``."""
    done, flag = data["next", "done"][..., 0], data["next", key][..., 0]
    return [bool(flag[i, t]) for i in range(done.shape[0]) for t in done[i].nonzero().flatten().tolist()]
