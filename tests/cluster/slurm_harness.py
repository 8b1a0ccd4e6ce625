"""Helpers for the cluster tests: the cluster handle, sweeps and runs started as a user would start them, polling."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from repdyn.paths import CONF_DIR, HISTORY_FILE, REPO_ROOT, SUMMARY_FILE

LAUNCH = REPO_ROOT / "launch"
TINY_APP = (sys.executable, str(Path(__file__).with_name("tiny_app.py")))
TRAIN_APP = (sys.executable, "-m", "repdyn.train")
SLURM_DIR = Path(os.environ.get("REPDYN_SLURM_DIR", "/tmp/repdyn-slurm"))
# A tiny but complete training run: CartPole PPO, 512 env steps per batch, representation metrics at every batch
# (the paper's 0.1% cadence rounds up to one log per batch), no capacity probes. ~0.5 s per batch on a free core.
TINY_TRAIN = (
    "env=classic/cartpole",
    "agent.epochs=2",
    "metrics=default",
    "metrics.capacity=false",
    "train.progress=false",
)
BATCH = 512  # env.num_envs (2) × env.frames_per_env (256) in conf/env/classic/cartpole.yaml
T = TypeVar("T")
# The reference run, the requeued run and the locally interrupted run share this config and seed.
# The logger does not change any logged value (W&B only mirrors the history), so the reference logs locally only.
RESUME_RUN = (*TINY_TRAIN, "seed=0", "train.total_frames=16384")  # 32 batches
RESUME_BATCHES = 16384 // BATCH


@dataclass
class Cluster:
    state_dir: Path
    env: dict[str, str]
    cold_start_s: float
    started_here: bool

    def run(self, *args: str, check: bool = True, timeout: float = 30) -> str:
        out = subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=timeout, check=False)
        if check and out.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
        return out.stdout

    def sacct_states(self, job_ids: Sequence[str], duplicates: bool = False) -> dict[str, list[str]]:
        """Slurm states per job (allocation lines only), oldest first; with `duplicates`, one entry per (re)start.
        Waits (≤ 20 s) until none is still running: slurmctld hands finished jobs to slurmdbd asynchronously."""
        final = wait_until(lambda: self._sacct(job_ids, duplicates), 20, f"final sacct states of {job_ids}", poll=1)
        return final

    def _sacct(self, job_ids: Sequence[str], duplicates: bool) -> dict[str, list[str]] | None:
        args = ["sacct", "-X", "-n", "-P", "-o", "JobID,State", "-j", ",".join(job_ids)]
        states: dict[str, list[str]] = {}
        for line in self.run(*args, *(["-D"] if duplicates else [])).splitlines():
            job_id, state = line.split("|")
            states.setdefault(job_id, []).append(state.split(" ")[0])
        unfinished = {"PENDING", "RUNNING", "COMPLETING", "REQUEUED", "SUSPENDED"}
        done = set(states) == set(job_ids) and all(s[-1] not in unfinished for s in states.values())
        return states if done else None

    def job_state(self, job_id: str) -> str:
        """Current squeue state (RUNNING, PENDING, COMPLETING, ...), or "" once the job left the queue."""
        return self.run("squeue", "-h", "-j", job_id, "-o", "%T", check=False).strip()

    def queued_jobs(self) -> dict[str, str]:
        """Every job in the queue, one entry per array element: {job id: squeue state}."""
        lines = self.run("squeue", "-h", "-r", "-o", "%i %T").split()
        return dict(zip(lines[::2], lines[1::2], strict=True))

    def set_aside(self, job_ids: Sequence[str]) -> None:
        """Hold pending jobs and requeue-hold running ones (a repdyn run checkpoints on the SIGTERM and resumes from
        it later), then wait until none of them holds a CPU. The scenarios assert on Slurm timings (1-minute
        limits, 120 s waits) that other jobs on the 2 cores would break."""
        for job_id, state in self.queued_jobs().items():
            if job_id in job_ids:
                self.run("scontrol", "requeuehold" if state == "RUNNING" else "hold", job_id, check=False)
        busy = {"RUNNING", "COMPLETING", "SUSPENDED"}
        try:
            wait_until(
                lambda: not any(s in busy for j, s in self.queued_jobs().items() if j in job_ids) or None,
                90,
                f"jobs {job_ids} to leave the CPUs",
                poll=1,
            )
        except AssertionError as e:  # the scenarios may still pass on a busy node: say so, do not fail them all here
            print(f"[cluster] warning: {e}")

    def release(self, job_ids: Sequence[str]) -> None:
        for job_id in job_ids:
            self.run("scontrol", "release", job_id, check=False)


def cluster_responds(env: dict[str, str]) -> bool:
    if not shutil.which("sinfo") or not Path(env["SLURM_CONF"]).exists():
        return False
    out = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True, timeout=10, check=False)
    return out.returncode == 0 and any(s in out.stdout for s in ("idle", "mixed", "allocated"))


@dataclass
class Process:
    """A launcher or training process started in the background; output goes to a log file (no pipe to fill).
    `duration_s` is measured when the process ends (a watcher thread), not when a test gets round to waiting."""

    proc: subprocess.Popen[bytes]
    log: Path
    started: float = field(default_factory=time.perf_counter)
    duration_s: float | None = None

    def __post_init__(self) -> None:
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        self.proc.wait()
        self.duration_s = time.perf_counter() - self.started

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait(self, timeout: float) -> int:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"still running after {timeout} s (hung?):\n{self.output[-5000:]}") from None
        if self.duration_s is None:
            self.duration_s = time.perf_counter() - self.started
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def spawn(cmd: Sequence[str], log: Path, env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        return subprocess.Popen(list(cmd), cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)


@dataclass
class Sweep(Process):
    """A Hydra multirun through hydra/launcher=slurm (the launcher process a user would run)."""

    sweep_dir: Path = Path()
    canceller: Canceller | None = None  # set by fixtures that cancel a member in the background

    def job_ids(self) -> list[str]:
        """Slurm job ids of the members, from submitit's folders (`<array>_<i>`, or `<id>` for a 1-member array)."""
        folder = self.sweep_dir / ".submitit"
        if not folder.exists():
            return []
        ids = [p.name for p in folder.iterdir() if re.fullmatch(r"\d+(_\d+)?", p.name)]
        members = [i for i in ids if "_" in i]
        return sorted(members or ids, key=lambda i: int(i.split("_")[-1]))

    def status(self) -> dict[int, dict[str, Any]]:
        """sweep_status.json written by repdyn.launchers, keyed by job number."""
        return {r["job_num"]: r for r in json.loads((self.sweep_dir / "sweep_status.json").read_text())}

    def stop(self, cluster: Cluster) -> None:
        """Kill the launcher and cancel its jobs if a failed test left them running."""
        self.kill()
        if ids := self.job_ids():
            cluster.run("scancel", *ids, check=False)


def start_sweep(cluster: Cluster, sweep_dir: Path, overrides: Sequence[str], app: Sequence[str] = TINY_APP) -> Sweep:
    """Start `app -m hydra/launcher=slurm ...` (the repo's conf tree is put on the tiny app's search path)."""
    cmd = [
        *app,
        "-m",
        *([f"hydra.searchpath=[file://{CONF_DIR}]"] if tuple(app) == TINY_APP else []),
        "hydra/launcher=slurm",
        "hydra.launcher.partition=debug",
        "hydra.launcher.mem_gb=1",
        "hydra.launcher.cpus_per_task=1",
        f"hydra.sweep.dir={sweep_dir}",
        *overrides,
    ]
    log = sweep_dir.parent / f"{sweep_dir.name}.launcher.log"
    return Sweep(proc=spawn(cmd, log, cluster.env, sweep_dir.parent), log=log, sweep_dir=sweep_dir)


def start_local_run(run_dir: Path, overrides: Sequence[str], env: dict[str, str] | None = None) -> Process:
    """`python -m repdyn.train ... hydra.run.dir=<run_dir>` without Slurm; the log is appended per start."""
    cmd = [*TRAIN_APP, *overrides, f"hydra.run.dir={run_dir}"]
    log = run_dir.parent / f"{run_dir.name}.{len(list(run_dir.parent.glob(f'{run_dir.name}.*.log')))}.log"
    return Process(proc=spawn(cmd, log, env or dict(os.environ), run_dir.parent), log=log)


def read_history(run_dir: Path) -> list[dict[str, Any]]:
    """history.jsonl without the wall-clock keys (perf/*), which legitimately differ between runs."""
    path = run_dir / HISTORY_FILE
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [{k: v for k, v in r.items() if not k.startswith("perf/")} for r in records]


def history_len(run_dir: Path) -> int:
    path = run_dir / HISTORY_FILE
    return sum(1 for line in path.read_text().splitlines() if line.strip()) if path.exists() else 0


def wait_until(predicate: Callable[[], T], timeout: float, what: str, poll: float = 0.3) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Driver:
    """Acts on a running sweep from a background thread (scancel, requeue), so scenarios overlap with other tests;
    `join()` re-raises whatever went wrong in the thread."""

    error: BaseException | None = None
    thread: threading.Thread | None = None

    def drive(self, cluster: Cluster | None) -> None:
        raise NotImplementedError

    def _run(self, cluster: Cluster | None) -> None:
        try:
            self.drive(cluster)
        except BaseException as e:  # reported by join()
            self.error = e

    def start(self, cluster: Cluster | None = None) -> None:
        self.thread = threading.Thread(target=self._run, args=(cluster,), daemon=True)
        self.thread.start()

    def join(self, timeout: float) -> None:
        assert self.thread is not None, "driver never started"
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"{type(self).__name__} still running after {timeout} s"
        if self.error is not None:
            raise self.error


@dataclass
class Canceller(Driver):
    """`scancel` sweep member `member` as soon as it runs (and, for a training run, has logged `min_lines`)."""

    sweep: Sweep
    member: int
    n_members: int
    min_lines: int = 0
    job_id: str = ""

    def drive(self, cluster: Cluster | None) -> None:
        assert cluster is not None

        def ready() -> str | None:
            ids = self.sweep.job_ids()
            if len(ids) != self.n_members or cluster.job_state(ids[self.member]) != "RUNNING":
                return None
            return ids[self.member] if history_len(self.sweep.sweep_dir / str(self.member)) >= self.min_lines else None

        self.job_id = wait_until(ready, 240, f"member #{self.member} to be running")
        cluster.run("scancel", self.job_id)


@dataclass
class RequeueScenario(Driver):
    """A single training run on Slurm that is requeued twice while it trains: first `scontrol requeue` (what Slurm
    does on preemption with PreemptMode=REQUEUE: SIGTERM, then requeue), then SIGUSR2 (Slurm's pre-timeout/preemption
    signal that submitit handles: checkpoint, `scontrol requeue`, exit)."""

    sweep: Sweep = None  # type: ignore[assignment]
    run_dir: Path = Path()
    job_id: str = ""
    interrupted_at_lines: list[int] = field(default_factory=list)
    restart_delays_s: list[float] = field(default_factory=list)

    def drive(self, cluster: Cluster | None) -> None:
        assert cluster is not None
        self.job_id = wait_until(lambda: (self.sweep.job_ids() or [""])[0], 120, "the job to be submitted")
        # Interrupt once the run is well into training and once more after it resumed and trained on.
        for min_lines, how in ((3, "requeue"), (12, "usr2")):
            wait_until(lambda m=min_lines: history_len(self.run_dir) >= m, 240, f"{min_lines} history lines")
            wait_until(lambda: cluster.job_state(self.job_id) == "RUNNING", 30, "the job to run")
            self.interrupted_at_lines.append(history_len(self.run_dir))
            t0 = time.monotonic()
            if how == "requeue":
                cluster.run("scontrol", "requeue", self.job_id)
            else:
                cluster.run("scancel", "--signal=USR2", self.job_id)
            wait_until(lambda: cluster.job_state(self.job_id) != "RUNNING", 60, "the job to stop")
            wait_until(lambda: cluster.job_state(self.job_id) == "RUNNING", 120, "the requeued job to restart")
            self.restart_delays_s.append(time.monotonic() - t0)


@dataclass
class LocalResume(Driver):
    """A local run (no Slurm) sent SIGTERM once it logged `min_lines` steps, then started again in the same run dir."""

    run_dir: Path = Path()
    overrides: Sequence[str] = ()
    min_lines: int = 4
    first: Process | None = None
    second: Process | None = None
    first_summary: dict[str, Any] = field(default_factory=dict)

    def drive(self, cluster: Cluster | None) -> None:
        self.first = first = start_local_run(self.run_dir, self.overrides)
        wait_until(
            lambda: history_len(self.run_dir) >= self.min_lines or first.proc.poll() is not None, 300, "log steps"
        )
        first.proc.send_signal(signal.SIGTERM)
        first.wait(timeout=120)
        self.first_summary = json.loads((self.run_dir / SUMMARY_FILE).read_text())
        self.second = start_local_run(self.run_dir, self.overrides)
        self.second.wait(timeout=300)
