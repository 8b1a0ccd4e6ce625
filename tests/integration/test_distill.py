"""``python -m repdyn.distill`` end to end on tiny CartPole teachers (Lyle et al. 2022b §6): every objective runs from
one command, invalid (objective, teacher) pairs are refused with exit 2 before anything is written, and a run stopped
by SIGTERM resumes to exactly the uninterrupted history."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from repdyn import checkpoint as ckpt
from repdyn.paths import CHECKPOINT_DIR
from tests.conftest import history, run_cli, strip_perf, summary

TEACHER_COMMON = ["env=classic/cartpole", "model.hidden=[32,32]", "logger=none", "metrics=none", "env.num_envs=1"]
DQN_TEACHER = [*TEACHER_COMMON, "agent=dqn", "model.activation=relu", "env.frames_per_env=8", "train.total_frames=480"]
DQN_TEACHER += ["agent.learning_starts=64", "agent.minibatch_size=16", "agent.replay_ratio=0.25"]
PPO_TEACHER = [*TEACHER_COMMON, "agent=ppo", "env.frames_per_env=256", "train.total_frames=256", "agent.epochs=1"]
TINY = ["logger=none", "distill.progress=false", "distill.steps=200", "distill.collect_frames=256"]
TINY += ["distill.minibatch_size=32", "distill.eval_episodes=2", "distill.eval_max_steps=60", "distill.eval_every=1.0"]
TINY += ["probes.states=32", "probes.update_rank_k=8", "probes.update_rank_probe=8"]


def distill_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_SILENT": "true", "HYDRA_FULL_ERROR": "0"}
    cmd = [sys.executable, "-m", "repdyn.distill", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def teachers(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("teachers")
    out = {}
    for name, args in (("dqn", DQN_TEACHER), ("ppo", PPO_TEACHER)):
        proc = run_cli(*args, f"hydra.run.dir={root / name}")
        assert proc.returncode == 0, proc.stderr[-3000:]
        out[name] = root / name
    return out


CASES = [
    ("dqn", "q_regression"),
    ("dqn", "qa_regression"),
    ("dqn", "adv_regression"),
    ("dqn", "double_q"),
    ("dqn", "behaviour_cloning"),
    ("ppo", "policy_kl"),
    ("ppo", "behaviour_cloning"),
]


@pytest.mark.parametrize(("teacher", "objective"), CASES, ids=[f"{t}-{o}" for t, o in CASES])
def test_every_objective_runs(tmp_path, teachers, teacher, objective) -> None:
    run_dir = tmp_path / "run"
    extra = ["+env.variations.long_pole.length=1.0"] if objective == "q_regression" else []
    proc = distill_cli(
        *TINY, *extra, f"teacher={teachers[teacher]}", f"objective={objective}", f"hydra.run.dir={run_dir}"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    recs = history(run_dir)
    assert [r["step"] for r in recs] == list(range(0, 201, 10))
    first, last = recs[0], recs[-1]
    for key in ("eval/teacher/return", "eval/student/return", "update_rank/student/rank", "ranks/student/srank"):
        assert key in first and key in last, key
    for who in ("teacher", "student"):
        assert last[f"robustness/{who}/perturb_agree/noise_0"] == 1.0
        assert 0.0 <= last[f"robustness/{who}/perturb_agree/noise_0.5"] <= 1.0
        assert 0.0 <= last[f"robustness/{who}/interp_consistent/t_0.5"] <= 1.0
    losses = [r["distill/loss"] for r in recs[1:]]
    if objective not in ("double_q", "policy_kl"):  # bootstrapped targets move; the KL of a near-uniform teacher is ~0
        assert losses[-1] < losses[0], losses
    if objective == "q_regression":
        assert last["distill/agreement"] > first["distill/agreement"]
        assert "eval/student/long_pole/return" in last and "eval/student/generalization_gap" in last
    assert summary(run_dir)["status"] == "completed"
    for name in ("config.yaml", ".hydra/overrides.yaml", "history.jsonl", "checkpoints/last.pt"):
        assert (run_dir / name).is_file(), name  # the run dir layout of repdyn.train


REFUSED = [
    ("dqn", "policy_kl", "objective"),
    ("ppo", "q_regression", "objective"),
    ("ppo", "double_q", "objective"),
    (None, "q_regression", "teacher"),
    ("dqn", "q_regression model=cnn", "model"),  # a CNN student for a vector-observation teacher
    ("dqn", "q_regression distill.lr=-1", "distill.lr"),
]


@pytest.mark.parametrize(("teacher", "objective", "key"), REFUSED, ids=[f"{t}-{o}" for t, o, _ in REFUSED])
def test_invalid_pairs_are_refused_before_anything_is_written(tmp_path, teachers, teacher, objective, key) -> None:
    run_dir = tmp_path / "run"
    path = teachers[teacher] if teacher else tmp_path / "no_such_run"
    objective, *extra = objective.split()
    proc = distill_cli(*TINY, *extra, f"teacher={path}", f"objective={objective}", f"hydra.run.dir={run_dir}")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"config error: {key}:" in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert not run_dir.exists()


LONG = [*TINY, "distill.steps=1000", "distill.log_every=0.02", "distill.checkpoint_every=0.1"]
LONG += ["distill.eval_every=0.5", "probes.update_rank=false", "distill.online=true"]


def test_sigterm_then_resume_gives_the_uninterrupted_history(tmp_path, teachers) -> None:
    args = [*LONG, f"teacher={teachers['dqn']}", "objective=double_q"]
    full = tmp_path / "full"
    assert distill_cli(*args, f"hydra.run.dir={full}").returncode == 0
    run_dir = tmp_path / "stopped"
    cmd = [sys.executable, "-m", "repdyn.distill", *args, f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while not (run_dir / CHECKPOINT_DIR / ckpt.step_file(100)).exists():
        assert proc.poll() is None and time.time() < deadline, proc.communicate()[0][-3000:]
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 128 + signal.SIGTERM, output[-3000:]
    stopped = summary(run_dir)
    assert stopped["status"] == "interrupted" and 100 <= stopped["steps"] < 1000, stopped
    resumed = distill_cli(*args, f"hydra.run.dir={run_dir}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert strip_perf(history(run_dir)) == strip_perf(history(full))
    again = distill_cli(*args, f"hydra.run.dir={run_dir}")  # a finished run: nothing left to do, nothing rewritten
    assert again.returncode == 0, again.stderr[-3000:]
    assert strip_perf(history(run_dir)) == strip_perf(history(full))
