"""The requeue path without Slurm: a local run killed with SIGTERM and restarted with the same run dir
(`hydra.run.dir=<dir>`) continues from its checkpoint and ends with exactly the uninterrupted run's history.

It also checks the W&B side of a resume with offline W&B (the default logger): both segments write into the run dir
under the same W&B run id, so `wandb sync <run_dir>/wandb/offline-run-*` uploads them as one run.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

from slurm_harness import RESUME_BATCHES, RESUME_RUN, Process, history_len, read_history, start_local_run, wait_until

from repdyn.paths import CHECKPOINT_DIR, SUMMARY_FILE


def test_sigterm_then_restart_in_same_run_dir_ends_identical(
    tmp_path: Path, reference_run: tuple[Process, Path]
) -> None:
    run_dir = tmp_path / "run"
    overrides = (*RESUME_RUN, "logger=wandb", "logger.mode=offline")

    first = start_local_run(run_dir, overrides)
    wait_until(lambda: history_len(run_dir) >= 4 or first.proc.poll() is not None, 240, "4 history lines")
    first.proc.send_signal(signal.SIGTERM)
    # The run checkpoints at the next batch boundary, then exits with 128 + SIGTERM.
    assert first.wait(timeout=120) == 128 + signal.SIGTERM, first.output[-3000:]
    summary = json.loads((run_dir / SUMMARY_FILE).read_text())
    assert summary["status"] == "interrupted"
    assert 4 <= summary["env_steps"] // 512 < RESUME_BATCHES, "must be interrupted mid-training"
    assert (run_dir / CHECKPOINT_DIR / "last.pt").exists()

    second = start_local_run(run_dir, overrides)
    assert second.wait(timeout=300) == 0, second.output[-3000:]
    assert f"resumed from {run_dir / CHECKPOINT_DIR} at {summary['env_steps']} env steps" in second.output
    assert json.loads((run_dir / SUMMARY_FILE).read_text())["status"] == "completed"

    ref_proc, ref_dir = reference_run
    assert ref_proc.wait(timeout=300) == 0, ref_proc.output[-3000:]
    print(
        f"\n[local] interrupted run {first.duration_s:.1f} s + resumed run {second.duration_s:.1f} s; "
        f"uninterrupted reference {ref_proc.duration_s:.1f} s"
    )
    reference = read_history(ref_dir)
    assert [r["step"] for r in reference] == [512 * (k + 1) for k in range(RESUME_BATCHES)]
    assert read_history(run_dir) == reference  # no missing, duplicated or different step

    # One W&B run id across both segments.
    segments = sorted((run_dir / "wandb").glob("offline-run-*"))
    assert len(segments) == 2, segments
    assert len({s.name.rsplit("-", 1)[-1] for s in segments}) == 1, segments
