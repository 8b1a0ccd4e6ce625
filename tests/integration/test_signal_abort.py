"""Issue "Reliability" item 7: a stop signal (Slurm's SIGTERM on requeue or preemption, then SIGKILL after KillWait)
that arrives during a long PPO batch abandons the batch and writes the checkpoint of the batch start at once, instead
of finishing the batch first; the resumed run ends with exactly the uninterrupted run's history."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

from repdyn import checkpoint as ckpt
from repdyn.paths import CHECKPOINT_DIR
from tests.conftest import history, run_cli, strip_perf, summary

# One CartPole batch of 256 steps; 300 epochs × 4 minibatches = 1,200 gradient steps make each batch last seconds.
LONG_BATCHES = (
    "env=classic/cartpole",
    "env.num_envs=1",
    "train.total_frames=512",
    "agent.epochs=300",
    "logger=none",
    "metrics=none",
    "train.progress=false",
)


def test_sigterm_mid_batch_checkpoints_the_batch_start_and_resumes_identically(tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "repdyn.train", *LONG_BATCHES, f"hydra.run.dir={run_dir}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "HYDRA_FULL_ERROR": "0"},
    )
    deadline = time.time() + 300
    while not (run_dir / CHECKPOINT_DIR / ckpt.step_file(256)).exists():
        assert proc.poll() is None and time.time() < deadline, proc.communicate()[0][-3000:]
        time.sleep(0.02)
    time.sleep(0.2)  # the first batch is logged and checkpointed: the second, long one is under way
    sent = time.time()
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=120)[0]
    print(f"\n[signal] exited {time.time() - sent:.2f} s after SIGTERM")
    assert proc.returncode == 128 + signal.SIGTERM, output[-3000:]

    done = summary(run_dir)
    assert (done["status"], done["env_steps"], done["batches"]) == ("interrupted", 256, 1), done
    state = ckpt.load(run_dir / CHECKPOINT_DIR)
    assert state["counters"]["env_steps"] == 256  # the state at the start of the abandoned batch
    assert [r["step"] for r in history(run_dir)] == [256]
    # The margin that matters: the checkpoint must be on disk well before Slurm's SIGKILL (KillWait = 10 s on the test
    # cluster, launch/slurm_up.sh), whatever is left of the batch.
    took = re.search(r"checkpoint of its start \(256 env steps\) written ([0-9.]+) s after the signal", output)
    assert took is not None and float(took.group(1)) < 10.0, output[-3000:]

    assert run_cli(*LONG_BATCHES, f"hydra.run.dir={run_dir}", timeout=300).returncode == 0
    reference = tmp_path / "reference"
    assert run_cli(*LONG_BATCHES, f"hydra.run.dir={reference}", timeout=300).returncode == 0
    resumed = strip_perf(history(run_dir))
    assert [r["step"] for r in resumed] == [256, 512]
    assert resumed == strip_perf(history(reference))
