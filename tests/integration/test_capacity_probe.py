"""Capacity loss inside training at its cadence, and offline over the run's checkpoints (issue 3; see docs)."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

from repdyn.metrics.capacity_probe import CapacityProbe, FitOptimizer, probe_run_dir
from tests.conftest import history, run_cli


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("cap") / "run"
    proc = run_cli(
        "env=classic/cartpole",
        "logger=none",
        "train.total_frames=3072",
        "agent.epochs=2",
        "train.log_every=0.3",
        "metrics.capacity_every=0.5",
        "metrics.every=0.3",
        f"hydra.run.dir={d}",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return d


def test_capacity_logged_at_step0_and_its_cadence(run_dir):
    recs = history(run_dir)
    cap_steps = [r["step"] for r in recs if "capacity/actor/loss" in r]
    assert cap_steps == [0, 1536, 3072]
    assert [r["step"] for r in recs] == [0, 512, 1024, 1536, 2048, 3072]  # union of both cadences
    first = recs[0]
    # at step 0 the checkpoint is a fresh init like the target: fitting it is easy, the loss is small and finite
    assert 0 <= first["capacity/actor/loss"] < 1e-3 and 0 <= first["capacity/critic/loss"] < 1
    assert all(math.isfinite(r["capacity/critic/loss"]) for r in recs if "capacity/critic/loss" in r)
    assert (run_dir / "capacity_target.pt").exists()


def test_offline_probe_reproduces_training_values_and_merges(run_dir):
    before = {r["step"]: r for r in history(run_dir)}
    results = probe_run_dir(run_dir)
    assert sorted(results) == [0, 512, 1024, 1536, 2048, 2560, 3072]  # every step_*.pt checkpoint
    for step in (0, 1536, 3072):
        for key in ("capacity/actor/loss", "capacity/critic/loss"):
            assert results[step][key] == pytest.approx(before[step][key], rel=1e-5)
    after = history(run_dir)
    assert [r["step"] for r in after] == [0, 512, 1024, 1536, 2048, 2560, 3072]
    merged = {r["step"]: r for r in after}
    assert merged[1024]["loss/policy"] == before[1024]["loss/policy"]  # existing keys kept
    assert merged[1024]["capacity/actor/loss"] == pytest.approx(results[1024]["capacity/actor/loss"])


def test_module_entry_point_runs_the_offline_probe(tmp_path):
    """``python -m repdyn.capacity`` stays the command line of the probe that lives in repdyn.metrics.capacity_probe."""
    cmd = [sys.executable, "-m", "repdyn.capacity", f"run_dir={tmp_path}"]
    empty = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert empty.returncode == 1 and f"repdyn.capacity: {tmp_path} is not a repdyn run dir" in empty.stderr


def test_probe_reads_its_sections_and_explicit_values_only(compose, tmp_path):
    """The probe takes the ``metrics`` and ``env`` sections (here the schema dataclasses, no run config around them)
    and explicit values; :meth:`CapacityProbe.of_run` maps a run config to the same probe."""
    from repdyn.agents import build_agent
    from repdyn.envs.make import make_env
    from repdyn.metrics.config import MetricsConfig

    cfg = compose(["env=classic/cartpole", "logger=none", "metrics.capacity_samples=64", "metrics.capacity_epochs=1"])
    env = make_env(cfg.env, 0)
    agent = build_agent(cfg, env)
    explicit = CapacityProbe(
        MetricsConfig(capacity_samples=64, capacity_epochs=1),
        cfg.env,
        tmp_path,
        env,
        seed=0,
        optimizer=FitOptimizer.of(cfg.agent),
        build_target=lambda: build_agent(cfg, env),
    )
    (tmp_path / "of_run").mkdir()
    of_run = CapacityProbe.of_run(cfg, tmp_path / "of_run", env)
    assert (explicit.samples, explicit.epochs, explicit.optimizer) == (
        64,
        1,
        FitOptimizer(64, 3e-4, (0.9, 0.999), 1e-5, 0.5),
    )
    assert torch.equal(explicit.obs, of_run.obs)
    assert explicit.probe(agent, 512) == of_run.probe(agent, 512)
    env.close()
