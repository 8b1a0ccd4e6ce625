"""From a :class:`~repdyn.analysis.loader.RunSet` to the collapse report: tables (CSV), figures (PNG/PDF) and one
self-contained HTML page (figures embedded as base64 PNG, no script, no external resource).

Panels follow Moalla et al. 2024 (arXiv:2405.00662): training curves (Figs. 1-2), trust-region scatter (Fig. 4),
final-value boxplots (Fig. 6) and rank-metric agreement (App. E.2), with the statistics of
docs/experiments.md#figure-statistics as implemented in :mod:`repdyn.analysis.stats`. Metrics a run set does not log are
skipped with a note in the report, unless they were requested explicitly (``curves=[...]``), in which case loading fails
with the list of missing (run, metric) pairs.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from repdyn.analysis import figures, stats
from repdyn.analysis.loader import AnalysisError, RunSet

NETWORKS = ("actor", "critic", "trunk", "qnet")
SCOPES = ("batch_start", "batch_end")
FORMATS = ("png", "pdf", "svg")
RANK_METRICS = ("effective_rank", "approx_rank", "srank", "feature_rank", "numerical_rank")
RATIO_KEY = "trust_region/ratio_below_mean"
EXCESS_KEY = "trust_region/excess_ratio"


@dataclass
class Panel:
    """One plotted quantity: log key, title, and whether curves are EWMA-smoothed (capacity loss is not)."""

    key: str
    title: str
    smooth: bool = True
    log: bool = False


@dataclass
class ReportOptions:
    """Options of the report; the CLI fills them from ``conf/analyze.yaml``."""

    curves: list[str] | None = None  # explicit training-curve keys (required in every run); None = default panels
    network: str = "actor"  # network of the scatter, boxplot and rank panels
    scope: str = "batch_start"  # representation metrics of the features at rollout time (Moalla et al. App. B.3)
    ewma_alpha: float = 0.05
    last_frac: float = 0.05
    window_frac: float = 0.01
    n_windows: int = 20
    excess_min_count: int = 10
    rank_metrics: list[str] = field(default_factory=lambda: list(RANK_METRICS))
    formats: list[str] = field(default_factory=lambda: ["png", "pdf"])
    title: str = "repdyn — collapse analysis"
    dpi: int = 110
    per_run: bool = False  # training curves: each run's smoothed curve as a thin line under its group's band

    def validate(self) -> None:
        if self.network not in NETWORKS:
            raise AnalysisError(f"network: must be one of {NETWORKS}, got {self.network!r}")
        if self.scope not in SCOPES:
            raise AnalysisError(f"scope: must be one of {SCOPES}, got {self.scope!r}")
        bad = [f for f in self.formats if f not in FORMATS]
        if bad or "png" not in self.formats:
            raise AnalysisError(f"formats: must include 'png' and be drawn from {FORMATS}, got {self.formats}")
        for name in ("ewma_alpha", "last_frac", "window_frac"):
            v = getattr(self, name)
            if not 0 < v <= 1:
                raise AnalysisError(f"{name}: must be in (0, 1], got {v}")
        if self.n_windows < 1 or self.excess_min_count < 1:
            raise AnalysisError("n_windows and excess_min_count: must be >= 1")

    def key(self, metric: str, network: str | None = None) -> str:
        return f"{self.scope}/{network or self.network}/{metric}"

    def curve_panels(self) -> list[Panel]:
        if self.curves:
            return [Panel(k, k, smooth=not k.startswith("capacity/")) for k in self.curves]
        return [
            Panel("env/return", "episode return"),
            Panel(self.key("approx_rank", "actor"), "actor approx. rank (99%)"),
            Panel(self.key("approx_rank", "critic"), "critic approx. rank (99%)"),
            Panel(self.key("preact_norm", "actor"), "actor pre-activation norm"),
            Panel("capacity/actor/loss", "actor capacity loss (unsmoothed)", smooth=False),
            Panel("capacity/critic/loss", "critic capacity loss (unsmoothed)", smooth=False),
            Panel(self.key("dead_units", "actor"), "actor dead units"),
            Panel("ppo/entropy", "policy entropy"),
            Panel(self.key("policy_variance", "actor"), "policy variance"),
        ]

    def scatter_panels(self) -> list[Panel]:
        return [
            Panel(self.key("dead_units"), f"{self.network} dead units"),
            Panel(self.key("approx_rank"), f"{self.network} approx. rank"),
            Panel(self.key("preact_norm"), f"{self.network} pre-activation norm"),
        ]

    def final_panels(self) -> list[Panel]:
        return [
            Panel("env/return", "episode return"),
            Panel(EXCESS_KEY, "excess ratio (≥10 non-trivial)", log=True),
            Panel(self.key("approx_rank"), f"{self.network} approx. rank"),
            Panel(self.key("preact_norm"), f"{self.network} pre-activation norm"),
            Panel(self.key("feature_norm"), f"{self.network} feature norm"),
            Panel(self.key("dead_units"), f"{self.network} dead units"),
            Panel(f"capacity/{self.network}/loss", f"{self.network} capacity loss"),
            Panel("ppo/entropy", "policy entropy"),
        ]


@dataclass
class AnalysisTables:
    """Everything the figures show, as tables (each also written to CSV)."""

    curves: pd.DataFrame
    final: pd.DataFrame
    windows: pd.DataFrame
    window_correlations: dict[str, dict[str, float]]
    agreement: dict[str, dict[str, pd.DataFrame]] | None
    curve_panels: list[Panel]
    scatter_panels: list[Panel]
    final_panels: list[Panel]
    rank_keys: list[str]
    notes: list[str] = field(default_factory=list)
    run_curves: pd.DataFrame | None = None  # per-run smoothed curves (``per_run=true``)


@dataclass
class ReportResult:
    html: Path
    figures: dict[str, list[Path]]
    csv: dict[str, Path]
    notes: list[str]
    workspace: Path | str | None = None


def _present(runset: RunSet, key: str) -> tuple[bool, list[str]]:
    has = runset.has_metric(key)
    return bool(has.any()), has.index[~has].tolist()


def compute_tables(runset: RunSet, opts: ReportOptions) -> AnalysisTables:
    """All statistics of the report (pure given the run set and options)."""
    opts.validate()
    notes: list[str] = list(runset.notes)
    if opts.curves:
        runset.require_metrics(opts.curves)

    # training curves
    curve_panels, parts, run_parts = [], [], []
    for p in opts.curve_panels():
        ok, missing = _present(runset, p.key)
        if not ok:
            notes.append(f"training curves: no run logs {p.key!r}; panel skipped")
            continue
        if missing:
            notes.append(f"training curves: {p.key!r} missing in run(s) {missing[:5]}")
        alpha = opts.ewma_alpha if p.smooth else None
        c = stats.group_curves(runset.history, p.key, alpha=alpha)
        c.insert(0, "metric", p.key)
        parts.append(c)
        if opts.per_run:
            r = stats.run_curves(runset.history, p.key, alpha=alpha)
            r.insert(0, "metric", p.key)
            run_parts.append(r)
        curve_panels.append(p)
    curves = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    run_curves = pd.concat(run_parts, ignore_index=True) if run_parts else None

    # per-run final values and trust-region windows
    final_panels = [p for p in opts.final_panels() if _present(runset, p.key)[0]]
    for p in opts.final_panels():
        if p not in final_panels:
            notes.append(f"final values: no run logs {p.key!r}; boxplot skipped")
    scatter_panels = [p for p in opts.scatter_panels() if _present(runset, p.key)[0]]
    has_ratio = _present(runset, RATIO_KEY)[0]
    if not has_ratio:
        notes.append(f"trust-region scatter: no run logs {RATIO_KEY!r} (not a PPO sweep?); figure skipped")
    elif not scatter_panels:
        notes.append("trust-region scatter: no representation metric to put on the x axis; figure skipped")
    rows, win_parts = [], []
    for run_id, meta in runset.runs.iterrows():
        df = runset.run_frame(run_id)
        steps = df["step"].to_numpy()
        row = {"run": run_id, "group": meta["group"], "seed": meta["seed"], "status": meta["status"]}
        row["horizon"], row["last_step"] = meta["horizon"], meta["last_step"]
        for p in final_panels:
            if p.key == EXCESS_KEY:
                w = stats.excess_ratio_window(
                    steps, df[p.key].to_numpy(), opts.last_frac, opts.excess_min_count, meta["horizon"]
                )
                row[p.key], row["excess_ratio_window_end"], row["excess_ratio_count"] = w["mean"], w["end"], w["count"]
            else:
                row[p.key] = stats.last_fraction_mean(steps, df[p.key].to_numpy(), opts.last_frac, meta["horizon"])
        rows.append(row)
        if has_ratio and scatter_panels and RATIO_KEY in df:
            cols = [RATIO_KEY] + [p.key for p in scatter_panels if p.key in df]
            low = stats.lowest_ratio_windows(
                steps, df[cols], RATIO_KEY, k=opts.n_windows, frac=opts.window_frac, horizon=meta["horizon"]
            )
            low = low.reset_index()
            low.insert(0, "group", meta["group"])
            low.insert(0, "run", run_id)
            win_parts.append(low)
    final = pd.DataFrame(rows)
    for p in list(final_panels):
        if not np.isfinite(final[p.key].to_numpy(dtype=float)).any():
            why = f"≥ {opts.excess_min_count} non-trivial ratios in a window" if p.key == EXCESS_KEY else "a value"
            notes.append(f"final values: no run has {why} in its last {opts.last_frac:.0%} for {p.key!r}; skipped")
            final_panels.remove(p)
    windows = pd.concat(win_parts, ignore_index=True) if win_parts else pd.DataFrame()
    correlations = {}
    if not windows.empty:
        for p in scatter_panels:
            correlations[p.key] = stats.spearman_kendall(windows[p.key].to_numpy(), windows[RATIO_KEY].to_numpy())

    # rank-metric agreement
    rank_keys = [opts.key(m) for m in opts.rank_metrics if _present(runset, opts.key(m))[0]]
    agreement = None
    if len(rank_keys) < 2:
        notes.append(f"rank agreement: fewer than two of {opts.rank_metrics} logged for {opts.network}; skipped")
        rank_keys = []
    else:
        per_run = {r: runset.run_frame(r)[rank_keys] for r in runset.runs.index}
        widths = runset.runs["width"].astype(float)
        if not np.isfinite(widths).all():
            notes.append("rank agreement: feature width unknown (no model.hidden); pass feature_width=D for the L2")
        agreement = stats.rank_agreement(
            per_run, rank_keys, {r: (w if np.isfinite(w) else np.nan) for r, w in widths.items()}
        )
    return AnalysisTables(
        curves=curves,
        run_curves=run_curves,
        final=final,
        windows=windows,
        window_correlations=correlations,
        agreement=agreement,
        curve_panels=curve_panels,
        scatter_panels=scatter_panels,
        final_panels=final_panels,
        rank_keys=rank_keys,
        notes=notes,
    )


_CSS = """
body { font-family: -apple-system, 'DejaVu Sans', Arial, sans-serif; margin: 24px auto; max-width: 1320px;
       color: #222; line-height: 1.4; }
h1 { font-size: 24px; margin-bottom: 4px; } h2 { font-size: 19px; border-bottom: 1px solid #ddd; padding-top: 8px; }
.meta { color: #555; font-size: 13px; } figure { margin: 12px 0 24px; } figure img { max-width: 100%; height: auto; }
figcaption { font-size: 13px; color: #444; } table { border-collapse: collapse; font-size: 12px; margin: 8px 0 20px; }
th, td { border: 1px solid #ddd; padding: 3px 7px; text-align: right; } th { background: #f4f4f4; }
td:first-child, th:first-child { text-align: left; } .notes { background: #fff8e1; border: 1px solid #f0d98a;
padding: 6px 12px; font-size: 13px; } nav a { margin-right: 14px; font-size: 14px; }
"""


def _fmt_table(df: pd.DataFrame) -> str:
    return df.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="–", border=0, escape=True)


def _group_summary(final: pd.DataFrame, panels: Sequence[Panel]) -> pd.DataFrame:
    out = []
    for g, gdf in final.groupby("group", sort=False):
        row = {"group": g, "runs": len(gdf)}
        for p in panels:
            v = gdf[p.key].astype(float)
            row[p.title] = f"{v.mean():.4g} ± {v.std(ddof=0):.2g}" if v.notna().any() else "–"
        out.append(row)
    return pd.DataFrame(out)


def render_html(
    runset: RunSet,
    tables: AnalysisTables,
    images: dict[str, str],
    opts: ReportOptions,
    files: dict[str, list[Path]],
    out_dir: Path,
) -> str:
    """The report page; ``images`` maps figure name → base64 PNG."""
    e = html.escape
    groups = runset.groups
    sections = []

    def fig_block(name: str, caption: str) -> str:
        links = " · ".join(
            f'<a href="{e(os.path.relpath(p, out_dir))}">{e(p.suffix[1:].upper())}</a>' for p in files.get(name, [])
        )
        return (
            f'<figure id="fig-{name}"><img alt="{e(name)}" src="data:image/png;base64,{images[name]}">'
            f"<figcaption>{caption} {('(' + links + ')') if links else ''}</figcaption></figure>"
        )

    if "curves" in images:
        sections.append(
            (
                "curves",
                "Training curves",
                fig_block(
                    "curves",
                    f"Mean over seeds (line) and min/max over seeds (band) per group; each run smoothed with an EWMA "
                    f"s<sub>t</sub> = {opts.ewma_alpha}·x<sub>t</sub> + {1 - opts.ewma_alpha:.2f}·s<sub>t−1</sub> "
                    "before aggregation, capacity loss unsmoothed (Moalla et al. 2024 Figs. 1-2).",
                ),
            )
        )
    if "trust_region" in images:
        sections.append(
            (
                "trust_region",
                "Trust region vs representation",
                fig_block(
                    "trust_region",
                    f"Per run, the {opts.n_windows} windows of {opts.window_frac:.0%} training progress with the "
                    f"lowest average ratio below 1−ε; x = the window's average metric (Moalla et al. 2024 Fig. 4). "
                    f"{len(tables.windows)} points from {tables.windows['run'].nunique()} runs.",
                ),
            )
        )
    if "final" in images:
        summary = _group_summary(tables.final, tables.final_panels)
        sections.append(
            (
                "final",
                "Final values (interventions)",
                fig_block(
                    "final",
                    f"Per run, the average over the last {opts.last_frac:.0%} of training; the excess ratio over the "
                    f"latest {opts.last_frac:.0%} window with ≥ {opts.excess_min_count} non-trivial ratios (Moalla "
                    "et al. 2024 Fig. 6, App. B.3). Boxes: quartiles, whiskers 1.5 IQR; dots: runs.",
                )
                + "<h3>Per group (mean ± std over runs)</h3>"
                + _fmt_table(summary),
            )
        )
    if "rank_agreement" in images:
        sections.append(
            (
                "rank_agreement",
                "Rank-metric agreement",
                fig_block(
                    "rank_agreement",
                    "Correlation / distance between the rank metrics' curves within each run, averaged over runs (top, "
                    "± std) and worst case (bottom); normalised L2 = √Σ(x−y)² / (√T·D), D = feature width "
                    "(Moalla et al. App. E.2). Runs with a constant curve are excluded from that pair's correlations.",
                ),
            )
        )
    runs_tbl = runset.runs[["run", "group", "seed", "status", "last_step", "horizon", "location"]]
    sections.append(("runs", "Runs", _fmt_table(runs_tbl)))

    notes = "".join(f"<li>{e(n)}</li>" for n in tables.notes)
    notes_html = f'<div class="notes"><b>Notes</b><ul>{notes}</ul></div>' if notes else ""
    nav = "".join(f'<a href="#{sid}">{e(title)}</a>' for sid, title, _ in sections)
    body = "".join(f'<section id="{sid}"><h2>{e(title)}</h2>{content}</section>' for sid, title, content in sections)
    meta = (
        f"{len(runset.runs)} runs in {len(groups)} group(s) ({e(', '.join(groups))}); grouped by "
        f"{e(', '.join(runset.group_by) or '—')}; source: {e(runset.source)}; generated "
        f"{_dt.datetime.now().strftime('%Y-%m-%d %H:%M')}; tables: "
        + " · ".join(f'<a href="{e(n)}.csv">{e(n)}.csv</a>' for n in ("final", "curves", "windows", "table"))
    )
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{e(opts.title)}</title>'
        f'<style>{_CSS}</style></head><body><h1>{e(opts.title)}</h1><p class="meta">{meta}</p>'
        f"<nav>{nav}</nav>{notes_html}{body}</body></html>"
    )


def make_report(runset: RunSet, out_dir: str | os.PathLike, opts: ReportOptions | None = None) -> ReportResult:
    """Compute the tables, draw and save every figure, write the CSVs and the HTML report into ``out_dir``."""
    opts = opts or ReportOptions()
    tables = compute_tables(runset, opts)
    out_dir = Path(out_dir)
    fig_dir = out_dir / "figures"
    out_dir.mkdir(parents=True, exist_ok=True)
    colors = figures.group_colors(runset.groups)

    built: dict[str, Figure] = {}
    if tables.curve_panels:
        built["curves"] = figures.curves_figure(
            tables.curves, [(p.key, p.title) for p in tables.curve_panels], colors, runs=tables.run_curves
        )
    if not tables.windows.empty:
        built["trust_region"] = figures.scatter_figure(
            tables.windows,
            [(p.key, p.title) for p in tables.scatter_panels],
            RATIO_KEY,
            colors,
            tables.window_correlations,
        )
    if tables.final_panels:
        built["final"] = figures.boxplot_figure(
            tables.final, [(p.key, p.title, p.log) for p in tables.final_panels], runset.groups, colors
        )
    if tables.agreement is not None:
        labels = {k: k.rsplit("/", 1)[-1] for k in tables.rank_keys}
        built["rank_agreement"] = figures.agreement_figure(tables.agreement, labels)

    files = {name: figures.save_figure(fig, fig_dir, name, opts.formats, opts.dpi) for name, fig in built.items()}
    # embed the very PNG files written above (drawing each figure again would double the rendering time)
    images = {name: base64.b64encode(paths[0].read_bytes()).decode("ascii") for name, paths in files.items()}

    csv = {
        "final": out_dir / "final.csv",
        "curves": out_dir / "curves.csv",
        "windows": out_dir / "windows.csv",
        "table": out_dir / "table.csv",
    }
    tables.final.to_csv(csv["final"], index=False)
    tables.curves.to_csv(csv["curves"], index=False)
    tables.windows.to_csv(csv["windows"], index=False)
    runset.history.to_csv(csv["table"], index=False)
    if tables.run_curves is not None:
        csv["run_curves"] = out_dir / "run_curves.csv"
        tables.run_curves.to_csv(csv["run_curves"], index=False)
    if tables.agreement is not None:
        long = [
            {"stat": s, "kind": kind, "x": i, "y": j, "value": v}
            for s, kinds in tables.agreement.items()
            for kind, frame in kinds.items()
            for i, r in frame.iterrows()
            for j, v in r.items()
        ]
        csv["rank_agreement"] = out_dir / "rank_agreement.csv"
        pd.DataFrame(long).to_csv(csv["rank_agreement"], index=False)

    page = render_html(runset, tables, images, opts, files, out_dir)
    html_path = out_dir / "report.html"
    html_path.write_text(page, encoding="utf-8")
    return ReportResult(html=html_path, figures=files, csv=csv, notes=tables.notes)
