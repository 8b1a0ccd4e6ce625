"""Benchmarks that print ratios measured in one run (ours vs a reference): ``python -m repdyn.bench <name>``."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def compose_train(overrides: list[str]) -> Any:
    """The ``repdyn.train`` config for ``overrides``, composed in-process as the CLI would (benchmarks build runs and
    their pieces from it)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from repdyn.config import register_configs
    from repdyn.paths import CONF_DIR

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=overrides)


def median_time(fn: Callable[[], object], n: int, warmup: int = 2) -> float:
    """Median seconds per call of ``fn`` over ``n`` timed calls, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)
