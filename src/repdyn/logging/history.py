"""Local append-only run history.

Format (documented in README, read by ``repdyn.analysis``): ``<run_dir>/history.jsonl``, one JSON object per log step,
``{"step": <env steps>, "<scope>/<network>/<metric>": <float>, ...}``. Lines are appended and flushed (and fsynced)
at every log step, so a crash or a preemption loses nothing already logged. Non-finite floats are written as the
strings ``"nan"``, ``"inf"``, ``"-inf"`` so every line stays valid JSON. On resume, the file is truncated back to the
last step the checkpoint knows (``truncate_after``), so a requeued run has neither duplicated nor missing steps.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any


def _encode(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return v


def _decode(v: Any) -> Any:
    if isinstance(v, str) and v in ("nan", "inf", "-inf"):
        return float(v)
    return v


class History:
    """Append-only JSONL writer; every :meth:`append` is flushed to disk before it returns."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - held for the run's lifetime

    def append(self, step: int, record: Mapping[str, Any]) -> None:
        line = json.dumps({"step": int(step), **{k: _encode(v) for k, v in record.items()}}, allow_nan=False)
        self._fh.write(line + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    @staticmethod
    def truncate_after(path: str | os.PathLike, last_step: int) -> int:
        """Drop every record with ``step > last_step`` (and a torn last line); return the number of records kept."""
        path = Path(path)
        if not path.exists():
            return 0
        kept = [rec for rec in read_history(path) if rec["step"] <= last_step]
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            for rec in kept:
                fh.write(json.dumps({k: _encode(v) for k, v in rec.items()}, allow_nan=False) + "\n")
        os.replace(tmp, path)
        return len(kept)


def iter_history(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """Yield the records of a history file in order; a torn final line (crash mid-write) is skipped."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            yield {k: _decode(v) for k, v in rec.items()}


def read_history(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All records of a history file (see module docstring for the format)."""
    return list(iter_history(path))


def merge_records(path: str | os.PathLike, updates: Mapping[int, Mapping[str, Any]]) -> None:
    """Merge ``{step: record}`` into a history file: keys are added to the record at that step, or a new record is
    inserted in step order; the file is rewritten atomically (used by offline probes writing "to the same history")."""
    path = Path(path)
    records = {r["step"]: r for r in read_history(path)} if path.exists() else {}
    for step, rec in updates.items():
        records.setdefault(int(step), {"step": int(step)}).update(rec)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for step in sorted(records):
            fh.write(json.dumps({k: _encode(v) for k, v in records[step].items()}, allow_nan=False) + "\n")
    os.replace(tmp, path)
