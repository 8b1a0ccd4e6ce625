"""A tiny Hydra app standing in for a training run in the launcher tests: no torch, a few short steps.

It follows the run-dir contract of repdyn.train (history.jsonl, one line per step; summary.json at the end) so the
tests exercise the launcher and the cluster, not training. `case` picks a behaviour for failure tests:
ok (0.3 s), cancel / soft_timeout (300 s: until scancel or Slurm's pre-timeout signal), hard_timeout (300 s with
SIGUSR2 ignored, so neither submitit nor the app reacts and Slurm kills the job at its time limit).
"""

import json
import signal
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

CASES = {"ok": (0.3, False), "cancel": (300.0, False), "soft_timeout": (300.0, False), "hard_timeout": (300.0, True)}


@hydra.main(config_path=None, config_name=None, version_base="1.3")
def main(cfg: DictConfig) -> float:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    case = str(cfg.get("case", "ok"))
    if case not in CASES:
        raise ValueError(f"case: expected one of {sorted(CASES)}, got {case!r}")
    duration_s, block_usr2 = CASES[case]
    if block_usr2:
        signal.signal(signal.SIGUSR2, signal.SIG_IGN)  # replaces submitit's handler
    steps, x = int(cfg.get("steps", 3)), float(cfg.get("x", 0))
    with (run_dir / "history.jsonl").open("a") as f:
        for step in range(steps):
            time.sleep(duration_s / steps)
            f.write(json.dumps({"step": step, "value": x * step}) + "\n")
            f.flush()
    (run_dir / "summary.json").write_text(json.dumps({"status": "completed", "x": x}))
    return x * (steps - 1)


if __name__ == "__main__":
    main()
