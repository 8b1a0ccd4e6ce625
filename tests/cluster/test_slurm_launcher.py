"""hydra/launcher=slurm against the real single-node cluster, with the tiny app (tiny_app.py) as the job.

These pin the launcher's own behaviour: one job array per sweep, every member waited for, each failure reported with its
Slurm state and reason (sweep_status.json and the SweepFailedError message), and no hang on jobs that end without a
result. Training-specific behaviour (checkpoint, requeue, exact resume) is in test_train_on_slurm.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from slurm_harness import Cluster, Sweep, start_sweep, wait_until

pytestmark = pytest.mark.cluster


def _status(sweep_dir: Path) -> list[dict]:
    return json.loads((sweep_dir / "sweep_status.json").read_text())


def test_sweep_runs_as_one_job_array_and_all_members_complete(slurm_cluster: Cluster, tmp_path: Path) -> None:
    sweep = start_sweep(slurm_cluster, tmp_path / "sweep", ["+x=1,2,3"])
    assert sweep.wait(timeout=120) == 0, sweep.output
    print(f"\n[cluster] 3-member tiny sweep took {sweep.duration_s:.1f} s")

    status = _status(sweep.sweep_dir)
    job_ids = [r["job_id"] for r in status]
    array_id = job_ids[0].split("_")[0]
    assert job_ids == [f"{array_id}_0", f"{array_id}_1", f"{array_id}_2"], "the sweep must be one Slurm job array"
    assert [r["status"] for r in status] == ["COMPLETED"] * 3
    assert slurm_cluster.sacct_states(job_ids) == dict.fromkeys(job_ids, "COMPLETED")
    for record, x in zip(status, (1, 2, 3), strict=True):
        assert record["overrides"] == [f"+x={x}"]
        lines = [json.loads(line) for line in (Path(record["run_dir"]) / "history.jsonl").read_text().splitlines()]
        assert lines == [{"step": s, "value": float(x * s)} for s in range(3)]


@pytest.mark.waits_on_background
def test_cancelled_and_timed_out_members_are_reported_without_hanging(
    slurm_cluster: Cluster, failure_sweep: Sweep
) -> None:
    """The sweep was started at session start (conftest.failure_sweep); here member #1 is cancelled and all awaited."""
    sweep = failure_sweep

    def cancel_target() -> str | None:
        # The array's job ids appear in the submitit folder once sbatch returned; member #1 is <array>_1.
        names = [p.name for p in (sweep.sweep_dir / ".submitit").glob("*_1")] if sweep.sweep_dir.exists() else []
        if not names:
            return None
        state = slurm_cluster.run("squeue", "-h", "-j", names[0], "-o", "%T", check=False).strip()
        return names[0] if state == "RUNNING" else None

    target = wait_until(cancel_target, timeout=60, what="member #1 to be running")
    slurm_cluster.run("scancel", target)
    # Slurm's minimum time limit is 1 min and it enforces limits on a ~30 s tick, plus KillWait=10 s.
    returncode = sweep.wait(timeout=180)
    print(f"\n[cluster] failure sweep (incl. a 1-min time-limit kill) took {sweep.duration_s:.1f} s")
    assert returncode != 0, sweep.output
    assert "SweepFailedError: 3 of 4 sweep member(s) failed" in sweep.output, sweep.output

    status = {r["job_num"]: r for r in _status(sweep.sweep_dir)}
    # The member that finished normally is complete, with its full history, despite its siblings' failures.
    assert status[0]["status"] == "COMPLETED"
    assert len((Path(status[0]["run_dir"]) / "history.jsonl").read_text().splitlines()) == 3
    # Cancelled: Slurm says CANCELLED and the job wrote no result.
    assert status[1]["status"] == "CANCELLED"
    assert status[1]["slurm_state"].startswith("CANCELLED")
    assert "without a result" in status[1]["reason"]
    # Pre-timeout signal with max_num_timeout=0: submitit refuses the requeue inside the job; the run fails with that.
    assert status[2]["status"] == "TIMEOUT"
    assert status[2]["reason"] == "UncompletedJobError: Job not requeued because: timed-out too many times."
    # Signal ignored: Slurm kills the job at its limit, state TIMEOUT, no result.
    assert status[3]["status"] == "TIMEOUT"
    assert status[3]["slurm_state"] == "TIMEOUT"
    states = slurm_cluster.sacct_states([status[i]["job_id"] for i in range(4)])
    assert [states[status[i]["job_id"]] for i in range(4)] == ["COMPLETED", "CANCELLED", "COMPLETED", "TIMEOUT"]
    for i in (1, 2, 3):
        assert re.search(rf"#{i} job \S+ {status[i]['status']} \(\+case=", sweep.output), sweep.output
