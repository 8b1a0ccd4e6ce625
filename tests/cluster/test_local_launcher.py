"""hydra/launcher=local (submitit's local executor, no Slurm): the same collect-all protocol as the Slurm launcher."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from slurm_harness import TINY_APP, TINY_TRAIN, TRAIN_APP

from repdyn.paths import CONF_DIR


def test_local_launcher_runs_every_member_and_reports_the_failed_one(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    out = subprocess.run(
        [
            *TINY_APP,
            "-m",
            f"hydra.searchpath=[file://{CONF_DIR}]",
            "hydra/launcher=local",
            f"hydra.sweep.dir={sweep_dir}",
            "+case=ok,bogus",
            "+x=2",
        ],
        cwd=tmp_path,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0, out.stdout + out.stderr
    assert "SweepFailedError: 1 of 2 sweep member(s) failed" in out.stderr, out.stderr
    status = {r["job_num"]: r for r in json.loads((sweep_dir / "sweep_status.json").read_text())}
    assert status[0]["status"] == "COMPLETED"
    history = [json.loads(line) for line in (Path(status[0]["run_dir"]) / "history.jsonl").read_text().splitlines()]
    assert history == [{"step": s, "value": 2.0 * s} for s in range(3)]
    # The failing member's own exception is the reason, with the member's overrides beside it.
    assert status[1]["status"] == "FAILED"
    assert status[1]["overrides"] == ["+case=bogus", "+x=2"]
    expected = "ValueError: case: expected one of ['cancel', 'hard_timeout', 'ok', 'soft_timeout'], got 'bogus'"
    assert status[1]["reason"] == expected


def test_local_launcher_skips_an_invalid_member_without_submitting_it(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    out = subprocess.run(
        [
            *TRAIN_APP,
            "-m",
            *TINY_TRAIN,
            "hydra/launcher=local",
            f"hydra.sweep.dir={sweep_dir}",
            "logger=none",
            "train.total_frames=512",
            "agent.epochs=0,1",
            "sweep.skip_invalid=true",
        ],
        cwd=tmp_path,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    status = {r["job_num"]: r for r in json.loads((sweep_dir / "sweep_status.json").read_text())}
    assert (status[0]["status"], status[0]["job_id"]) == ("INVALID", None)  # never submitted
    assert status[0]["reason"] == "agent.epochs: must be ≥ 1, got 0" and "agent.epochs=0" in status[0]["overrides"]
    summary = json.loads((Path(status[0]["run_dir"]) / "summary.json").read_text())
    assert (summary["status"], summary["reason"]) == ("invalid", status[0]["reason"])
    assert status[1]["status"] == "COMPLETED"
    assert json.loads((Path(status[1]["run_dir"]) / "summary.json").read_text())["status"] == "completed"
