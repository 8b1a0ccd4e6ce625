"""One call feeds every sink: :meth:`Logger.log` writes the local history first, then mirrors to W&B."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from repdyn.loggers.history import History
from repdyn.loggers.secrets import redact

__all__ = ["Logger", "first_non_finite", "redact", "write_json"]


def first_non_finite(record: Mapping[str, Any]) -> str | None:
    """The first key whose value is a non-finite float, or None."""
    for k, v in record.items():
        if isinstance(v, float) and not math.isfinite(v):
            return k
    return None


class Logger:
    def __init__(self, history: History, sinks: list[Any]) -> None:
        self.history, self.sinks = history, sinks

    def log(self, step: int, record: Mapping[str, Any]) -> None:
        self.history.append(step, record)
        for s in self.sinks:
            s.log(step, record)

    def close(self, summary: Mapping[str, Any]) -> None:
        self.history.close()
        for s in self.sinks:
            s.finish(summary)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Atomic JSON write (tmp file + rename), so a kill never leaves a torn summary."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(redact(obj), indent=2, default=str, allow_nan=True))
    os.replace(tmp, path)
