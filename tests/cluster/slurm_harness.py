"""Helpers for the cluster tests: the cluster handle, sweeps run as a user would run them, polling."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from repdyn.paths import CONF_DIR, REPO_ROOT

LAUNCH = REPO_ROOT / "launch"
TINY_APP = Path(__file__).with_name("tiny_app.py")
SLURM_DIR = Path(os.environ.get("REPDYN_SLURM_DIR", "/tmp/repdyn-slurm"))
T = TypeVar("T")


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

    def sacct_states(self, job_ids: Sequence[str]) -> dict[str, str]:
        """Final Slurm state of each job (allocation line only), e.g. {"12_0": "COMPLETED", "13": "CANCELLED"}."""
        text = self.run("sacct", "-X", "-n", "-P", "-o", "JobID,State", "-j", ",".join(job_ids))
        states = {}
        for line in text.splitlines():
            job_id, state = line.split("|")
            states[job_id] = state.split(" ")[0]
        return states


def cluster_responds(env: dict[str, str]) -> bool:
    if not shutil.which("sinfo") or not Path(env["SLURM_CONF"]).exists():
        return False
    out = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True, timeout=10, check=False)
    return out.returncode == 0 and any(s in out.stdout for s in ("idle", "mixed", "allocated"))


@dataclass
class Sweep:
    """A Hydra multirun started as a subprocess (the launcher process a user would run)."""

    sweep_dir: Path
    proc: subprocess.Popen[str]
    started: float = field(default_factory=time.perf_counter)
    duration_s: float | None = None
    output: str = ""

    def wait(self, timeout: float) -> int:
        try:
            self.output, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.output, _ = self.proc.communicate()
            raise AssertionError(f"launcher still running after {timeout} s (hung?):\n{self.output}") from None
        self.duration_s = time.perf_counter() - self.started
        return self.proc.returncode

    def stop(self, cluster: Cluster) -> None:
        """Kill the launcher and cancel its jobs if a failed test left them running."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()
        folder = self.sweep_dir / ".submitit"
        job_ids = [p.name for p in folder.iterdir() if "_" in p.name] if folder.exists() else []
        if job_ids:
            cluster.run("scancel", *job_ids, check=False)


def start_sweep(
    cluster: Cluster, sweep_dir: Path, overrides: Sequence[str], app: Sequence[str] = (sys.executable, str(TINY_APP))
) -> Sweep:
    """Start `app -m hydra/launcher=slurm ...` with the repo's conf tree on Hydra's search path."""
    cmd = [
        *app,
        "-m",
        f"hydra.searchpath=[file://{CONF_DIR}]",
        "hydra/launcher=slurm",
        "hydra.launcher.partition=debug",
        "hydra.launcher.mem_gb=1",
        "hydra.launcher.cpus_per_task=1",
        f"hydra.sweep.dir={sweep_dir}",
        *overrides,
    ]
    proc = subprocess.Popen(
        cmd, cwd=sweep_dir.parent, env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    return Sweep(sweep_dir=sweep_dir, proc=proc)


def wait_until(predicate: Callable[[], T], timeout: float, what: str, poll: float = 0.5) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
