"""Running a study and writing its outputs: tables as CSV plus a Markdown rendering, the resolved config and a
summary, in the run dir.

Shared by the theory and supervised studies so every study's run dir looks the same:
``<run_dir>/config.yaml``, ``<run_dir>/summary.json``, ``<run_dir>/<table>.csv`` + ``<table>.md``,
``<run_dir>/<figure>.png``. A study module holds ``run(cfg, run_dir)`` (the work) and a two-line Hydra app::

    @hydra.main(config_path=str(CONF_DIR), config_name="theory/<study>", version_base="1.3")
    def main(cfg: DictConfig) -> None:
        run_study(cfg, run, summarise=..., show=...)

    if __name__ == "__main__":
        study_entry(main)

:func:`run_study` is the body every study shares, :func:`study_entry` the exit codes (0 finished, 2 config error, 1
anything else, as ``repdyn.train``), :func:`compose_study` the same config in-process (tests, notebooks).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from repdyn.paths import CONF_DIR, CONFIG_FILE, SUMMARY_FILE

T = TypeVar("T")
EXIT_CONFIG = 2  # README "Failures": a config error exits 2, as in repdyn.train


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


def _validate_or_exit(cfg: DictConfig, validate: Callable[[DictConfig], None] | None) -> None:
    """Run the study's config check; a ``ValueError`` (its message names the key) exits 2 before any compute."""
    if validate is None:
        return
    try:
        validate(cfg)
    except ValueError as e:
        print(f"repdyn: config error: {e}", file=sys.stderr)
        sys.exit(EXIT_CONFIG)


def run_study(
    cfg: DictConfig,
    study: Callable[[DictConfig, Path], T],
    summarise: Callable[[T], Mapping[str, Any]],
    show: Callable[[T], str] | None = None,
    validate: Callable[[DictConfig], None] | None = None,
) -> T:
    """The body of every study's ``@hydra.main``: check the config (``validate``; exit 2 naming the key), set
    ``torch`` to ``cfg.num_threads`` threads, save the resolved config in the Hydra run dir, run ``study(cfg,
    run_dir)`` (it writes its tables and figures there), write ``summary.json`` as ``{"status": "finished",
    "seconds": <wall-clock of the study>, **summarise(out)}``, print ``show(out)`` and where the outputs went."""
    import torch

    from repdyn import preflight

    preflight.mark_started()  # composition succeeded: from here an exception is a crash (exit 1), not a usage error
    _validate_or_exit(cfg, validate)
    torch.set_num_threads(int(cfg.num_threads))
    run_dir = hydra_run_dir()
    save_config(cfg, run_dir)
    start = time.perf_counter()
    out = study(cfg, run_dir)
    write_summary(run_dir, {"status": "finished", "seconds": time.perf_counter() - start, **summarise(out)})
    if show is not None:
        with pd.option_context("display.width", 200, "display.max_columns", 30):
            print(show(out))
    print(f"repdyn: study finished; outputs in {run_dir}", flush=True)
    return out


def study_entry(hydra_main: Callable[[], None]) -> None:
    """Call a study's Hydra app (``python -m repdyn.<theory|supervised>.<study>``) with Hydra's own usage errors (an
    unknown key, a wrong type, an unparsable override: before composition ends) exiting 2 like config errors, as
    ``repdyn.train`` does; ``--help`` exits 0 and a crash inside the study exits 1."""
    import traceback

    from repdyn import preflight

    try:
        hydra_main()
    except SystemExit as e:
        code = preflight.main_exit_code(e.code)
        if code != e.code:
            sys.exit(code)
        raise
    except Exception:  # HYDRA_FULL_ERROR=1 lets Hydra's errors through with their traceback
        if preflight.main_exit_code(1) == 1:
            raise
        traceback.print_exc()
        sys.exit(EXIT_CONFIG)


def compose_study(name: str, overrides: Sequence[str] = (), hydra_cfg: bool = False) -> DictConfig:
    """A study's config composed in-process, as its command line would (``name`` like ``"theory/td_ntk"``;
    ``hydra_cfg`` keeps the ``hydra`` node, e.g. to check a launcher composes)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose(config_name=name, overrides=list(overrides), return_hydra_config=hydra_cfg)
    finally:
        GlobalHydra.instance().clear()
