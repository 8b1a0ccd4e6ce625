"""Locations shared by every entry point."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# One Hydra tree for every entry point (docs/architecture.md#layout); the package is installed editable.
CONF_DIR = REPO_ROOT / "conf"

HISTORY_FILE = "history.jsonl"
SUMMARY_FILE = "summary.json"
CONFIG_FILE = "config.yaml"  # the resolved config, beside Hydra's own .hydra/ folder
CHECKPOINT_DIR = "checkpoints"
PREVIOUS_PREFIX = "previous_"  # <run dir>/previous_<time>/: an earlier run's output moved aside (train.overwrite=true)
