"""Load run histories and resolved configs into one table (local run dirs; W&B runs in :mod:`repdyn.analysis.wandb_io`).

A run dir holds ``history.jsonl`` (see :mod:`repdyn.loggers.history`), ``config.yaml`` (resolved config),
``summary.json`` and ``.hydra/overrides.yaml``. A sweep dir is Hydra's multirun dir (``<sweep>/<job_num>/``); any
folder is searched recursively for ``history.jsonl``.

The result is a :class:`RunSet`: ``history`` is one long-wide frame (columns ``run``, ``group``, ``step`` and one
column per log key), ``runs`` one row per run (path, group, seed, horizon, feature width, status, config values).
Groups come from ``group_by`` dotted config keys (``agent.epochs``); when none is given they are inferred from the
Hydra overrides that differ between runs, ignoring ``seed`` (so ``-m agent.epochs=1,2 seed=0,1`` groups by epochs).
"""

from __future__ import annotations

import difflib
import json
import os
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, ListConfig, OmegaConf

from repdyn.analysis.members import sweep_notes
from repdyn.loggers.history import HistoryError, iter_history
from repdyn.paths import CONFIG_FILE, HISTORY_FILE, PREVIOUS_PREFIX, SUMMARY_FILE
from repdyn.progress import progress_bar


class AnalysisError(ValueError):
    """A user-caused problem with the runs or options given to the analysis (printed without a traceback)."""


# Keys that must agree across the runs of one analysis: mixing environments or algorithms in one curve is a mistake.
DEFAULT_COMPAT_KEYS = ("env.id", "agent.name")
SEED_KEYS = ("seed",)
_MISSING = object()


@dataclass
class RunRecord:
    """One run as read from disk or W&B, before it joins the table."""

    run_id: str
    location: str
    config: DictConfig
    history: pd.DataFrame
    overrides: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunSet:
    """All runs of one analysis in one table (see module docstring)."""

    history: pd.DataFrame
    runs: pd.DataFrame
    group_by: list[str]
    source: str = "local"
    configs: dict[str, DictConfig] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # about the runs themselves (e.g. sweep members left out)

    @property
    def metric_keys(self) -> list[str]:
        return [c for c in self.history.columns if c not in ("run", "group", "step")]

    @property
    def groups(self) -> list[str]:
        return list(dict.fromkeys(self.runs.sort_values("group_order")["group"]))

    def run_frame(self, run_id: str) -> pd.DataFrame:
        """Rows of one run, sorted by step."""
        return self.history[self.history["run"] == run_id].sort_values("step").reset_index(drop=True)

    def has_metric(self, key: str) -> pd.Series:
        """Per run: does it log at least one finite value of ``key``?"""
        if key not in self.history.columns:
            return pd.Series(False, index=self.runs.index)
        finite = np.isfinite(self.history[key].to_numpy(dtype=float))
        return (
            pd.Series(finite).groupby(self.history["run"].to_numpy()).any().reindex(self.runs.index, fill_value=False)
        )

    def require_metrics(self, keys: Iterable[str]) -> None:
        """Raise one :class:`AnalysisError` listing every (run, metric) pair with no finite value."""
        problems = []
        for key in keys:
            has = self.has_metric(key)
            missing = has.index[~has].tolist()
            if missing:
                close = difflib.get_close_matches(key, self.metric_keys, n=3, cutoff=0.6)
                hint = f" (did you mean {close}?)" if close else ""
                problems.append(f"  {key!r}: missing in {len(missing)}/{len(has)} run(s) {missing[:5]}{hint}")
        if problems:
            raise AnalysisError("metrics: requested metric(s) not logged by every run:\n" + "\n".join(problems))


def _natural_key(path: Path) -> list[Any]:
    # Hydra job folders are 0, 1, ..., 10: sort numerically, not as strings
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


def _moved_aside(history: Path, root: Path) -> bool:
    """Under ``<run dir>/previous_<time>/`` (``train.overwrite=true``): an earlier run, not a member of the sweep."""
    return any(part.startswith(PREVIOUS_PREFIX) for part in history.relative_to(root).parts[:-1])


def find_run_dirs(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Run dirs (folders holding ``history.jsonl``) under ``paths``: run dirs, sweep dirs or any folder."""
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    if not paths:
        raise AnalysisError("paths: give at least one sweep dir or run dir")
    found: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise AnalysisError(f"paths: {p} does not exist")
        if p.is_file():
            if p.name != HISTORY_FILE:
                raise AnalysisError(f"paths: {p} is a file; give a run dir, a sweep dir or a {HISTORY_FILE}")
            found.append(p.parent)
        elif (p / HISTORY_FILE).is_file():
            found.append(p)
        else:
            found.extend(sorted((h.parent for h in p.rglob(HISTORY_FILE) if not _moved_aside(h, p)), key=_natural_key))
    found = list(dict.fromkeys(d.resolve() for d in found))
    if not found:
        raise AnalysisError(
            f"paths: no {HISTORY_FILE} under {[str(p) for p in paths]} "
            "(expected a run dir or a Hydra multirun dir <sweep>/<job_num>/)"
        )
    return found


def _read_config(run_dir: Path) -> DictConfig:
    for candidate in (run_dir / CONFIG_FILE, run_dir / ".hydra" / "config.yaml"):
        if candidate.is_file():
            cfg = OmegaConf.load(candidate)
            if not isinstance(cfg, DictConfig):
                raise AnalysisError(f"{candidate} is not a mapping")
            return cfg
    return OmegaConf.create({})


def _read_overrides(run_dir: Path) -> list[str]:
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return []
    loaded = OmegaConf.load(path)
    return [str(o) for o in loaded] if isinstance(loaded, ListConfig) else []


def _read_summary(run_dir: Path) -> dict[str, Any]:
    path = run_dir / SUMMARY_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return {"status": "unreadable summary.json"}


def history_frame(records: Iterable[dict[str, Any]], step_key: str = "step") -> pd.DataFrame:
    """Records → frame with a numeric ``step`` column and float metric columns (non-numeric values become NaN);
    a repeated step keeps its last record (what a resumed run ends with)."""
    df = pd.DataFrame.from_records(list(records))
    if df.empty:
        return pd.DataFrame({"step": pd.Series(dtype=float)})
    if step_key not in df.columns:
        raise AnalysisError(f"history has no {step_key!r} column; columns: {sorted(df.columns)[:10]}")
    if step_key != "step":
        df = df.drop(columns=[c for c in ("step",) if c in df.columns]).rename(columns={step_key: "step"})
    df = df[[c for c in df.columns if not str(c).startswith("_")]]
    df = df.apply(pd.to_numeric, errors="coerce").astype(float)
    df = df[df["step"].notna()].drop_duplicates("step", keep="last").sort_values("step")
    return df.reset_index(drop=True)


def read_run(run_dir: str | os.PathLike, run_id: str | None = None) -> RunRecord:
    """One local run dir → :class:`RunRecord`."""
    run_dir = Path(run_dir)
    try:
        frame = history_frame(iter_history(run_dir / HISTORY_FILE))
    except HistoryError as e:  # one message naming file and line, printed by the CLI without a traceback
        raise AnalysisError(str(e)) from None
    return RunRecord(
        run_id=run_id or run_dir.name,
        location=str(run_dir),
        config=_read_config(run_dir),
        history=frame,
        overrides=_read_overrides(run_dir),
        summary=_read_summary(run_dir),
    )


def _parse_override(o: str) -> tuple[str, str] | None:
    if "=" not in o or o.startswith("~"):
        return None
    key, value = o.split("=", 1)
    return key.lstrip("+"), value


def _natural_value(v: Any) -> tuple[int, Any]:
    if isinstance(v, bool):
        return (1, str(v))
    if isinstance(v, int | float):
        return (0, float(v))
    try:
        return (0, float(v))
    except (TypeError, ValueError):
        return (1, str(v))


def infer_group_by(records: Sequence[RunRecord]) -> list[str]:
    """Override keys whose values differ between runs, except seeds and ``hydra.*`` (sweep bookkeeping)."""
    values: dict[str, set[str]] = {}
    for rec in records:
        for o in rec.overrides:
            kv = _parse_override(o)
            if kv and kv[0] not in SEED_KEYS and not kv[0].startswith("hydra."):
                values.setdefault(kv[0], set()).add(kv[1])
    keys_per_run = [{kv[0] for o in r.overrides if (kv := _parse_override(o))} for r in records]
    # a key that only some runs override also splits them (the others use the default)
    return sorted(k for k, v in values.items() if len(v) > 1 or any(k not in ks for ks in keys_per_run))


def _select(cfg: DictConfig, key: str, overrides: list[str]) -> Any:
    v = OmegaConf.select(cfg, key, default=_MISSING, throw_on_missing=False)
    if v is _MISSING:
        return _override_value(overrides, key, _MISSING)
    if isinstance(v, DictConfig | ListConfig):
        return OmegaConf.to_container(v, resolve=True)
    return v


def _override_value(overrides: list[str], key: str, default: Any) -> Any:
    """The text an override assigned to ``key`` (``[aux_random_cumulants]`` for ``intervention=[...]``), else
    ``default``. Labels a config-group value (a mapping of whole configs) by what the sweep varied."""
    for o in overrides:
        kv = _parse_override(o)
        if kv and kv[0] == key:
            return kv[1]
    return default


def _feature_width(cfg: DictConfig) -> float:
    hidden = OmegaConf.select(cfg, "model.hidden", default=None)
    if isinstance(hidden, ListConfig | list) and len(hidden) > 0:
        return float(hidden[-1])
    if isinstance(hidden, int):
        return float(hidden)
    return float("nan")


def build_runset(
    records: Sequence[RunRecord],
    *,
    group_by: str | Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    compat_keys: Sequence[str] = DEFAULT_COMPAT_KEYS,
    horizon_key: str = "train.total_frames",
    feature_width: float | None = None,
    source: str = "local",
) -> RunSet:
    """Join run records into a :class:`RunSet`, checking compatibility and requested metrics first."""
    records = _non_empty(records)
    if isinstance(group_by, str):
        group_by = [k for k in group_by.split(",") if k]
    keys = list(group_by) if group_by else infer_group_by(records)
    _check_compatible(records, [k for k in compat_keys if k not in keys])  # grouping by a key compares on purpose

    rows = [_run_row(r, keys, horizon_key, feature_width) for r in records]
    runs = pd.DataFrame(rows).set_index("run", drop=False)
    # a swept override names its group unless runs with the same override differ in that config (other overrides
    # changed its fields): then those runs are labelled by the full values, so no group mixes two configs
    mixed = runs.groupby("group")["_full"].transform("nunique") > 1
    runs.loc[mixed, "group"] = runs.loc[mixed, "_full_label"]
    runs = runs.drop(columns=["_full", "_full_label"])
    frames = []
    for r in records:
        f = r.history.copy()
        f.insert(0, "group", runs.loc[r.run_id, "group"])
        f.insert(0, "run", r.run_id)
        frames.append(f)
    order = {s: i for i, s in enumerate(sorted(set(runs["_sort"])))}
    runs["group_order"] = runs["_sort"].map(order)
    runs = runs.drop(columns="_sort").rename_axis(None)
    history = pd.concat(frames, ignore_index=True, sort=False)
    rs = RunSet(history=history, runs=runs, group_by=keys, source=source, configs={r.run_id: r.config for r in records})
    if metrics:
        rs.require_metrics(metrics)
    return rs


def _non_empty(records: Sequence[RunRecord]) -> list[RunRecord]:
    """The records with a history (a warning names the others); AnalysisError if none has one or ids repeat."""
    records = list(records)
    empty = [r.run_id for r in records if r.history.empty or len(r.history.columns) <= 1]
    if empty and len(empty) == len(records):
        raise AnalysisError(f"paths: every run has an empty history ({empty[:5]}...): nothing to analyse")
    if empty:
        warnings.warn(f"skipping {len(empty)} run(s) with an empty history: {empty[:5]}", stacklevel=3)
        records = [r for r in records if r.run_id not in empty]
    if len({r.run_id for r in records}) != len(records):
        raise AnalysisError("run ids are not unique; pass run dirs with distinct names")
    return records


def _check_compatible(records: Sequence[RunRecord], keys: Sequence[str]) -> None:
    """AnalysisError when the runs hold more than one value of any of ``keys`` (e.g. different envs)."""
    for key in keys:
        vals: dict[str, list[str]] = {}
        for r in records:
            v = _select(r.config, key, r.overrides)
            if v is not _MISSING and v is not None:
                vals.setdefault(str(v), []).append(r.run_id)
        if len(vals) > 1:
            detail = "; ".join(f"{v}: {ids[:3]}" for v, ids in vals.items())
            raise AnalysisError(
                f"runs mix different {key} ({detail}): analyse one sweep at a time, or pass group_by={key} "
                "to compare them on purpose"
            )


def _run_row(r: RunRecord, keys: Sequence[str], horizon_key: str, feature_width: float | None) -> dict[str, Any]:
    """One row of ``RunSet.runs``: group label and values, seed, horizon, status, location."""
    full, gvals = [], []
    for key in keys:
        v = _select(r.config, key, r.overrides)
        if v is _MISSING:
            raise AnalysisError(
                f"group_by: run {r.run_id!r} has no config key {key!r} "
                f"(top-level keys: {sorted(map(str, r.config.keys()))})"
            )
        full.append(v)
        gvals.append(v if not isinstance(v, dict | list) else _override_value(r.overrides, key, v))
    label = _label(keys, gvals)
    seed = _select(r.config, "seed", r.overrides)
    horizon = _select(r.config, horizon_key, r.overrides)
    last_step = float(r.history["step"].max())
    return {
        "run": r.run_id,
        "group": label,
        "_sort": tuple(_natural_value(v) for v in gvals),
        "seed": None if seed is _MISSING else seed,
        "horizon": float(horizon) if horizon not in (_MISSING, None) else last_step,
        "last_step": last_step,
        "width": float(feature_width) if feature_width else _feature_width(r.config),
        "status": r.summary.get("status", "unknown"),
        "location": r.location,
        "_full": repr(full),
        "_full_label": _label(keys, full),
        **{f"cfg:{k}": v for k, v in zip(keys, gvals, strict=True)},
    }


def _label(keys: Sequence[str], values: Sequence[Any]) -> str:
    return ", ".join(f"{k.split('.')[-1]}={v}" for k, v in zip(keys, values, strict=True)) if keys else "all"


def _run_ids(dirs: Sequence[Path]) -> list[str]:
    if len(dirs) == 1:
        return [dirs[0].name]
    root = Path(os.path.commonpath([str(d) for d in dirs]))
    return [str(d.relative_to(root)) for d in dirs]


def load_runs(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    group_by: str | Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    compat_keys: Sequence[str] = DEFAULT_COMPAT_KEYS,
    horizon_key: str = "train.total_frames",
    feature_width: float | None = None,
    progress: bool = True,
) -> RunSet:
    """Load every run under ``paths`` (run dirs, sweep dirs, or folders searched recursively) into a :class:`RunSet`.

    Raises :class:`AnalysisError` for an empty dir, runs mixing ``compat_keys`` values (different env / agent), a
    ``group_by`` key some run lacks, or a requested metric some run never logged."""
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    dirs = find_run_dirs(paths)
    ids = _run_ids(dirs)
    records = [
        read_run(d, rid)
        for d, rid in progress_bar(
            list(zip(dirs, ids, strict=True)), enabled=progress, desc="loading runs", unit="run", leave=False
        )
    ]
    runset = build_runset(
        records,
        group_by=group_by,
        metrics=metrics,
        compat_keys=compat_keys,
        horizon_key=horizon_key,
        feature_width=feature_width,
        source="local",
    )
    runset.notes = sweep_notes(paths, dirs)  # members that are not among the runs, and why
    return runset
