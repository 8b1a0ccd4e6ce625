"""Progress bars drawn only on a terminal: in a Slurm or CI log, tqdm's carriage-return redraws pile up into one huge
line (a run's ``.submitit/*.err`` held megabytes of them), so every bar in repdyn goes through :func:`progress_bar`."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from tqdm import tqdm


def show_progress(enabled: bool, stream: Any) -> bool:
    """Whether to draw a bar on ``stream``: asked for, and ``stream`` is a terminal."""
    isatty = getattr(stream, "isatty", None)
    return bool(enabled) and callable(isatty) and bool(isatty())


def progress_bar(iterable: Iterable[Any] | None = None, *, enabled: bool = True, **kwargs: Any) -> tqdm:
    """``tqdm(iterable, **kwargs)`` on stderr, disabled unless ``enabled`` and stderr is a terminal."""
    return tqdm(iterable, disable=not show_progress(enabled, sys.stderr), **kwargs)
