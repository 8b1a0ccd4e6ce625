"""Issue "Reliability" item 1: a sweep with bad members. ``sweep.skip_invalid=true`` runs the valid members and
records each invalid one (``status: invalid`` and the reason in its ``summary.json``); an invalid member found only
while building (a replay larger than the RAM) never stops its siblings; ``repdyn.analyze`` lists every member it
could not analyse."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import run_cli, summary

TINY = ("env=classic/cartpole", "train.total_frames=512", "logger=none", "metrics=none")


def test_skip_invalid_runs_the_valid_members_and_records_the_invalid_one(tmp_path):
    sweep_dir = tmp_path / "sweep"
    proc = run_cli(
        "-m", *TINY, "agent.epochs=1,0,2", "sweep.skip_invalid=true", f"hydra.sweep.dir={sweep_dir}", timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "skipping 1 of 3 invalid sweep member(s)" in proc.stderr, proc.stderr[-3000:]
    assert [summary(sweep_dir / str(i))["status"] for i in (0, 2)] == ["completed", "completed"]
    invalid = summary(sweep_dir / "1")
    assert invalid["status"] == "invalid"
    assert invalid["reason"].startswith("agent.epochs: must be ≥ 1, got 0"), invalid["reason"]
    assert "agent.epochs=0" in invalid["overrides"]
    assert not (sweep_dir / "1" / "history.jsonl").exists()  # nothing ran

    report = subprocess.run(
        [sys.executable, "-m", "repdyn.analyze", str(sweep_dir), "screenshot=false", "progress=false"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert report.returncode == 0, report.stderr[-3000:]
    assert "sweep members: 2 of 3 analysed; #1 invalid (agent.epochs=0): agent.epochs: must be ≥ 1" in report.stdout


def test_a_member_refused_while_building_does_not_stop_the_sweep(tmp_path):
    sweep_dir = tmp_path / "sweep"
    proc = run_cli(
        "-m",
        "agent=dqn",
        "env=classic/acrobot",
        "train.total_frames=256",
        "agent.learning_starts=64",
        "logger=none",
        "metrics=none",
        "agent.buffer_size=100000000000,1000",
        f"hydra.sweep.dir={sweep_dir}",
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]  # a member was refused: the sweep is not a success
    assert "1 of 2 sweep member(s) refused" in proc.stderr, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    refused = summary(sweep_dir / "0")
    assert refused["status"] == "invalid" and refused["reason"].startswith("agent.buffer_size=100000000000 needs")
    assert summary(sweep_dir / "1")["status"] == "completed"  # the member after it still ran
