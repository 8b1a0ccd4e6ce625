"""Hydra launchers for sweeps on Slurm (or local processes) through submitit.

`conf/hydra/launcher/slurm.yaml` and `local.yaml` select `hydra_plugins.repdyn_launcher.{Slurm,Local}Launcher`, which
are `CollectAllMixin` over the plugin's classes (Hydra instantiates launchers only from the `hydra_plugins` namespace,
so the concrete classes live there and the logic lives here). They submit exactly as hydra-submitit-launcher
1.2.0 does (one job array for the whole sweep, same requeue protocol: the launcher is submitit-checkpointable, so a
pre-timeout or preemption signal resubmits the same Hydra job, which resumes from `<run_dir>/checkpoints/last.pt`).
What they change is how the sweep ends. The plugin returns `[job.results()[0] for job in jobs]`, which raises on the
first failed member while later members are still running and names only that one failure. Here the launcher waits
for every member, writes one entry per member to `<sweep_dir>/sweep_status.json` (job id, `scheduler_state` as Slurm's
sacct or the local executor reports it when the sweep is collected, `status` COMPLETED/CANCELLED/TIMEOUT/FAILED,
`reason`, `run_dir`) and then raises one `SweepFailedError` naming every failed member, so a time-limit kill or an
`scancel` is reported with its reason while the other members finish.

Invalid members: under `sweep.skip_invalid=true` the members the preflight found invalid (`repdyn.preflight`) are
not submitted; each gets a run dir holding a `summary.json` with `status: invalid` and an INVALID entry here. A member
refused on its node while building (its task returns "invalid") is INVALID too, and counts as a failure unless
`sweep.skip_invalid=true`.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from omegaconf import OmegaConf

from repdyn import preflight
from repdyn.paths import SUMMARY_FILE

log = logging.getLogger(__name__)

STATUS_FILE = "sweep_status.json"
# Slurm states in which a job will never write its result file. submitit waits `_results_timeout_s` (15 s) for that
# file in case a network filesystem is slow; for these states the wait is pointless, so it is shortened.
_NO_RESULT_STATES = ("CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL", "DEADLINE")
_POLL_S = 1.0
_TRANSIENT_STATES = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING", "UNKNOWN")
_SETTLE_S = 30.0


class SweepFailedError(RuntimeError):
    """One or more sweep members failed; the message lists each with its Slurm state and reason."""


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return text.strip()


class CollectAllMixin:
    """Submit like hydra-submitit-launcher, then wait for all members and report every failure."""

    _EXECUTOR: str
    params: dict[str, Any]
    config: Any

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import submitit  # lazy, as in the plugin: keeps Hydra's plugin discovery fast

        if self.config is None:
            raise RuntimeError("launcher.setup() must be called before launch()")
        if len(job_overrides) == 0:
            raise ValueError("job_overrides: expected at least one sweep member, got none")

        # --- submission: identical to hydra-submitit-launcher 1.2.0 BaseSubmititLauncher.launch
        init_keys = {"max_num_timeout", "submitit_folder"}
        init_params: dict[str, Any] = {"folder": self.params["submitit_folder"]}
        if "max_num_timeout" in self.params:
            init_params[f"{self._EXECUTOR}_max_num_timeout"] = self.params["max_num_timeout"]
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, **init_params)
        baseparams = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(
            **{
                (k if k in baseparams else f"{self._EXECUTOR}_{k}"): v
                for k, v in self.params.items()
                if k not in init_keys
            }
        )
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        log.info(f"Submitit '{self._EXECUTOR}' sweep output dir : {sweep_dir}")

        job_params: list[tuple[Any, ...]] = []
        skipped = []
        for offset, overrides in enumerate(job_overrides):
            idx = initial_job_idx + offset
            invalid = preflight.skipped_member(overrides)
            if invalid is not None:  # sweep.skip_invalid=true: recorded, never submitted
                preflight.write_invalid_summary(invalid[0], list(overrides), invalid[1])
                skipped.append(_invalid_record(idx, overrides, invalid[1], str(invalid[0])))
                continue
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            job_params.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state()))
        jobs = executor.map_array(self, *zip(*job_params, strict=True))
        log.info(f"Submitted {len(jobs)} job(s): {', '.join(j.job_id for j in jobs)}")

        # --- collection: wait for every member before looking at any result
        return self._collect(jobs, [p[0] for p in job_params], [p[2] for p in job_params], sweep_dir, skipped)

    def _collect(
        self,
        jobs: Sequence[Any],
        job_overrides: Sequence[Sequence[str]],
        job_nums: Sequence[int],
        sweep_dir: Path,
        skipped: list[dict[str, Any]],
    ) -> list[JobReturn]:
        _wait_all(jobs, job_nums)
        states = self._final_states(jobs)
        returns: list[JobReturn] = []
        records: list[dict[str, Any]] = []
        for num, job, overrides, state in zip(job_nums, jobs, job_overrides, states, strict=True):
            record, ret = _member_record(num, job, overrides, state)
            records.append(record)
            if ret is not None:
                returns.append(ret)
        _merge_status(sweep_dir / STATUS_FILE, records + skipped)
        tolerated = ("COMPLETED", "INVALID") if OmegaConf.select(self.config, "sweep.skip_invalid") else ("COMPLETED",)
        failed = [r for r in records if r["status"] not in tolerated]
        if failed:
            lines = [
                f"  #{r['job_num']} job {r['job_id']} {r['status']} ({' '.join(r['overrides'])}): {r['reason']}"
                for r in failed
            ]
            raise SweepFailedError(
                f"{len(failed)} of {len(records) + len(skipped)} sweep member(s) failed "
                f"(see {sweep_dir / STATUS_FILE}):\n" + "\n".join(lines)
            )
        invalid = len(skipped) + sum(r["status"] == "INVALID" for r in records)
        log.info(f"{len(records) + len(skipped) - invalid} sweep member(s) completed, {invalid} skipped as invalid")
        return returns

    def _final_states(self, jobs: Sequence[Any]) -> list[str]:
        """Scheduler states once Slurm has settled them: a member counts as done as soon as its result file exists,
        while sacct still shows RUNNING or COMPLETING for a few seconds, so sacct is asked again (one call for all
        jobs) until no state is transient, for at most ``_SETTLE_S``."""
        if self._EXECUTOR != "slurm":
            return [str(job.state) for job in jobs]
        deadline = time.monotonic() + _SETTLE_S
        while True:
            type(jobs[0]).watcher.update()
            states = [str(job.state) for job in jobs]
            if not any(s.split(" ")[0] in _TRANSIENT_STATES for s in states) or time.monotonic() > deadline:
                return states
            time.sleep(_POLL_S)


def _wait_all(jobs: Sequence[Any], job_nums: Sequence[int]) -> None:
    """Block until every job is done (its result file written, or the scheduler ended it)."""
    remaining = set(range(len(jobs)))
    while remaining:
        for i in sorted(remaining):
            if jobs[i].done():
                remaining.discard(i)
                log.info(f"\t#{job_nums[i]} (job {jobs[i].job_id}) finished")
        if remaining:
            time.sleep(_POLL_S)


def _member_record(num: int, job: Any, overrides: Sequence[str], state: str) -> tuple[dict[str, Any], JobReturn | None]:
    """The sweep_status.json entry of one submitted member, and its Hydra JobReturn if the job produced one."""
    record: dict[str, Any] = {
        "job_num": num,
        "job_id": job.job_id,
        "overrides": list(overrides),
        "scheduler_state": state,
    }
    if state.split(" ")[0] in _NO_RESULT_STATES:
        job._results_timeout_s = 2
    try:
        ret: JobReturn = job.results()[0]
    except Exception as error:  # submitit's UncompletedJobError / FailedJobError: the job died outside Python
        outcome = state.split(" ")[0] if state.split(" ")[0] in ("CANCELLED", "TIMEOUT") else "FAILED"
        reason = f"ended in scheduler state {state} without a result; log: {job.paths.stderr}"
        record.update(status=outcome, reason=reason)
        log.error(f"\t#{num} (job {job.job_id}) {outcome}: {reason}\n{error}")
        return record, None
    run_dir = str(ret.hydra_cfg.hydra.runtime.output_dir) if ret.hydra_cfg is not None else None
    if ret.status == JobStatus.COMPLETED and ret._return_value == "invalid":  # refused on its node
        record.update(status="INVALID", reason=_summary_reason(run_dir), run_dir=run_dir)
    elif ret.status == JobStatus.COMPLETED:
        record.update(status="COMPLETED", reason="", run_dir=run_dir)
    else:  # the task raised inside the job (Hydra's run_job caught it), e.g. submitit's timeout refusal
        error = ret._return_value
        reason = f"{type(error).__name__}: {_first_line(str(error))}"
        # submitit ends a run that hit its limit more than max_num_timeout times with this message.
        outcome = "TIMEOUT" if "timed-out" in reason else "FAILED"
        record.update(status=outcome, reason=reason, run_dir=run_dir)
    if record["status"] != "COMPLETED":
        log.error(f"\t#{num} (job {job.job_id}) {record['status']}: {record['reason']}")
    return record, ret


def _invalid_record(num: int, overrides: Sequence[str], reason: str, run_dir: str) -> dict[str, Any]:
    """The sweep_status.json entry of a member skipped as invalid before submission."""
    return {
        "job_num": num,
        "job_id": None,
        "overrides": list(overrides),
        "scheduler_state": None,
        "status": "INVALID",
        "reason": reason,
        "run_dir": run_dir,
    }


def _summary_reason(run_dir: str | None) -> str:
    try:
        return str(json.loads((Path(str(run_dir)) / SUMMARY_FILE).read_text())["reason"])
    except (OSError, ValueError, KeyError, TypeError):
        return f"refused while building; see {run_dir}"


def _merge_status(path: Path, records: list[dict[str, Any]]) -> None:
    """Update `path` with `records`, keyed by job number (Hydra may launch a sweep in several batches)."""
    existing: dict[int, dict[str, Any]] = {}
    if path.exists():
        existing = {r["job_num"]: r for r in json.loads(path.read_text())}
    existing.update({r["job_num"]: r for r in records})
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([existing[k] for k in sorted(existing)], indent=1) + "\n")
    tmp.replace(path)
