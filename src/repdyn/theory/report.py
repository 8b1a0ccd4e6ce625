"""Writing study outputs: tables as CSV plus a Markdown rendering, the resolved config and a summary, in the run dir.

Shared by the theory and supervised studies so every study's run dir looks the same:
``<run_dir>/config.yaml``, ``<run_dir>/summary.json``, ``<run_dir>/<table>.csv`` + ``<table>.md``,
``<run_dir>/<figure>.png``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from repdyn.paths import CONFIG_FILE, SUMMARY_FILE


def hydra_run_dir() -> Path:
    """The current Hydra run dir (the job's output dir; in a multirun, this job's sweep subdir)."""
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)


def save_config(cfg: DictConfig, run_dir: str | os.PathLike) -> Path:
    """Write the resolved config to ``<run_dir>/config.yaml`` (the run-dir contract)."""
    path = Path(run_dir) / CONFIG_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(OmegaConf.to_yaml(cfg, resolve=True), encoding="utf-8")
    return path


def _json_safe(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    if isinstance(v, (np.floating, float)):
        v = float(v)
        return v if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    if isinstance(v, np.integer):
        return int(v)
    return v


def write_summary(run_dir: str | os.PathLike, summary: Mapping[str, Any]) -> Path:
    """Write ``<run_dir>/summary.json`` (non-finite floats as strings, as in the history format)."""
    path = Path(run_dir) / SUMMARY_FILE
    path.write_text(json.dumps(_json_safe(dict(summary)), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return path


def _fmt_cell(v: Any, float_fmt: str) -> str:
    if isinstance(v, (float, np.floating)):
        return format(float(v), float_fmt) if math.isfinite(float(v)) else str(float(v))
    return str(v)


def to_markdown(df: pd.DataFrame, float_fmt: str = ".4g", index: bool = True) -> str:
    """A GitHub Markdown table of ``df`` (no ``tabulate`` dependency)."""
    cols = ([df.index.name or ""] if index else []) + [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for idx, row in df.iterrows():
        cells = ([str(idx)] if index else []) + [_fmt_cell(v, float_fmt) for v in row.tolist()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_table(
    df: pd.DataFrame,
    run_dir: str | os.PathLike,
    name: str,
    *,
    title: str | None = None,
    float_fmt: str = ".4g",
    index: bool = True,
    md_df: pd.DataFrame | None = None,
) -> tuple[Path, Path]:
    """Write ``df`` as ``<run_dir>/<name>.csv`` (full precision) and ``<run_dir>/<name>.md`` (rounded, with a title;
    ``md_df`` replaces ``df`` in the Markdown, e.g. a view with "mean ± std" strings instead of numeric columns)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = run_dir / f"{name}.csv", run_dir / f"{name}.md"
    df.to_csv(csv_path, index=index)
    shown = df if md_df is None else md_df
    text = (f"### {title}\n\n" if title else "") + to_markdown(shown, float_fmt=float_fmt, index=index)
    md_path.write_text(text, encoding="utf-8")
    return csv_path, md_path


def mean_std_str(values: Sequence[float] | np.ndarray, fmt: str = ".3g") -> str:
    """``"mean ± std"`` of finite values (sample std, ddof=1; ``nan`` when fewer than two finite values)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return "nan"
    std = float(x.std(ddof=1)) if x.size > 1 else float("nan")
    return f"{format(float(x.mean()), fmt)} ± {format(std, fmt)}"
