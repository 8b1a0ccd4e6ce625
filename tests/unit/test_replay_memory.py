"""DQN replay storage (src/repdyn/agents/replay_memory.py): the size check against RAM / Slurm allocation / disk,
and the memmap storage holding exactly what was inserted."""

from __future__ import annotations

import pytest
import torch

from repdyn.agents.replay_memory import available_ram_bytes, check_replay_fits, transition_bytes
from repdyn.config import ConfigError
from tests.unit.test_dqn import _transitions, make_agent  # noqa: F401  (fixture)

ATARI_OBS = (4, 84, 84)


def test_transition_bytes_counts_both_observations():
    assert transition_bytes(ATARI_OBS, 1) == 2 * 4 * 84 * 84 + 32  # 56,480 B: 1M transitions ≈ 56 GB
    assert transition_bytes((6,), 4) == 2 * 6 * 4 + 32
    assert transition_bytes(ATARI_OBS, 1, next_last_frame=True) == 5 * 84 * 84 + 32  # 35,312 B: 1M ≈ 35 GB


def test_available_ram_is_capped_by_the_slurm_allocation(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 25000000 kB\nMemAvailable: 20000000 kB\n")
    assert available_ram_bytes({}, str(meminfo)) == 20_000_000 * 1024
    assert available_ram_bytes({"SLURM_MEM_PER_NODE": "4096"}, str(meminfo)) == 4096 * 2**20
    slurm_cpu = {"SLURM_MEM_PER_CPU": "1000", "SLURM_CPUS_ON_NODE": "2"}
    assert available_ram_bytes(slurm_cpu, str(meminfo)) == 2000 * 2**20
    assert available_ram_bytes({}, str(tmp_path / "missing")) is None


def test_check_replay_fits(tmp_path):
    per = transition_bytes(ATARI_OBS, 1)
    check_replay_fits(1000, per, "memory", tmp_path, ram=10**9)  # 56 MB in 1 GB: fine
    with pytest.raises(ConfigError, match=r"agent.buffer_size=1000000 needs 56.5 GB of RAM .* 24.0 GB is available"):
        check_replay_fits(1_000_000, per, "memory", tmp_path, ram=24 * 10**9)
    with pytest.raises(ConfigError, match="GB of disk for the memmap replay"):
        check_replay_fits(10**12, per, "memmap", tmp_path / "not" / "yet")  # 56 EB: no disk has it


def test_memmap_replay_lives_on_disk_and_returns_what_was_stored(make_agent, tmp_path):  # noqa: F811
    replay_dir = tmp_path / "replay"
    agent = make_agent("agent.replay_storage=memmap", f"agent.replay_dir={replay_dir}")
    batch = _transitions(12)
    agent.process_batch(batch)
    files = list(replay_dir.rglob("*.memmap"))
    assert files and all(f.stat().st_size > 0 for f in files)
    stored = agent.buffer.storage.get(torch.arange(12))
    torch.testing.assert_close(stored["observation"], batch["observation"])
    torch.testing.assert_close(stored["next", "reward"], batch["next", "reward"])
    assert agent.buffer.sample().shape == (agent.acfg.minibatch_size,)


def test_last_frame_replay_rebuilds_every_next_stack_of_a_real_ale_rollout(compose):
    """agent.replay_next_obs=last_frame (dqn_atari's default) on real ALE transitions across episode ends (frame cap
    300 → 100-step episodes): the replay stores one next frame and gives back exactly the collected next stacks."""
    from repdyn.agents import build_agent
    from repdyn.envs.make import make_env

    cfg = compose(
        ["agent=dqn_atari", "env=atari/phoenix", "env.num_envs=2", "agent.buffer_size=1000",
         "env.atari.max_num_frames_per_episode=300"]
    )  # fmt: skip
    env = make_env(cfg.env, 0)
    agent = build_agent(cfg, env)
    assert agent.next_last_frame
    batch = env.rollout(250, break_when_any_done=False)
    assert batch["next", "done"].sum() >= 4
    agent.process_batch(batch)
    stored = agent.buffer.storage.get(torch.arange(500))
    assert stored["next", "observation"].shape == (500, 1, 84, 84)  # one frame, not four
    rebuilt = agent._with_next_obs(stored)
    flat = batch.reshape(-1)
    assert torch.equal(rebuilt["next", "observation"], flat["next", "observation"])
    assert torch.equal(rebuilt["observation"], flat["observation"])
    assert agent._with_next_obs(agent.buffer.sample())["next", "observation"].shape[1:] == (4, 84, 84)
    broken = batch[:, :3].clone()
    broken["next", "observation"][0, 1, 0] += 1  # a next stack whose older frames are not the observation's
    with pytest.raises(RuntimeError, match="not the shifted frame stack"):
        agent.process_batch(broken)
    env.close()


def test_keywise_storage_holds_what_torchrl_storage_holds():
    """The key-by-key write gives the parent's rows, length, cursor and state dict, through the FIFO writer's wrap-
    around; a batch with another key set takes the parent's path."""
    from torchrl.data import LazyTensorStorage, ReplayBuffer

    from repdyn.agents.replay_memory import KeywiseTensorStorage

    ours, ref = ReplayBuffer(storage=KeywiseTensorStorage(10)), ReplayBuffer(storage=LazyTensorStorage(10))
    for i in range(7):  # 28 transitions into 10 slots: wraps around twice
        td = _transitions(4, seed=i, reward=None)
        ours.extend(td.clone())
        ref.extend(td.clone())
        assert len(ours) == len(ref)
    assert ours.writer._cursor == ref.writer._cursor == 8
    rows = torch.arange(10)
    a, b = ours.storage.get(rows), ref.storage.get(rows)
    for key in b.keys(True, True):
        assert torch.equal(a[key], b[key]), key
    state = ours.state_dict()
    fresh = ReplayBuffer(storage=KeywiseTensorStorage(10))
    fresh.load_state_dict(state)
    assert torch.equal(fresh.storage.get(rows)["observation"], b["observation"])
    extra = _transitions(2, seed=9, reward=None)
    extra["other"] = torch.ones(2, 3)
    for buf in (ours, ref):
        buf.extend(extra.clone())
    a, b = ours.storage.get(rows), ref.storage.get(rows)
    assert set(a.keys(True, True)) == set(b.keys(True, True))
    for key in b.keys(True, True):
        assert torch.equal(a[key], b[key]), key
