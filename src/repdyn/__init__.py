"""repdyn: representation dynamics in deep RL (feature-rank collapse, dead units, plasticity, trust region, NTK)."""

import os

# torchrl logs every env-spec check and buffer allocation at INFO; keep run logs to what a researcher reads.
os.environ.setdefault("RL_LOGGING_LEVEL", "WARNING")

__version__ = "0.1.0"
