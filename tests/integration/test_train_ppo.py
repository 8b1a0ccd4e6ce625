"""End-to-end PPO runs through the real CLI on classic control (issue 2 "must show")."""

from __future__ import annotations

import math

import pytest

from tests.conftest import history, run_cli, strip_perf, summary

BASE = ["env=classic/cartpole", "logger=none"]
TINY = [*BASE, "train.total_frames=3072", "agent.epochs=2", "metrics.capacity_every=0.5", "metrics.every=0.3"]
BATCH = 2 * 256  # env.num_envs × env.frames_per_env of the cartpole preset

EXPECTED_KEYS = {
    "env/return",
    "env/length",
    "loss/policy",
    "loss/value",
    "loss/total",
    "ppo/entropy",
    "ppo/clip_fraction",
    "ppo/approx_kl_k1",
    "ppo/approx_kl_k3",
    "ppo/objective_last",
    "trust_region/n_above",
    "trust_region/n_below",
    "opt/actor/lr",
    "opt/critic/lr",
    "opt/actor/grad_norm",
    "opt/critic/grad_norm",
    "perf/sps",
    "batch_start/actor/approx_rank",
    "batch_end/critic/effective_rank",
    "batch_diff/actor/feature_drift_l2",
    "batch_start/actor/dead_units",
    "batch_end/actor/preact_norm",
    "batch_start/actor/policy_variance",
    "batch_start/critic/value_mean",
}


def _crossings(total: int, batch: int, every: float) -> set[int]:
    """Batch ends at or past each multiple of every×total (the first batch end always qualifies), plus the end."""
    steps, next_at, s = set(), 0.0, 0
    while s < total:
        s += batch
        if s >= next_at or s >= total:
            steps.add(s)
            while next_at <= s:
                next_at += every * total
    return steps


def _expected_log_steps(total: int, batch: int, *fractions: float) -> list[int]:
    """The cadence rule of repdyn.train: a record whenever any schedule is due; capacity also at step 0."""
    return sorted({0}.union(*(_crossings(total, batch, f) for f in fractions)))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("ppo") / "run"
    proc = run_cli(*TINY, "train.log_every=0.3", f"hydra.run.dir={d}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return d, proc


def test_history_has_expected_keys_axis_and_cadence(tiny_run):
    run_dir, proc = tiny_run
    recs = history(run_dir)
    steps = [r["step"] for r in recs]
    assert steps == _expected_log_steps(3072, BATCH, 0.3, 0.3, 0.5) == [0, 512, 1024, 1536, 2048, 3072]
    assert all(b > a for a, b in zip(steps, steps[1:], strict=False))
    assert EXPECTED_KEYS <= set(recs[-1]), EXPECTED_KEYS - set(recs[-1])
    assert set(recs[0]) == {"step", "capacity/actor/loss", "capacity/critic/loss"}
    for r in recs:
        for k, v in r.items():
            assert isinstance(v, (int, float)) and math.isfinite(v), (k, v)
    last = recs[-1]
    assert 0 <= last["ppo/clip_fraction"] <= 1
    assert last["opt/actor/lr"] == pytest.approx(3e-4)
    assert 1 <= last["batch_start/actor/approx_rank"] <= 64
    assert last["env/length"] >= 8  # CartPole episodes last at least 8 steps
    s = summary(run_dir)
    assert s["status"] == "completed" and s["env_steps"] == 3072
    assert s["final"]["ppo/clip_fraction"] == last["ppo/clip_fraction"]
    assert "outputs in" in proc.stdout
    assert (run_dir / "config.yaml").exists() and (run_dir / "checkpoints" / "last.pt").exists()


def test_same_seed_identical_other_seed_differs(tmp_path, tiny_run):
    a = tiny_run[0]
    b, c = tmp_path / "b", tmp_path / "c"
    assert run_cli(*TINY, "train.log_every=0.3", f"hydra.run.dir={b}").returncode == 0
    assert run_cli(*TINY, "train.log_every=0.3", "seed=1", f"hydra.run.dir={c}").returncode == 0
    ha, hb, hc = (strip_perf(history(x)) for x in (a, b, c))
    assert ha == hb
    assert [r.get("loss/value") for r in ha] != [r.get("loss/value") for r in hc]


def test_multirun_2x2_gives_four_run_dirs(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli("-m", *BASE, "train.total_frames=1024", "agent.epochs=1,2", "seed=0,1", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    dirs = sorted(p for p in sweep.iterdir() if p.is_dir() and (p / "history.jsonl").exists())
    assert len(dirs) == 4
    combos = set()
    for d in dirs:
        assert summary(d)["status"] == "completed"
        assert [r["step"] for r in history(d)] == [0, 512, 1024]
        combos.add(tuple(sorted(summary(d)["overrides"])))
    assert len(combos) == 4


def test_planted_nan_diverges_and_sweep_neighbour_completes(tmp_path):
    single = tmp_path / "single"
    proc = run_cli(*TINY, "debug.inject_nan_at_step=2048", f"hydra.run.dir={single}")
    assert proc.returncode == 3, proc.stderr[-2000:]
    s = summary(single)
    assert s["status"] == "diverged" and s["diverged_key"] == "loss/total" and s["diverged_at_step"] == 2048
    assert [r["step"] for r in history(single)] == [0, 512, 1024, 1536]

    sweep = tmp_path / "sweep"
    proc = run_cli(
        "-m", *BASE, "train.total_frames=2048", "debug.inject_nan_at_step=1024,null", f"hydra.sweep.dir={sweep}"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    statuses = sorted(summary(d)["status"] for d in sweep.iterdir() if (d / "summary.json").exists())
    assert statuses == ["completed", "diverged"]


def test_collapse_regime_lr100_runs_to_the_end(tmp_path):
    """agent.lr=100 collapses the policy at once: discrete ratios of exactly 0 below the clip range made
    trust_region/excess_ratio a division by zero (status "failed", empty history). The regime must be measurable."""
    d = tmp_path / "run"
    proc = run_cli(*BASE, "train.total_frames=1024", "agent.lr=100", f"hydra.run.dir={d}")
    s = summary(d)
    assert s["status"] in ("completed", "diverged"), s.get("error")
    assert proc.returncode in (0, 3), proc.stderr[-2000:]
    recs = history(d)
    assert [r["step"] for r in recs][:2] == [0, 512]
    tr = recs[1]
    assert tr["trust_region/ratio_below_mean"] == 0.0 and math.isfinite(tr["trust_region/excess_ratio"])


def test_secrets_never_written(tmp_path):
    d = tmp_path / "run"
    secret = "sk-test-0123456789abcdef"
    proc = run_cli(
        "env=classic/cartpole",
        "train.total_frames=512",
        "logger=wandb",
        "logger.mode=offline",
        f"hydra.run.dir={d}",
        env={"WANDB_API_KEY": secret},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert secret not in proc.stdout + proc.stderr
    files = [p for p in d.rglob("*") if p.is_file()]
    assert any("wandb" in str(p) for p in files)
    for p in files:
        assert secret.encode() not in p.read_bytes(), p


def test_shared_trunk_representation_logged_once_under_trunk(tmp_path):
    d = tmp_path / "run"
    proc = run_cli(
        *BASE, "train.total_frames=1024", "agent.epochs=1", "intervention=[shared_trunk]", f"hydra.run.dir={d}"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    last = history(d)[-1]
    for phase in ("start", "end"):
        assert 1 <= last[f"batch_{phase}/trunk/approx_rank"] <= 64
        assert f"batch_{phase}/actor/approx_rank" not in last and f"batch_{phase}/critic/approx_rank" not in last
        assert last[f"batch_{phase}/actor/policy_variance"] >= 0 and last[f"batch_{phase}/critic/value_std"] >= 0
    assert "batch_diff/trunk/feature_drift_l2" in last and "batch_diff/actor/feature_drift_l2" not in last
