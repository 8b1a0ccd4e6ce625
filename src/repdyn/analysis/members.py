"""Which members of a sweep an analysis covers, and why the others are not in it.

An analysis reads the run dirs that hold a history; a sweep member that was refused (``status: invalid``), crashed
before its first record, was cancelled by Slurm before it started, or never got a run dir would otherwise drop out
silently and the group statistics would rest on fewer seeds than the reader assumes. The expected members come
from the sweep's own record (``multirun.yaml``, expanded like Hydra's basic sweeper); their fate from each run dir's
``summary.json`` and, for the submitit launchers, ``sweep_status.json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from repdyn.paths import HISTORY_FILE, SUMMARY_FILE

MULTIRUN_FILE = "multirun.yaml"
STATUS_FILE = "sweep_status.json"  # written by repdyn.launchers (kept in sync there)


@dataclass(frozen=True)
class Member:
    """One expected sweep member: its job number, overrides, outcome and whether the analysis read its history."""

    num: int
    overrides: tuple[str, ...]
    status: str  # completed | diverged | failed | invalid | interrupted | running | missing | <Slurm outcome>
    reason: str
    analysed: bool


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def expected_jobs(sweep_dir: Path) -> list[tuple[str, ...]] | None:
    """The override lists Hydra's basic sweeper launched for ``<sweep_dir>/multirun.yaml``; None if it is missing
    or was made by another sweeper."""
    from repdyn.preflight import sweep_jobs

    path = sweep_dir / MULTIRUN_FILE
    if not path.is_file():
        return None
    jobs = sweep_jobs(OmegaConf.load(path))
    return None if jobs is None else [tuple(j) for j in jobs]


def _member_dirs(sweep_dir: Path) -> dict[tuple[str, ...], Path]:
    """Overrides → run dir, for every run dir directly under the sweep dir (from ``.hydra/overrides.yaml``, or the
    ``summary.json`` of a member a launcher skipped before Hydra wrote anything)."""
    found: dict[tuple[str, ...], Path] = {}
    for d in sorted(p for p in sweep_dir.iterdir() if p.is_dir()):
        if (d / ".hydra" / "overrides.yaml").is_file():
            found[tuple(str(o) for o in OmegaConf.load(d / ".hydra" / "overrides.yaml"))] = d
        elif isinstance(summary := _read_json(d / SUMMARY_FILE), dict) and "overrides" in summary:
            found[tuple(summary["overrides"])] = d
    return found


def _outcome(run_dir: Path | None, launcher: dict[str, Any] | None) -> tuple[str, str]:
    summary = _read_json(run_dir / SUMMARY_FILE) if run_dir is not None else None
    if isinstance(summary, dict) and "status" in summary:
        status = str(summary["status"])
        if status == "diverged":
            return status, f"non-finite {summary.get('diverged_key')} at step {summary.get('diverged_at_step')}"
        return status, str(summary.get("reason") or summary.get("error") or "")
    if launcher is not None:
        return str(launcher.get("status", "missing")).lower(), str(launcher.get("reason", ""))
    if run_dir is None:
        return "missing", "no run dir"
    return "missing", f"no {SUMMARY_FILE} in {run_dir}"


def sweep_members(sweep_dir: str | Path, analysed: Iterable[Path]) -> list[Member] | None:
    """Every member the sweep in ``sweep_dir`` was meant to run, with its outcome; ``analysed`` are the run dirs the
    analysis read. None when ``sweep_dir`` is not a Hydra multirun dir of the basic sweeper."""
    sweep_dir = Path(sweep_dir)
    jobs = expected_jobs(sweep_dir)
    if jobs is None:
        return None
    dirs = _member_dirs(sweep_dir)
    launched = _read_json(sweep_dir / STATUS_FILE)
    by_overrides = {tuple(r["overrides"]): r for r in launched} if isinstance(launched, list) else {}
    read = {Path(p).resolve() for p in analysed}
    members = []
    for num, job in enumerate(jobs):
        run_dir = dirs.get(job)
        status, reason = _outcome(run_dir, by_overrides.get(job))
        has_history = run_dir is not None and (run_dir / HISTORY_FILE).is_file()
        members.append(Member(num, job, status, reason, has_history and run_dir.resolve() in read))
    return members


def _varying(members: Sequence[Member]) -> dict[int, str]:
    """Per member, only the overrides that differ between members (the common ones say nothing)."""
    common = set.intersection(*(set(m.overrides) for m in members)) if members else set()
    return {m.num: " ".join(o for o in m.overrides if o not in common) for m in members}


def member_note(members: Sequence[Member]) -> str | None:
    """One line for the report: how many members were analysed and, for each other than completed, why; None when
    every member completed and was analysed."""
    if all(m.status == "completed" and m.analysed for m in members):
        return None
    shown = _varying(members)
    parts = [f"sweep members: {sum(m.analysed for m in members)} of {len(members)} analysed"]
    for m in members:
        if m.status != "completed" or not m.analysed:
            label = "completed, not analysed" if m.status == "completed" else m.status
            parts.append(f"#{m.num} {label} ({shown[m.num]}): {m.reason}".rstrip(": "))
    return "; ".join(parts)


def sweep_notes(paths: Sequence[str | Path], analysed: Iterable[Path]) -> list[str]:
    """The :func:`member_note` of every sweep dir among ``paths``."""
    analysed = list(analysed)
    notes = []
    for p in map(Path, paths):
        members = sweep_members(p, analysed) if p.is_dir() else None
        note = member_note(members) if members else None
        if note:
            notes.append(note)
    return notes
