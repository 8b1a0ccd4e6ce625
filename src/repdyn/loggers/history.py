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


class HistoryError(ValueError):
    """A history file with a record that cannot be read: names the file and line, so it can be fixed by hand."""


_FIX = "fix or delete that line (records are one JSON object per line with an integer 'step')"


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
        _rewrite(path, kept)
        return len(kept)


def _parse_line(raw: bytes) -> dict[str, Any]:
    """One history line → record; raises ValueError saying what is wrong with it (the caller adds file and line)."""
    raw = raw.strip()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"not UTF-8 text (byte {raw[e.start]:#04x} at column {e.start + 1}): binary data") from e
    try:
        rec = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"not valid JSON ({e.msg} at column {e.colno})") from e
    if not isinstance(rec, dict):
        raise ValueError(f"not a JSON object but {type(rec).__name__}")
    if "step" not in rec:
        raise ValueError(f"record has no 'step' (keys: {sorted(rec)[:5]})")
    step = rec["step"]
    if not isinstance(step, int) or isinstance(step, bool):
        raise ValueError(f"'step' is {step!r}, not an integer")
    return {k: _decode(v) for k, v in rec.items()}


def iter_history(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """Yield the records of a history file in order.

    A bad final line without its newline is a torn append (a crash mid-write) and is skipped; any other bad line
    means the file was damaged or edited, which neither a resume nor an analysis may paper over (a dropped record is
    a silent gap), so it raises :class:`HistoryError` naming the file and line."""
    pending: tuple[int, bytes] | None = None  # the latest non-blank line, held back until we know it is not last
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            if pending is not None:
                yield _record(path, *pending)
            pending = lineno, raw
    if pending is not None:
        lineno, raw = pending
        if raw.endswith(b"\n"):
            yield _record(path, lineno, raw)
            return
        try:  # no newline: the final append may have been cut short by a crash
            yield _parse_line(raw)
        except ValueError:
            return


def _record(path: str | os.PathLike, lineno: int, raw: bytes) -> dict[str, Any]:
    try:
        return _parse_line(raw)
    except ValueError as e:
        raise HistoryError(f"{path}:{lineno}: {e}; {_FIX}") from None


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
    _rewrite(path, [records[step] for step in sorted(records)])


def _rewrite(path: Path, records: list[dict[str, Any]]) -> None:
    """Replace a history file by ``records`` atomically (temp file, fsync, rename): a crash keeps the old file."""
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps({k: _encode(v) for k, v in rec.items()}, allow_nan=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
