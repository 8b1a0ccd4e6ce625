"""Fixtures for tests against a real single-node Slurm cluster (launch/slurm_up.sh), marked `cluster`.

One cluster serves the whole session: `slurm_cluster` starts it (installing the Debian packages if missing, ~22 s cold,
~2-3 s warm) and stops it at the end, unless it was already running before the session (then it is left as found) or
REPDYN_KEEP_SLURM=1. Sweeps that take long by design (time-limit kills need Slurm's 1-minute minimum) are started in
the background as soon as the cluster is up, so they overlap with the other tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from slurm_harness import LAUNCH, SLURM_DIR, Cluster, Sweep, cluster_responds, start_sweep


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Tests that wait on a background sweep go last, so the sweep overlaps with everything else.
    items.sort(key=lambda item: item.get_closest_marker("waits_on_background") is not None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "waits_on_background: runs last; waits on a sweep started at session start")


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
    try:
        yield cluster
    finally:
        if cluster.started_here and os.environ.get("REPDYN_KEEP_SLURM") != "1":
            subprocess.run(["bash", str(LAUNCH / "slurm_down.sh")], env=env, capture_output=True, timeout=120)


@pytest.fixture(scope="session")
def failure_sweep(slurm_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sweep]:
    """Tiny-app sweep with timeout_min=1 and max_num_timeout=0, one member per `case` of tiny_app.py:
    #0 ok (completes), #1 cancel (runs until the test scancels it), #2 soft_timeout (gets Slurm's pre-timeout USR2;
    submitit refuses to requeue it), #3 hard_timeout (USR2 ignored: Slurm kills it at the limit, no result)."""
    sweep_dir = tmp_path_factory.mktemp("failure") / "sweep"
    overrides = [
        "hydra.launcher.timeout_min=1",
        "hydra.launcher.signal_delay_s=30",
        "hydra.launcher.max_num_timeout=0",
        "+case=ok,cancel,soft_timeout,hard_timeout",
    ]
    sweep = start_sweep(slurm_cluster, sweep_dir, overrides)
    yield sweep
    sweep.stop(slurm_cluster)


@pytest.fixture(scope="session", autouse=True)
def _start_background_sweeps(request: pytest.FixtureRequest) -> None:
    if any(item.get_closest_marker("waits_on_background") for item in request.session.items):
        request.getfixturevalue("failure_sweep")
