"""Malformed command lines fail before any env is built, with a message naming the problem (issue 2), with exit code 2
and before Hydra creates the run dir (issue "Reliability" item 5)."""

from __future__ import annotations

import pytest

from tests.conftest import run_cli

CASES = [
    (["env=classic/nonexistent"], "env/classic/nonexistent"),  # unknown group option
    (["agent.epocs=3"], "epocs"),  # typo'd key
    (["agent.epochs=abc"], "agent.epochs"),  # wrong type
    (["train.total_frames=-5"], "train.total_frames"),  # negative budget
    (["agent.clip_eps=1.5"], "agent.clip_eps"),
    (["env.id=CartPol-v1"], "CartPole-v1"),  # unknown env id: suggests the close name
    (["model.activation=sigmoid"], "model.activation"),
    (["logger.mode=onlin"], "logger.mode"),
    (["agent.minibatch_size=100000"], "agent.minibatch_size"),
    (["intervention=[nonexistent]"], "intervention/nonexistent"),
    (["seed=-1"], "seed"),
    (["train.log_every=2"], "train.log_every"),
    (["sed=1"], "sed"),  # typo'd top-level key
    (["model=cnn"], "model"),  # a CNN on a vector-observation env
    (["env.num_envs=0"], "env.num_envs"),
    (["agent=dqn", "agent.replay_next_obs=last_frame"], "agent.replay_next_obs"),  # needs frame stacks
    (["seed=abc"], "seed"),  # a Hydra-level type error: exit 2 too, not Hydra's 1
    (["+agent.foo=1"], "agent.foo"),  # an unknown key added with +
    (["agent.lr=inf"], "agent.lr"),
]


@pytest.mark.parametrize(("args", "needle"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_command_line_fails_fast(tmp_path, args, needle):
    run_dir = tmp_path / "run"
    proc = run_cli("env=classic/cartpole", "train.total_frames=512", *args, f"hydra.run.dir={run_dir}", timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert needle in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr  # one clear message, not a stack trace
    assert not run_dir.exists()  # nothing was written: no run dir, no .hydra/, no history, no W&B run


def test_bad_sweep_member_fails_before_the_sweep_dir_exists(tmp_path):
    sweep_dir = tmp_path / "sweep"
    proc = run_cli(
        "-m", "env=classic/cartpole", "logger=none", "agent.lr=1e-3,-1", f"hydra.sweep.dir={sweep_dir}", timeout=120
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "agent.lr: must be > 0, got -1.0 (sweep member #1: " in proc.stderr, proc.stderr[-2000:]
    assert "agent.lr=-1)" in proc.stderr and "Traceback" not in proc.stderr
    assert not sweep_dir.exists()  # not even the first, valid member ran


def test_every_bad_sweep_member_is_listed_in_one_refusal(tmp_path):
    sweep_dir = tmp_path / "sweep"
    proc = run_cli(
        "-m", "env=classic/cartpole", "logger=none", "agent.lr=1e-3,-1", "agent.epochs=1,0",
        f"hydra.sweep.dir={sweep_dir}", timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "3 of 4 sweep members are invalid" in proc.stderr, proc.stderr[-2000:]
    for idx, bad in ((1, "agent.epochs: must be ≥ 1, got 0"), (2, "agent.lr: must be > 0"), (3, "agent.epochs")):
        line = next(x for x in proc.stderr.splitlines() if f"(sweep member #{idx}:" in x)
        assert line.strip().startswith(bad), line
    assert "sweep member #0:" not in proc.stderr  # the valid member is not listed
    assert not sweep_dir.exists()


def test_analyze_help_exits_0():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "repdyn.analyze", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "python -m repdyn.analyze" in proc.stdout


def test_resume_with_a_different_config_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    base = ["env=classic/cartpole", "logger=none", "metrics=none", f"hydra.run.dir={run_dir}"]
    assert run_cli(*base, "train.total_frames=512").returncode == 0
    before = (run_dir / "history.jsonl").read_text()
    hydra_files = {p.name: p.read_text() for p in (run_dir / ".hydra").iterdir()}
    proc = run_cli(*base, "train.total_frames=512", "agent.epochs=3", timeout=120)
    assert proc.returncode == 2
    assert "different config" in proc.stderr and "agent.epochs: 10 -> 3" in proc.stderr
    assert (run_dir / "history.jsonl").read_text() == before  # nothing recorded is lost
    assert {p.name: p.read_text() for p in (run_dir / ".hydra").iterdir()} == hydra_files  # nor Hydra's record
    # the same config (a presentation key aside) resumes: the finished run stays finished, history unchanged
    assert run_cli(*base, "train.total_frames=512", "train.threads=2").returncode == 0
    assert (run_dir / "history.jsonl").read_text() == before


def test_replay_larger_than_memory_fails_before_any_compute(tmp_path):
    """1e8 Atari transitions (35,312 B each with the last-frame next observation, 3.5 TB) cannot fit anywhere: one
    message naming the key and
    the way out, before the first env step, instead of an out-of-memory kill hours into the run."""
    run_dir = tmp_path / "run"
    proc = run_cli(
        "agent=dqn_atari", "env=atari/phoenix", "model=cnn", "env.num_envs=1", "env.frames_per_env=4",
        "train.total_frames=64", "agent.learning_starts=0", "agent.buffer_size=100000000", f"hydra.run.dir={run_dir}",
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "agent.buffer_size=100000000 needs 3531.2 GB of RAM" in proc.stderr, proc.stderr[-2000:]
    assert "agent.replay_storage=memmap" in proc.stderr and "Traceback" not in proc.stderr
    assert not run_dir.exists()  # found while building: the run dir Hydra made for it is removed again
