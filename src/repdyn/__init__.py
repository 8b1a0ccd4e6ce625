"""repdyn: representation dynamics in deep RL (feature-rank collapse, dead units, plasticity, trust region, NTK)."""

import os

# Idle OpenMP threads of torch spin by default and starve ale-py's emulator threads and the envs on a 2-core machine:
# measured 20-37 vs 113-471 ALE collection steps/s under load (python -m repdyn.bench atari). Must be set before torch
# is imported, which every entry point does after importing this package.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# torchrl logs every env-spec check and buffer allocation at INFO; keep run logs to what a researcher reads.
os.environ.setdefault("RL_LOGGING_LEVEL", "WARNING")

__version__ = "0.1.0"
