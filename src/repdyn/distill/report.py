"""``python -m repdyn.distill.report <sweep dir | run dirs ...> [--out DIR]``: teacher vs students side by side.

Reads every distillation run dir under the paths (``summary.json`` + ``history.jsonl``), groups the students by
objective and writes, into ``--out`` (default ``<first path>/distill_report``):

- ``table.csv`` / ``table.md``: final values (mean ± std over seeds) of the teacher and each objective's students —
  returns on the training env and each held-out variation, generalization gap, update rank, feature rank,
  greedy-action agreement, robustness at every noise scale and interpolation point;
- ``robustness.png``: fraction of unchanged greedy actions vs noise scale, teacher and students;
- ``curves.png``: student return and update rank over distillation steps, one line per objective (mean over seeds).

Runs that did not complete are listed in the notes of ``table.md`` and left out.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from repdyn.loggers.history import read_history
from repdyn.paths import HISTORY_FILE, SUMMARY_FILE

NOISE_KEY = re.compile(r"^robustness/(teacher|student)/perturb_agree/noise_(.+)$")
TABLE_KEYS = (
    "eval/{who}/return",
    "eval/{who}/generalization_gap",
    "update_rank/{who}/rank",
    "ranks/{who}/feature_rank",
    "ranks/{who}/srank",
)


def find_runs(paths: Sequence[Path]) -> list[Path]:
    """Distillation run dirs under ``paths``: folders holding a ``summary.json`` with an ``objective``."""
    found = []
    for root in paths:
        for s in sorted(Path(root).rglob(SUMMARY_FILE)):
            if "previous_" in str(s.parent) or "objective" not in json.loads(s.read_text()):
                continue
            found.append(s.parent)
    return found


def load_runs(run_dirs: Sequence[Path]) -> tuple[list[dict[str, Any]], list[str]]:
    """(completed runs as {dir, objective, final, history}, notes on the runs left out)."""
    runs, notes = [], []
    for d in run_dirs:
        summary = json.loads((d / SUMMARY_FILE).read_text())
        if summary.get("status") != "completed":
            notes.append(f"{d}: status {summary.get('status')}, left out")
            continue
        history = read_history(d / HISTORY_FILE)
        runs.append(
            {
                "dir": d,
                "objective": summary["objective"],
                "teacher": summary.get("teacher", "?"),
                "final": summary["final"],
                "history": history,
            }
        )
    return runs, notes


def _final_keys(final: dict[str, Any], who: str) -> list[str]:
    """The table's keys for ``who`` present in a final record (variation returns and robustness included)."""
    fixed = [k.format(who=who) for k in TABLE_KEYS]
    extra = [k for k in final if k.startswith((f"eval/{who}/", f"robustness/{who}/")) and k not in fixed]
    agree = ["distill/agreement"] if who == "student" else []
    return [k for k in fixed + agree + sorted(extra) if k in final]


def _cell(values: Sequence[float]) -> str:
    v = np.asarray(values, dtype=float)
    return f"{v.mean():.3g}" if len(v) == 1 else f"{v.mean():.3g} ± {v.std(ddof=1):.2g}"


def summary_table(runs: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Rows: ``teacher`` (its final record, over every run) and each objective (its students' final records);
    columns: the metric with ``teacher``/``student`` removed from the key, so the two compare column by column."""
    rows: dict[str, dict[str, list[float]]] = {}
    several = len({r["teacher"] for r in runs}) > 1  # runs of different teachers: one teacher row each
    for run in runs:
        teacher_row = f"teacher {Path(run['teacher']).name}" if several else "teacher"
        for who, row in (("teacher", teacher_row), ("student", run["objective"])):
            for key in _final_keys(run["final"], who):
                column = key.replace(f"/{who}/", "/").replace(f"/{who}", "")
                rows.setdefault(row, {}).setdefault(column, []).append(float(run["final"][key]))
    table = pd.DataFrame({row: {c: _cell(v) for c, v in cols.items()} for row, cols in rows.items()}).T
    table.index.name = "network"
    return table


def _noise_curve(runs: Sequence[dict[str, Any]], who: str, objective: str | None) -> tuple[list[float], list[float]]:
    per_scale: dict[float, list[float]] = {}
    for run in runs:
        if objective is not None and run["objective"] != objective:
            continue
        for key, value in run["final"].items():
            m = NOISE_KEY.match(key)
            if m and m.group(1) == who:
                per_scale.setdefault(float(m.group(2)), []).append(float(value))
    scales = sorted(per_scale)
    return scales, [float(np.mean(per_scale[s])) for s in scales]


def plot_robustness(runs: Sequence[dict[str, Any]], path: Path) -> None:
    """Fraction of probe states whose greedy action survives input noise, vs the noise scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    scales, agree = _noise_curve(runs, "teacher", None)
    ax.plot(scales, agree, "k-o", label="teacher")
    for objective in sorted({r["objective"] for r in runs}):
        scales, agree = _noise_curve(runs, "student", objective)
        ax.plot(scales, agree, "-o", label=objective)
    ax.set_xscale("symlog", linthresh=0.01)
    ax.set_xlabel("noise scale (× per-feature std)")
    ax.set_ylabel("greedy action unchanged")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _mean_curve(runs: Sequence[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    by_step: dict[int, list[float]] = {}
    for run in runs:
        for rec in run["history"]:
            if key in rec:
                by_step.setdefault(int(rec["step"]), []).append(float(rec[key]))
    steps = sorted(by_step)
    return steps, [float(np.mean(by_step[s])) for s in steps]


def plot_curves(runs: Sequence[dict[str, Any]], path: Path) -> None:
    """Student return and update rank over distillation, one line per objective; the teacher's return dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for objective in sorted({r["objective"] for r in runs}):
        group = [r for r in runs if r["objective"] == objective]
        for ax, key in zip(axes, ("eval/student/return", "update_rank/student/rank"), strict=True):
            ax.plot(*_mean_curve(group, key), "-o", ms=3, label=objective)
    teacher = [float(r["final"]["eval/teacher/return"]) for r in runs if "eval/teacher/return" in r["final"]]
    if teacher:
        axes[0].axhline(float(np.mean(teacher)), color="k", ls="--", label="teacher")
    for ax, title in zip(axes, ("student return", "student update rank"), strict=True):
        ax.set_xlabel("distillation step")
        ax.set_title(title, fontsize=9)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(paths: Sequence[Path], out: Path) -> pd.DataFrame:
    """Table and figures for the distillation runs under ``paths`` into ``out``; returns the table."""
    runs, notes = load_runs(find_runs(paths))
    if not runs:
        raise ValueError(f"no completed distillation run under {', '.join(map(str, paths))}")
    out.mkdir(parents=True, exist_ok=True)
    table = summary_table(runs)
    table.to_csv(out / "table.csv")
    lines = ["| network | " + " | ".join(table.columns) + " |", "|---" * (len(table.columns) + 1) + "|"]
    lines += [
        f"| {i} | " + " | ".join(str(v) for v in row) + " |" for i, row in zip(table.index, table.values, strict=True)
    ]
    lines += ["", *[f"- {n}" for n in notes]]
    (out / "table.md").write_text("\n".join(lines) + "\n")
    plot_robustness(runs, out / "robustness.png")
    plot_curves(runs, out / "curves.png")
    return table


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m repdyn.distill.report", description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path, help="a sweep dir or run dirs")
    parser.add_argument("--out", type=Path, default=None, help="output dir (default <first path>/distill_report)")
    args = parser.parse_args(argv)
    try:
        table = write_report(args.paths, args.out or args.paths[0] / "distill_report")
    except ValueError as e:
        print(f"repdyn: {e}", file=sys.stderr)
        sys.exit(2)
    with pd.option_context("display.width", 200, "display.max_columns", 12):
        print(table.iloc[:, :8].to_string())


if __name__ == "__main__":
    main()
