"""hydra/launcher=slurm against the real single-node cluster, with the tiny app (tiny_app.py) as the job.

These pin the launcher's own behaviour: one job array per sweep, every member waited for, each failure reported with its
Slurm state and reason (sweep_status.json and the SweepFailedError message), and no hang on jobs that end without a
result (including a job Slurm kills at its time limit). Training behaviour on Slurm is in test_slurm_train.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from slurm_harness import Cluster, Sweep, start_sweep

pytestmark = pytest.mark.cluster


def test_sweep_runs_as_one_job_array_and_all_members_complete(slurm_cluster: Cluster, work_dir: Path) -> None:
    sweep = start_sweep(slurm_cluster, work_dir / "tiny_sweep" / "sweep", ["+x=1,2,3"])
    assert sweep.wait(timeout=120) == 0, sweep.output
    print(f"\n[cluster] 3-member tiny sweep took {sweep.duration_s:.1f} s")

    status = sweep.status()
    job_ids = [status[i]["job_id"] for i in range(3)]
    array_id = job_ids[0].split("_")[0]
    assert job_ids == [f"{array_id}_0", f"{array_id}_1", f"{array_id}_2"], "the sweep must be one Slurm job array"
    assert [status[i]["status"] for i in range(3)] == ["COMPLETED"] * 3
    # The scheduler's own final word, not the RUNNING/COMPLETING it shows while a finished job is being cleaned up.
    assert [status[i]["scheduler_state"] for i in range(3)] == ["COMPLETED"] * 3
    assert slurm_cluster.sacct_states(job_ids) == {j: ["COMPLETED"] for j in job_ids}
    for i, x in enumerate((1, 2, 3)):
        assert status[i]["overrides"] == [f"+x={x}"]
        lines = [json.loads(line) for line in (Path(status[i]["run_dir"]) / "history.jsonl").read_text().splitlines()]
        assert lines == [{"step": s, "value": float(x * s)} for s in range(3)]


def test_cancelled_and_timed_out_members_are_reported_without_hanging(
    slurm_cluster: Cluster, failure_sweep: Sweep
) -> None:
    """Started at session start (conftest.failure_sweep), member #1 cancelled as soon as it ran; all are awaited."""
    sweep = failure_sweep
    # Slurm's minimum time limit is 1 min and it enforces limits on a ~30 s tick, plus KillWait=10 s.
    returncode = sweep.wait(timeout=240)
    assert sweep.canceller is not None
    sweep.canceller.join(timeout=10)
    print(f"\n[cluster] tiny failure sweep (incl. a 1-min time-limit kill) took {sweep.duration_s:.1f} s")
    assert returncode != 0, sweep.output
    assert "SweepFailedError: 3 of 4 sweep member(s) failed" in sweep.output, sweep.output

    status = sweep.status()
    # The member that finished normally is complete, with its full history, despite its siblings' failures.
    assert status[0]["status"] == "COMPLETED"
    assert len((Path(status[0]["run_dir"]) / "history.jsonl").read_text().splitlines()) == 3
    # Cancelled: Slurm says CANCELLED and the job wrote no result.
    assert status[1]["status"] == "CANCELLED"
    assert status[1]["scheduler_state"].startswith("CANCELLED")
    assert "without a result" in status[1]["reason"]
    # Pre-timeout signal with max_num_timeout=0: submitit refuses the requeue inside the job; the run fails with that.
    assert status[2]["status"] == "TIMEOUT"
    # Normally submitit's USR2 handler raises this and the job ends with it. When the USR2 lands while submitit's
    # SIGCONT handler is logging (Slurm sends both), logging's emit swallows the exception raised from the handler
    # ("--- Logging error ---" in the job's log), the job runs on and Slurm kills it at the limit without a result.
    reason = status[2]["reason"]
    assert reason == "UncompletedJobError: Job not requeued because: timed-out too many times." or reason.startswith(
        "ended in scheduler state TIMEOUT without a result"
    ), reason
    # Signal ignored: Slurm kills the job at its limit, state TIMEOUT, no result.
    assert status[3]["status"] == "TIMEOUT"
    assert status[3]["scheduler_state"] == "TIMEOUT"
    job_ids = [status[i]["job_id"] for i in range(4)]
    states = slurm_cluster.sacct_states(job_ids)
    # #2 ends in its signal handler, normally long before the limit (COMPLETED); on a loaded machine Slurm's
    # signal can come so late that the limit's kill lands first (TIMEOUT). Its report is the same either way.
    assert [states[j] for j in job_ids] == [["COMPLETED"], ["CANCELLED"], states[job_ids[2]], ["TIMEOUT"]]
    assert states[job_ids[2]] in (["COMPLETED"], ["TIMEOUT"])
    for i in (1, 2, 3):
        assert re.search(rf"#{i} job \S+ {status[i]['status']} \(\+case=", sweep.output), sweep.output
