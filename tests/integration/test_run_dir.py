"""A run dir never silently mixes two runs, and a damaged one is refused or repaired with one clear message
(issue Reliability 3 and 6)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from repdyn.config import ConfigError
from repdyn.run_dir import KeepEarlierHydraDir
from repdyn.train import run
from tests.conftest import history, run_cli, strip_perf

BATCH = 2 * 64  # env.num_envs × env.frames_per_env: small batches keep every run here well under a second
BASE = [
    "env=classic/cartpole",
    "env.frames_per_env=64",
    "agent.epochs=1",
    "logger=none",
    "metrics=none",
    "train.progress=false",
]
TINY_CAPACITY = ["metrics.capacity=true", "metrics.capacity_every=1", "metrics.capacity_samples=64"]


def _files(run_dir: Path, hydra: bool = False) -> dict[str, bytes]:
    """Every file of a run dir but Hydra's job log (appended to by each invocation) and, unless ``hydra``, ``.hydra/``
    (rewritten by each invocation)."""
    return {
        str(p.relative_to(run_dir)): p.read_bytes()
        for p in sorted(run_dir.rglob("*"))
        if p.is_file() and (hydra or ".hydra" not in p.parts) and p.suffix != ".log"
    }


def test_cli_refuses_a_reused_run_dir_without_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text("- seed=0\n")
    (run_dir / "config.yaml").write_text("seed: 0\n")
    (run_dir / "history.jsonl").write_text('{"step": 512, "env/return": 20.0}\n')
    (run_dir / "capacity_target.pt").write_bytes(b"an earlier run's target")
    before = _files(run_dir, hydra=True)
    proc = run_cli(*BASE, "seed=1", "train.total_frames=512", f"hydra.run.dir={run_dir}", timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "train.overwrite=true" in proc.stderr and str(run_dir) in proc.stderr, proc.stderr[-2000:]
    assert "history.jsonl" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert _files(run_dir, hydra=True) == before  # nothing lost: even the earlier .hydra/ Hydra rewrote is put back


def test_hydra_files_alone_are_not_earlier_output(tmp_path, compose):
    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text("seed: 0\n")
    (run_dir / "train.log").write_text("")
    assert run(compose([*BASE, f"train.total_frames={BATCH}"]), run_dir) == "completed"


def test_overwrite_moves_earlier_output_aside_and_starts_fresh(tmp_path, compose, capsys):
    reused, fresh = tmp_path / "reused", tmp_path / "fresh"
    args = [*BASE, *TINY_CAPACITY, f"train.total_frames={BATCH}"]
    assert run(compose([*args, "seed=0"]), reused) == "completed"
    shutil.rmtree(reused / "checkpoints")  # e.g. a run that died before its first checkpoint
    earlier = _files(reused)
    with pytest.raises(ConfigError, match="train.overwrite=true"):
        run(compose([*args, "seed=1"]), reused)
    assert _files(reused) == earlier
    capsys.readouterr()

    (reused / ".hydra").mkdir()
    (reused / ".hydra" / "overrides.yaml").write_text("- seed=0\n")
    KeepEarlierHydraDir().on_run_start(OmegaConf.create({"hydra": {"run": {"dir": str(reused)}}}))
    (reused / ".hydra" / "overrides.yaml").write_text("- seed=1\n")  # what Hydra writes before the task runs
    assert run(compose([*args, "seed=1", "train.overwrite=true"]), reused) == "completed"
    err = capsys.readouterr().err
    (aside,) = sorted(reused.glob("previous_*"))
    assert str(aside) in err and "history.jsonl" in err, err
    assert _files(aside) == earlier  # the earlier run, whole
    assert (aside / ".hydra" / "overrides.yaml").read_text() == "- seed=0\n"  # with its overrides, which Hydra
    assert (reused / ".hydra" / "overrides.yaml").read_text() == "- seed=1\n"  # had replaced by the new run's
    assert run(compose([*args, "seed=1"]), fresh) == "completed"
    assert strip_perf(history(reused)) == strip_perf(history(fresh))  # capacity included: a new target, not the old
    assert (reused / "capacity_target.pt").read_bytes() == (fresh / "capacity_target.pt").read_bytes()


def test_resume_with_a_history_short_of_the_checkpoint_is_refused(tmp_path, compose):
    run_dir = tmp_path / "run"
    cfg = compose([*BASE, f"train.total_frames={3 * BATCH}", "debug.stop_after_batches=2"])
    assert run(cfg, run_dir) == "interrupted"
    assert [r["step"] for r in history(run_dir)] == [BATCH, 2 * BATCH]
    hist = run_dir / "history.jsonl"
    hist.write_text(hist.read_text().splitlines(keepends=True)[0])  # the last record lost
    before = _files(run_dir)
    with pytest.raises(ConfigError) as err:
        run(cfg, run_dir)
    msg = str(err.value)
    assert str(hist) in msg and f"step {BATCH}" in msg and f"step {2 * BATCH}" in msg, msg
    assert _files(run_dir) == before
    hist.unlink()  # the whole history lost
    with pytest.raises(ConfigError, match="history.jsonl"):
        run(cfg, run_dir)
    assert not hist.exists()


def test_corrupt_last_checkpoint_resumes_from_the_newest_step_file(tmp_path, compose, caplog):
    run_dir, reference = tmp_path / "run", tmp_path / "reference"
    args = [*BASE, f"train.total_frames={3 * BATCH}", "train.checkpoint_every=0.3"]  # step files at 1 and 2 batches
    assert run(compose([*args, "debug.stop_after_batches=2"]), run_dir) == "interrupted"
    last = run_dir / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])  # truncated, e.g. by a full disk or a copy cut short
    assert run(compose(args), run_dir) == "completed"
    assert "last.pt" in caplog.text and f"step_{2 * BATCH:012d}.pt" in caplog.text, caplog.text
    assert run(compose(args), reference) == "completed"
    assert strip_perf(history(run_dir)) == strip_perf(history(reference))  # step files are full resume states


def test_corrupt_checkpoints_without_fallback_are_one_clear_error(tmp_path, compose):
    run_dir = tmp_path / "run"
    cfg = compose([*BASE, f"train.total_frames={2 * BATCH}", "debug.stop_after_batches=1"])
    assert run(cfg, run_dir) == "interrupted"
    for p in (run_dir / "checkpoints").glob("*.pt"):
        p.write_bytes(b"\x00" * 100)
    before = _files(run_dir)
    with pytest.raises(ConfigError) as err:
        run(cfg, run_dir)
    assert str(run_dir / "checkpoints" / "last.pt") in str(err.value) and "train.overwrite=true" in str(err.value)
    assert _files(run_dir) == before
