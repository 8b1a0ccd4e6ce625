"""`python -m repdyn.train -m hydra/launcher=slurm ...` on the real single-node cluster, with tiny CartPole PPO runs.

Issue 6's must-show list: a 3-run sweep is one job array whose members all complete with full histories; a run
requeued twice mid-training (Slurm's `scontrol requeue`, then submitit's SIGUSR2 protocol) resumes from its checkpoint
and ends with exactly the history of an uninterrupted run; a run killed by its time limit with max_num_timeout=0 and a
cancelled run are reported as failed with their reason, without hanging, while their sibling completes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import secrets
from pathlib import Path

import pytest
from slurm_harness import (
    BATCH,
    RESUME_BATCHES,
    TINY_TRAIN,
    TRAIN_APP,
    Cluster,
    Process,
    RequeueScenario,
    Sweep,
    history_len,
    read_history,
    start_sweep,
)

from repdyn.paths import CHECKPOINT_DIR, SUMMARY_FILE

pytestmark = pytest.mark.cluster


def _summary(run_dir: Path) -> dict:
    return json.loads((run_dir / SUMMARY_FILE).read_text())


def _assert_full_history(history: list[dict], batches: int) -> None:
    assert [r["step"] for r in history] == [BATCH * (k + 1) for k in range(batches)], "missing or duplicated steps"
    for r in history:
        for key in ("loss/policy", "ppo/approx_kl_k1", "batch_end/actor/effective_rank", "batch_end/critic/srank"):
            assert isinstance(r[key], float) and math.isfinite(r[key]), (r["step"], key, r.get(key))


def test_three_run_sweep_is_one_job_array_and_all_complete(slurm_cluster: Cluster, work_dir: Path) -> None:
    sweep = start_sweep(
        slurm_cluster,
        work_dir / "train_sweep" / "sweep",
        [*TINY_TRAIN, "logger=none", "train.total_frames=4096", "seed=0,1,2"],
        app=TRAIN_APP,
    )
    assert sweep.wait(timeout=300) == 0, sweep.output
    print(f"\n[cluster] 3-run training sweep (4096 env steps each) took {sweep.duration_s:.1f} s")

    status = sweep.status()
    job_ids = [status[i]["job_id"] for i in range(3)]
    array_id = job_ids[0].split("_")[0]
    assert job_ids == [f"{array_id}_{i}" for i in range(3)], "the sweep must be one Slurm job array"
    assert slurm_cluster.sacct_states(job_ids) == {j: ["COMPLETED"] for j in job_ids}
    histories = []
    for i in range(3):
        run_dir = Path(status[i]["run_dir"])
        assert status[i]["status"] == "COMPLETED" and f"seed={i}" in status[i]["overrides"]
        summary = _summary(run_dir)
        assert (summary["status"], summary["env_steps"]) == ("completed", 4096)
        histories.append(read_history(run_dir))
        _assert_full_history(histories[-1], batches=8)
    # Each member ran its own seed.
    assert len({h[-1]["loss/value"] for h in histories}) == 3


def test_requeued_run_resumes_and_ends_identical_to_uninterrupted(
    slurm_cluster: Cluster, requeue_run: RequeueScenario, reference_run: tuple[Process, Path]
) -> None:
    scenario = requeue_run
    returncode = scenario.sweep.wait(timeout=300)
    scenario.join(timeout=10)
    print(
        f"\n[cluster] requeued run took {scenario.sweep.duration_s:.1f} s; restart delays after scontrol requeue / "
        f"SIGUSR2: {', '.join(f'{d:.1f} s' for d in scenario.restart_delays_s)} "
        f"(interrupted after {scenario.interrupted_at_lines} history lines)"
    )
    assert returncode == 0, scenario.sweep.output

    # Slurm ran the job three times: two requeues, then to completion.
    states = slurm_cluster.sacct_states([scenario.job_id], duplicates=True)[scenario.job_id]
    assert states == ["REQUEUED", "REQUEUED", "COMPLETED"], states
    train_log = (scenario.run_dir / "train.log").read_text()
    assert train_log.count("resumed from") == 2, train_log[-3000:]
    assert _summary(scenario.run_dir)["status"] == "completed"

    ref_proc, ref_dir = reference_run
    assert ref_proc.wait(timeout=300) == 0, ref_proc.output
    reference, resumed = read_history(ref_dir), read_history(scenario.run_dir)
    _assert_full_history(reference, batches=RESUME_BATCHES)
    assert resumed == reference  # same keys and bit-identical values at every step


def test_time_limit_and_cancelled_training_runs_are_reported_while_sibling_completes(
    slurm_cluster: Cluster, train_failure_sweep: Sweep
) -> None:
    sweep = train_failure_sweep
    returncode = sweep.wait(timeout=300)
    assert sweep.canceller is not None
    sweep.canceller.join(timeout=10)  # cancelled #1 once it had logged (conftest.train_failure_sweep)
    print(f"\n[cluster] training failure sweep (time limit 2 min) took {sweep.duration_s:.1f} s")
    assert returncode != 0, sweep.output
    assert "SweepFailedError: 2 of 3 sweep member(s) failed" in sweep.output, sweep.output

    status = sweep.status()
    # The short sibling completed with its full history.
    assert status[0]["status"] == "COMPLETED"
    run_0 = Path(status[0]["run_dir"])
    assert _summary(run_0)["status"] == "completed"
    _assert_full_history(read_history(run_0), batches=4)
    # Cancelled mid-training: no result, Slurm state CANCELLED.
    assert status[1]["status"] == "CANCELLED" and status[1]["scheduler_state"].startswith("CANCELLED")
    assert "without a result" in status[1]["reason"]
    # Pre-timeout signal with max_num_timeout=0: the run checkpoints, then submitit refuses the requeue.
    assert status[2]["status"] == "TIMEOUT"
    assert status[2]["reason"] == "UncompletedJobError: Job not requeued because: timed-out too many times."
    run_2 = Path(status[2]["run_dir"])
    assert (run_2 / CHECKPOINT_DIR / "last.pt").exists(), "the timed-out run must leave a checkpoint to resume from"
    assert _summary(run_2)["status"] == "interrupted"
    assert history_len(run_2) >= 1
    for i in (1, 2):
        assert f"#{i} job {status[i]['job_id']} {status[i]['status']} (" in sweep.output, sweep.output


def test_invalid_members_are_refused_before_submission_or_skipped(slurm_cluster: Cluster, work_dir: Path) -> None:
    base = [*TINY_TRAIN, "logger=none", "train.total_frames=512", "agent.epochs=0,1"]
    refused = start_sweep(slurm_cluster, work_dir / "invalid_refused" / "sweep", base, app=TRAIN_APP)
    assert refused.wait(timeout=120) == 2, refused.output
    assert "agent.epochs: must be ≥ 1, got 0 (sweep member #0:" in refused.output
    assert "Traceback" not in refused.output
    assert not refused.sweep_dir.exists()  # nothing was submitted

    sweep = start_sweep(
        slurm_cluster, work_dir / "invalid_skipped" / "sweep", [*base, "sweep.skip_invalid=true"], app=TRAIN_APP
    )
    assert sweep.wait(timeout=300) == 0, sweep.output
    status = sweep.status()
    assert (status[0]["status"], status[0]["job_id"], status[0]["reason"]) == (
        "INVALID",
        None,
        "agent.epochs: must be ≥ 1, got 0",
    )
    assert _summary(Path(status[0]["run_dir"]))["status"] == "invalid"
    assert (status[1]["status"], status[1]["scheduler_state"]) == ("COMPLETED", "COMPLETED")
    assert slurm_cluster.sacct_states([status[1]["job_id"]]) == {status[1]["job_id"]: ["COMPLETED"]}
    assert _summary(Path(status[1]["run_dir"]))["status"] == "completed"


def test_a_planted_secret_reaches_no_file_of_a_slurm_sweep(slurm_cluster: Cluster, work_dir: Path) -> None:
    """Item 4 of the Reliability issue on Slurm: WANDB_API_KEY pulled into the config by interpolation is in no file
    of the sweep dir: run dirs, the offline W&B run, multirun.yaml and submitit's folder (pickles and job logs)."""
    planted = "plantedsecret" + secrets.token_hex(12)
    sweep_dir = work_dir / "secret" / "sweep"
    overrides = [*TINY_TRAIN, "logger=wandb", "logger.mode=offline", "logger.group=g-${oc.env:WANDB_API_KEY}"]
    cluster = dataclasses.replace(slurm_cluster, env={**slurm_cluster.env, "WANDB_API_KEY": planted})
    sweep = start_sweep(cluster, sweep_dir, [*overrides, "train.total_frames=512", "seed=0,1"], app=TRAIN_APP)
    assert sweep.wait(timeout=300) == 0, sweep.output
    assert planted not in sweep.output
    assert list(sweep_dir.glob("*/wandb/offline-run-*/*.wandb")), "the offline W&B runs were not written"
    assert list((sweep_dir / ".submitit").rglob("*.out")), "submitit's job logs were not written"
    holding = [str(p) for p in sweep_dir.rglob("*") if p.is_file() and planted.encode() in p.read_bytes()]
    assert holding == []
