"""repdyn: representation dynamics in deep RL (feature-rank collapse, dead units, plasticity, trust region, NTK)."""

__version__ = "0.1.0"
