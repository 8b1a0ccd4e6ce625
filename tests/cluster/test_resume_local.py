"""The requeue path without Slurm: a local run killed with SIGTERM and restarted with the same run dir
(`hydra.run.dir=<dir>`) continues from its checkpoint and ends with exactly the uninterrupted run's history.

It also checks the W&B side of a resume with offline W&B (the default logger): both segments write into the run dir
under the same W&B run id, so `wandb sync <run_dir>/wandb/offline-run-*` uploads them as one run.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

from slurm_harness import BATCH, RESUME_BATCHES, LocalResume, Process, read_history

from repdyn.paths import CHECKPOINT_DIR, SUMMARY_FILE


def test_sigterm_then_restart_in_same_run_dir_ends_identical(
    local_resume: LocalResume, reference_run: tuple[Process, Path]
) -> None:
    """Started at session start (conftest.local_resume); here its outcome is checked."""
    scenario = local_resume
    scenario.join(timeout=600)
    run_dir, first, second = scenario.run_dir, scenario.first, scenario.second
    assert first is not None and second is not None
    # The run checkpointed at the next batch boundary, then exited with 128 + SIGTERM.
    assert first.proc.returncode == 128 + signal.SIGTERM, first.output[-3000:]
    assert scenario.first_summary["status"] == "interrupted"
    steps_done = scenario.first_summary["env_steps"]
    assert 4 <= steps_done // BATCH < RESUME_BATCHES, "must be interrupted mid-training"
    assert second.proc.returncode == 0, second.output[-3000:]
    assert f"resumed from {run_dir / CHECKPOINT_DIR} at {steps_done} env steps" in second.output
    assert json.loads((run_dir / SUMMARY_FILE).read_text())["status"] == "completed"

    ref_proc, ref_dir = reference_run
    assert ref_proc.wait(timeout=300) == 0, ref_proc.output[-3000:]
    print(
        f"\n[local] interrupted run {first.duration_s:.1f} s + resumed run {second.duration_s:.1f} s; "
        f"uninterrupted reference {ref_proc.duration_s:.1f} s"
    )
    reference = read_history(ref_dir)
    assert [r["step"] for r in reference] == [BATCH * (k + 1) for k in range(RESUME_BATCHES)]
    assert read_history(run_dir) == reference  # no missing, duplicated or different step

    # One W&B run id across both segments.
    segments = sorted((run_dir / "wandb").glob("offline-run-*"))
    assert len(segments) == 2, segments
    assert len({s.name.rsplit("-", 1)[-1] for s in segments}) == 1, segments
