"""Shared test helpers: run the real CLI in a subprocess, compose configs in-process, read run dirs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from repdyn.loggers.history import read_history

PERF_PREFIX = "perf/"  # wall-clock keys: the only non-deterministic values in a history


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600, env: dict | None = None):
    """``python -m repdyn.train <args>`` in a subprocess; returns CompletedProcess with text output."""
    full_env = {**os.environ, "WANDB_SILENT": "true", "HYDRA_FULL_ERROR": "0", **(env or {})}
    flags = [a for a in args if a.startswith("-")]  # Hydra flags (-m) go before the overrides
    overrides = [a for a in args if not a.startswith("-")]
    return subprocess.run(
        [sys.executable, "-m", "repdyn.train", *flags, "train.progress=false", *overrides],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


def history(run_dir: Path) -> list[dict]:
    return read_history(Path(run_dir) / "history.jsonl")


def summary(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "summary.json").read_text())


def strip_perf(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.startswith(PERF_PREFIX)} for r in records]


@pytest.fixture
def compose():
    """Compose the train config in-process: ``compose(["env=classic/cartpole", ...])`` → DictConfig."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from repdyn.config import register_configs
    from repdyn.paths import CONF_DIR

    register_configs()

    def _compose(overrides: list[str]):
        GlobalHydra.instance().clear()
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            return hydra_compose("train", overrides=overrides)

    yield _compose
    GlobalHydra.instance().clear()


@pytest.fixture
def compose_hydra():
    """Compose like the CLI does, with the ``hydra`` node the pre-run check reads."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from repdyn.config import register_configs
    from repdyn.paths import CONF_DIR

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        yield lambda overrides: compose("train", overrides=overrides, return_hydra_config=True)
    GlobalHydra.instance().clear()
