"""End-to-end DQN runs through the real CLI on Acrobot (issue 4 "must show"): complete histories with Q-network
metrics (ranks, eNTK on replay samples, update rank), ICM β = 0 ≡ no ICM and β > 0 changes training, and the
NTK-eviction buffer stays at its capacity."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import history, run_cli, strip_perf, summary

TINY = [
    "env=classic/acrobot",
    "agent=dqn",
    "model=mlp",
    "model.activation=relu",
    "logger=none",
    "env.num_envs=1",
    "env.frames_per_env=8",
    "train.total_frames=640",
    "train.log_every=0.25",
    "metrics.every=0.25",
    "metrics.capacity=false",
    "agent.learning_starts=64",
    "agent.minibatch_size=16",
    "agent.replay_ratio=0.25",
]
FULL_METRICS = ["metrics.ntk=true", "metrics.ntk_every=0.5", "metrics.ntk_samples=64"]
FULL_METRICS += ["metrics.update_rank=true", "metrics.update_rank_every=0.5"]
FULL_METRICS += ["metrics.update_rank_k=16", "metrics.update_rank_probe=16"]

EXPECTED_KEYS = {
    "loss/td",
    "opt/qnet/grad_norm",
    "opt/qnet/lr",
    "dqn/epsilon",
    "dqn/gradient_steps",
    "dqn/replay_size",
    "env/return",
    "env/length",
    "perf/sps",
    "batch_start/qnet/approx_rank",
    "batch_start/qnet/dead_units",
    "batch_start/qnet/value_mean",
    "batch_end/qnet/effective_rank",
    "batch_diff/qnet/feature_drift_l2",
    "ntk/qnet/trace",
    "ntk/qnet/entropy",
    "ntk/qnet/kernel_alignment",
    "update_rank/qnet/rank",
}


def _run(tmp_path, name: str, *extra: str):
    d = tmp_path / name
    proc = run_cli(*TINY, *extra, f"hydra.run.dir={d}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return d


ICM4_EVICT = [*FULL_METRICS, "intervention=[icm,ntk_eviction]", "intervention.icm.beta=4"]
ICM4_EVICT += ["intervention.ntk_eviction.capacity=200", "train.checkpoint_every=0.2"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dqn")
    return {
        "plain": _run(tmp, "plain", *FULL_METRICS),
        "icm0": _run(tmp, "icm0", *FULL_METRICS, "intervention=[icm]", "intervention.icm.beta=0"),
        "icm4": _run(tmp, "icm4", *ICM4_EVICT),
        "memmap": _run(tmp, "memmap", *FULL_METRICS, "agent.replay_storage=memmap"),
    }


def test_tiny_dqn_run_writes_a_complete_history(runs):
    d = runs["plain"]
    recs = history(d)
    assert [r["step"] for r in recs] == [8, 160, 320, 480, 640]
    last = recs[-1]
    episode_keys = {"env/return", "env/length"}  # only in records after an episode ended
    assert EXPECTED_KEYS - episode_keys <= set(last), EXPECTED_KEYS - episode_keys - set(last)
    assert episode_keys <= set().union(*recs)
    for r in recs:
        for k, v in r.items():
            assert isinstance(v, (int, float)) and math.isfinite(v), (k, v)
    # one gradient step per 4 env steps from the batch whose insertion brings the replay to 64 (steps 57-64) on
    assert last["dqn/gradient_steps"] == (640 - 56) / 4
    assert last["dqn/replay_size"] == 640
    for r in recs:  # Acrobot pays -1 per step except 0 on the success step; unsolved episodes end at 500 steps
        if "env/return" in r:
            solved = r["env/return"] == -(r["env/length"] - 1) and r["env/length"] < 500
            assert solved or (r["env/return"] == -500.0 and r["env/length"] == 500), r
    assert last["ntk/qnet/trace"] > 0 and 0 < last["ntk/qnet/entropy"] <= math.log(64)
    assert 1 <= last["update_rank/qnet/rank"] <= 16
    assert 0 <= last["batch_start/qnet/dead_units_frac"] <= 1
    s = summary(d)
    assert s["status"] == "completed" and s["env_steps"] == 640
    assert (d / "checkpoints" / "last.pt").exists() and (d / "config.yaml").exists()


def test_memmap_replay_reproduces_the_in_memory_run(runs):
    """agent.replay_storage=memmap keeps the replay on disk under <run dir>/replay; same samples, same run."""
    assert strip_perf(history(runs["memmap"])) == strip_perf(history(runs["plain"]))
    files = list((runs["memmap"] / "replay").rglob("*.memmap"))
    assert files and sum(f.stat().st_size for f in files) >= 640 * 2 * 6 * 4  # 640 transitions, obs + next obs


def test_icm_beta_zero_reproduces_the_plain_run_and_beta_four_changes_it(runs):
    plain = strip_perf(history(runs["plain"]))
    icm0 = [{k: v for k, v in r.items() if not k.startswith("icm/")} for r in strip_perf(history(runs["icm0"]))]
    assert icm0 == plain  # same rewards, TD losses, NTK, ... : β = 0 is a no-op, and ICM never touches the run's RNG
    icm4 = strip_perf(history(runs["icm4"]))
    assert any("icm/intrinsic_reward" in r for r in history(runs["icm0"]))
    last4 = icm4[-1]
    assert last4["icm/intrinsic_reward"] > 0 and last4["icm/intrinsic_return"] > 0
    # env/return stays extrinsic: Acrobot's -1 per step (0 on success), no intrinsic bonus in it
    episodes = [r for r in icm4 if "env/return" in r]
    assert episodes and all(r["env/return"] in (-(r["env/length"] - 1), -500.0) for r in episodes)
    assert last4["loss/td"] != plain[-1]["loss/td"]  # the TD targets saw the bonus


def test_ntk_eviction_run_keeps_the_buffer_at_capacity(runs):
    recs = history(runs["icm4"])
    sizes = [r["dqn/replay_size"] for r in recs if "dqn/replay_size" in r]
    assert max(sizes) == 200 and sizes[-1] == 200
    last = recs[-1]
    assert last["ntk_eviction/evicted"] == 8  # one eviction per env step of the 8-step batch
    assert last["ntk_eviction/evicted_k_mean"] <= last["ntk_eviction/buffer_k_mean"]


def test_sigterm_then_restart_resumes_exactly(runs, tmp_path):
    """Interrupt a run (DQN + ICM + NTK eviction) with SIGTERM mid-way, restart it in the same dir: the history
    equals the uninterrupted run's (replay, target network, ε, ICM and eviction state all restored)."""
    d = tmp_path / "resumed"
    env = {**os.environ, "WANDB_SILENT": "true"}
    cmd = [sys.executable, "-m", "repdyn.train", "train.progress=false", *TINY, *ICM4_EVICT, f"hydra.run.dir={d}"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    hist = d / "history.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if hist.exists() and len(hist.read_text().splitlines()) >= 3:  # past step 320 of 640
            proc.send_signal(signal.SIGTERM)
            break
        time.sleep(0.2)
    proc.wait(timeout=300)
    assert summary(d)["status"] == "interrupted", "the run ended before the signal; make it longer"
    done = run_cli(*TINY, *ICM4_EVICT, f"hydra.run.dir={d}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert strip_perf(history(d)) == strip_perf(history(runs["icm4"]))


def test_tiny_dqn_atari_run_trains_from_the_last_frame_replay(tmp_path):
    """agent=dqn_atari on Phoenix (Nature CNN, replay storing one next frame per transition): TD steps on rebuilt
    next stacks, Q-network metrics on replay states."""
    d = tmp_path / "atari"
    proc = run_cli(
        "agent=dqn_atari", "env=atari/phoenix", "env.num_envs=1", "env.frames_per_env=4", "logger=none",
        "train.total_frames=320", "train.log_every=0.25", "metrics.every=0.25", "metrics.capacity=false",
        "agent.learning_starts=64", "agent.buffer_size=1000", f"hydra.run.dir={d}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = history(d)[-1]
    assert last["step"] == 320 and last["dqn/replay_size"] == 320
    assert last["dqn/gradient_steps"] == (320 - 60) / 4  # from the batch that brings the replay to 64 (steps 61-64)
    assert math.isfinite(last["loss/td"]) and last["loss/td"] >= 0
    assert 1 <= last["batch_start/qnet/feature_rank"] <= 512
