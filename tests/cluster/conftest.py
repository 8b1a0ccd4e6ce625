"""Fixtures for tests against a real single-node Slurm cluster (launch/slurm_up.sh), marked `cluster`.

One cluster serves the whole session: `slurm_cluster` starts it (installing the Debian packages if missing, ~22 s cold,
~2-4 s warm) and stops it at the end, unless it was already running before the session (then it is left as found) or
REPDYN_KEEP_SLURM=1. Jobs found in the queue are held for the session and released at its end (stopping the cluster
cancels them, as launch/slurm_down.sh always does).

Wall time is dominated by waiting (Slurm's 1-minute minimum time limit, requeue restarts), not by compute, so the
long scenarios start in the background as soon as the session starts (`_start_background`) and the tests that check
them run last: the whole directory takes about as long as its slowest scenario.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from slurm_harness import (
    LAUNCH,
    RESUME_RUN,
    SLURM_DIR,
    TINY_TRAIN,
    TRAIN_APP,
    Canceller,
    Cluster,
    LocalResume,
    Process,
    RequeueScenario,
    Sweep,
    cluster_responds,
    start_local_run,
    start_sweep,
)

# Checked by tests that run last; started at session start (the reference run needs no cluster).
_LAST = ("failure_sweep", "train_failure_sweep", "requeue_run", "local_resume")
_BACKGROUND = (*_LAST, "reference_run")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Tests that check a background scenario go last, so the scenario overlaps with everything else.
    items.sort(key=lambda item: any(name in getattr(item, "fixturenames", ()) for name in _LAST))


@pytest.fixture(scope="session", autouse=True)
def _start_background(request: pytest.FixtureRequest) -> None:
    wanted = {name for item in request.session.items for name in getattr(item, "fixturenames", ())}
    for name in _BACKGROUND:
        if name in wanted:
            request.getfixturevalue(name)


@pytest.fixture(scope="session")
def work_dir(request: pytest.FixtureRequest) -> Iterator[Path]:
    """Scenario dirs live outside pytest's basetemp: other pytest sessions on a shared machine prune old basetemps,
    which would delete a run dir under a job still writing to it. Kept when a test failed, for the logs."""
    root = Path(tempfile.mkdtemp(prefix="repdyn-cluster-tests-"))
    yield root
    if request.session.testsfailed == 0:
        shutil.rmtree(root, ignore_errors=True)
    else:
        print(f"\n[cluster] scenario dirs kept in {root}")


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[Cluster]:
    env = dict(os.environ, REPDYN_SLURM_DIR=str(SLURM_DIR), SLURM_CONF=str(SLURM_DIR / "etc" / "slurm.conf"))
    # Jobs run the submitting interpreter (sys.executable): make sure it is this venv's.
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    already_up = cluster_responds(env)
    t0 = time.perf_counter()
    up = subprocess.run(["bash", str(LAUNCH / "slurm_up.sh")], env=env, capture_output=True, text=True, timeout=600)
    cold_start_s = time.perf_counter() - t0
    if up.returncode != 0:
        pytest.fail(f"launch/slurm_up.sh failed ({up.returncode}):\n{up.stdout}\n{up.stderr}")
    print(f"\n[cluster] slurm_up.sh took {cold_start_s:.1f} s ({'already up' if already_up else 'started'})")
    cluster = Cluster(state_dir=SLURM_DIR, env=env, cold_start_s=cold_start_s, started_here=not already_up)
    # Jobs already queued (a sweep left running, or recovered from the state of a cluster that was killed) would share
    # the 2 cores with the scenarios: set them aside for the session, give them back after.
    foreign = sorted(cluster.queued_jobs())
    if foreign:
        print(f"[cluster] holding {len(foreign)} queued job(s) for the session: {' '.join(foreign)}")
        cluster.set_aside(foreign)
    try:
        yield cluster
    finally:
        cluster.release(foreign)
        if cluster.started_here and os.environ.get("REPDYN_KEEP_SLURM") != "1":
            subprocess.run(["bash", str(LAUNCH / "slurm_down.sh")], env=env, capture_output=True, timeout=120)


@pytest.fixture(scope="session")
def failure_sweep(slurm_cluster: Cluster, work_dir: Path) -> Iterator[Sweep]:
    """Tiny-app sweep with timeout_min=1 and max_num_timeout=0, one member per `case` of tiny_app.py:
    #0 ok (completes), #1 cancel (scancelled as soon as it runs), #2 soft_timeout (gets Slurm's pre-timeout USR2;
    submitit refuses to requeue it), #3 hard_timeout (USR2 ignored: Slurm kills it at the limit, no result)."""
    sweep_dir = work_dir / "failure" / "sweep"
    overrides = [
        "hydra.launcher.timeout_min=1",
        "hydra.launcher.signal_delay_s=30",
        "hydra.launcher.max_num_timeout=0",
        "+case=ok,cancel,soft_timeout,hard_timeout",
    ]
    sweep = start_sweep(slurm_cluster, sweep_dir, overrides)
    # Cancel #1 right away: Slurm's pre-timeout USR2 reaches every member ~10-30 s after the start.
    sweep.canceller = Canceller(sweep=sweep, member=1, n_members=4)
    sweep.canceller.start(slurm_cluster)
    yield sweep
    sweep.stop(slurm_cluster)


@pytest.fixture(scope="session")
def train_failure_sweep(slurm_cluster: Cluster, work_dir: Path) -> Iterator[Sweep]:
    """Three real training runs, timeout_min=2, max_num_timeout=0: #0 is short and completes; #1 is long and is
    cancelled once it has logged; #2 is long and gets Slurm's pre-timeout USR2. slurmctld sends it once
    now ≥ end − signal_delay_s − 30 s (its 30 s check period), i.e. 70-100 s after the start: long after #0 ended."""
    sweep_dir = work_dir / "train_failure" / "sweep"
    overrides = [
        "hydra.launcher.timeout_min=2",
        "hydra.launcher.signal_delay_s=20",
        "hydra.launcher.max_num_timeout=0",
        *TINY_TRAIN,
        "logger=none",
        "train.total_frames=2048,10000000,10000512",
    ]
    sweep = start_sweep(slurm_cluster, sweep_dir, overrides, app=TRAIN_APP)
    sweep.canceller = Canceller(sweep=sweep, member=1, n_members=3, min_lines=1)  # mid-training
    sweep.canceller.start(slurm_cluster)
    yield sweep
    sweep.stop(slurm_cluster)


@pytest.fixture(scope="session")
def reference_run(work_dir: Path) -> Iterator[tuple[Process, Path]]:
    """The uninterrupted local run every resumed run must reproduce exactly."""
    run_dir = work_dir / "reference" / "run"
    proc = start_local_run(run_dir, (*RESUME_RUN, "logger=none"))
    yield proc, run_dir
    proc.kill()


@pytest.fixture(scope="session")
def local_resume(work_dir: Path) -> Iterator[LocalResume]:
    """The same run without Slurm and with offline W&B: SIGTERM after 4 log steps, then the same command again."""
    scenario = LocalResume(run_dir=work_dir / "local" / "run", overrides=(*RESUME_RUN, "logger=wandb"))
    scenario.start()
    yield scenario
    for proc in (scenario.first, scenario.second):
        if proc is not None:
            proc.kill()


@pytest.fixture(scope="session")
def requeue_run(slurm_cluster: Cluster, work_dir: Path) -> Iterator[RequeueScenario]:
    sweep_dir = work_dir / "requeue" / "sweep"
    # timeout_min ≥ 15: submitit counts a USR2 as a time-out (not a preemption) when timeout_min ≤ ~12.
    overrides = ["hydra.launcher.timeout_min=15", "hydra.launcher.max_num_timeout=0", *RESUME_RUN, "logger=none"]
    sweep = start_sweep(slurm_cluster, sweep_dir, overrides, app=TRAIN_APP)
    scenario = RequeueScenario(sweep=sweep, run_dir=sweep_dir / "0")
    scenario.start(slurm_cluster)
    yield scenario
    sweep.stop(slurm_cluster)
