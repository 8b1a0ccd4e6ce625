"""From a :class:`~repdyn.analysis.loader.RunSet` to the collapse report: tables (CSV), figures (PNG/PDF) and one
self-contained HTML page (figures embedded as base64 PNG, no script, no external resource).

Panels follow Moalla et al. 2024 (arXiv:2405.00662): training curves (Figs. 1-2), trust-region scatter (Fig. 4),
final-value boxplots (Fig. 6) and rank-metric agreement (App. E.2); a further figure of curves draws every other key
family the runs log (losses, optimiser, drift, eNTK, update rank, ...), so no logged family goes unseen. Statistics:
docs/experiments.md#figure-statistics as implemented in :mod:`repdyn.analysis.stats`. Metrics a run set does not log are
skipped with a note in the report, unless they were requested explicitly (``curves=[...]``), in which case loading fails
with the list of missing (run, metric) pairs.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import html
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from repdyn.analysis import figures, stats
from repdyn.analysis.loader import AnalysisError, RunSet

NETWORKS = figures.NETWORKS
SCOPES = ("batch_start", "batch_end")
FORMATS = ("png", "pdf", "svg")
RANK_METRICS = ("effective_rank", "approx_rank", "srank", "feature_rank", "numerical_rank")
RATIO_KEY = "trust_region/ratio_below_mean"
EXCESS_KEY = "trust_region/excess_ratio"

# Training-curve panels as (title, key patterns, smoothed). "{net}" expands to every network, "{scope}" to the chosen
# scope and "{other}" to the other one; a panel shows the expanded keys that some run logs, one line style each.
MAIN_CURVES: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("episode return", ("env/return",), True),
    ("approx. rank (99%), {scope}", ("{scope}/{net}/approx_rank",), True),
    ("pre-activation norm, {scope}", ("{scope}/{net}/preact_norm",), True),
    ("capacity loss (unsmoothed)", ("capacity/{net}/loss",), False),  # 41 probes; the paper plots them raw
    ("dead units, {scope}", ("{scope}/{net}/dead_units",), True),
    ("policy entropy", ("ppo/entropy",), True),
    ("policy variance, {scope}", ("{scope}/{net}/policy_variance",), True),
)
SIGNAL_CURVES: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("episode length", ("env/length",), True),
    ("policy loss", ("loss/policy",), True),
    ("value loss", ("loss/value",), True),
    ("TD loss", ("loss/td",), True),
    ("clip fraction", ("ppo/clip_fraction",), True),
    ("approx. KL (k3)", ("ppo/approx_kl_k3",), True),
    ("mean ratio outside the clip range", ("trust_region/ratio_below_mean", "trust_region/ratio_above_mean"), True),
    ("excess ratio", (EXCESS_KEY,), True),
    ("gradient norm before clipping", ("opt/{net}/grad_norm",), True),
    ("approx. rank (99%), {other}", ("{other}/{net}/approx_rank",), True),
    ("pre-activation norm, {other}", ("{other}/{net}/preact_norm",), True),
    ("feature drift over the update (L2)", ("batch_diff/{net}/feature_drift_l2",), True),
    ("feature drift over the update (cosine)", ("batch_diff/{net}/feature_drift_cos",), True),
    ("eNTK trace / n", ("ntk/{net}/trace",), True),
    ("eNTK entropy", ("ntk/{net}/entropy",), True),
    ("eNTK kernel alignment", ("ntk/{net}/kernel_alignment",), True),
    ("update rank", ("update_rank/{net}/rank",), True),
    ("ε of ε-greedy", ("dqn/epsilon",), True),
    ("env steps per second", ("perf/sps",), True),
)
FALLBACK_PER_FAMILY = 3  # panels for a key family no curated panel shows (icm/, ntk_eviction/, ...)


@dataclass
class Panel:
    """One quantity of the scatter or boxplot figures: log key, title, log-scale axis."""

    key: str
    title: str
    smooth: bool = True
    log: bool = False


@dataclass
class CurvePanel:
    """One training-curve panel: title, the keys drawn in it (one line style each), whether they are smoothed."""

    title: str
    keys: tuple[str, ...]
    smooth: bool = True


def expand_keys(patterns: Sequence[str], scope: str) -> tuple[str, ...]:
    """Key patterns → keys: ``{net}`` becomes each of :data:`NETWORKS`, ``{scope}`` the scope, ``{other}`` the other
    scope (``{scope}/{net}/approx_rank`` → ``batch_start/actor/approx_rank``, ``batch_start/critic/...``, ...)."""
    other = next(s for s in SCOPES if s != scope)
    out = []
    for pat in patterns:
        nets = NETWORKS if "{net}" in pat else ("",)
        out.extend(pat.format(net=n, scope=scope, other=other) for n in nets)
    return tuple(dict.fromkeys(out))


def key_family(key: str) -> str:
    """The family of a log key: its first component (``batch_end/actor/approx_rank`` → ``batch_end``)."""
    return key.split("/", 1)[0]


def fallback_panels(keys: Sequence[str], shown: set[str], per_family: int = FALLBACK_PER_FAMILY) -> list[CurvePanel]:
    """Panels for every family none of whose keys is shown elsewhere: its first ``per_family`` metric names in sorted
    order, the networks of one name (``fam/<net>/name``) drawn together in one panel."""
    shown_families = {key_family(k) for k in shown}
    by_name: dict[tuple[str, str], list[str]] = {}
    for key in sorted(keys):
        parts = key.split("/")
        name = parts[-1] if len(parts) == 3 and parts[1] in NETWORKS else "/".join(parts[1:]) or key
        if key_family(key) not in shown_families:
            by_name.setdefault((key_family(key), name), []).append(key)
    taken: dict[str, int] = {}
    panels = []
    for (family, name), ks in by_name.items():
        taken[family] = taken.get(family, 0) + 1
        if taken[family] <= per_family:
            panels.append(CurvePanel(f"{family}: {name}", tuple(ks), smooth=family != "capacity"))
    return panels


@dataclass
class ReportOptions:
    """Options of the report; the CLI fills them from ``conf/analyze.yaml``."""

    curves: list[str] | None = None  # explicit training-curve keys (required in every run); None = default panels
    network: str = "auto"  # network of the scatter, boxplot and rank panels; auto: the first of NETWORKS logged
    scope: str = "batch_start"  # representation metrics of the features at rollout time (Moalla et al. App. B.3)
    smooth: float | None = 0.02  # smoothing window as a fraction of each run's budget; None = raw curves
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
        if self.network not in (*NETWORKS, "auto"):
            raise AnalysisError(f"network: must be auto or one of {NETWORKS}, got {self.network!r}")
        if self.scope not in SCOPES:
            raise AnalysisError(f"scope: must be one of {SCOPES}, got {self.scope!r}")
        bad = [f for f in self.formats if f not in FORMATS]
        if bad or "png" not in self.formats:
            raise AnalysisError(f"formats: must include 'png' and be drawn from {FORMATS}, got {self.formats}")
        for name in ("last_frac", "window_frac"):
            v = getattr(self, name)
            if not 0 < v <= 1:
                raise AnalysisError(f"{name}: must be in (0, 1], got {v}")
        if self.smooth is not None and not 0 < self.smooth <= 1:
            raise AnalysisError(f"smooth: must be none or a fraction of the budget in (0, 1], got {self.smooth}")
        if self.n_windows < 1 or self.excess_min_count < 1:
            raise AnalysisError("n_windows and excess_min_count: must be >= 1")

    def key(self, metric: str, network: str | None = None) -> str:
        return f"{self.scope}/{network or self.network}/{metric}"

    def _panels(self, spec: Sequence[tuple[str, tuple[str, ...], bool]]) -> list[CurvePanel]:
        other = next(s for s in SCOPES if s != self.scope)
        return [
            CurvePanel(t.format(scope=self.scope, other=other), expand_keys(p, self.scope), sm) for t, p, sm in spec
        ]

    def curve_panels(self) -> list[CurvePanel]:
        """The main training-curve figure: the requested keys one per panel, else :data:`MAIN_CURVES`."""
        if self.curves:
            return [CurvePanel(k, (k,), smooth=key_family(k) != "capacity") for k in self.curves]
        return self._panels(MAIN_CURVES)

    def signal_panels(self) -> list[CurvePanel]:
        """The second curve figure: :data:`SIGNAL_CURVES` (optimisation, trust region, drift, eNTK, ...)."""
        return self._panels(SIGNAL_CURVES)

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
            Panel(self.key("feature_rank"), f"{self.network} feature rank (σ/√N > δ)"),
            Panel(self.key("effective_rank"), f"{self.network} effective rank"),
            Panel(self.key("preact_norm"), f"{self.network} pre-activation norm"),
            Panel(self.key("feature_norm"), f"{self.network} feature norm"),
            Panel(self.key("dead_units"), f"{self.network} dead units"),
            Panel(self.key("dormant_units_frac"), f"{self.network} dormant fraction (τ)"),
            Panel(f"capacity/{self.network}/loss", f"{self.network} capacity loss"),
            Panel("ppo/entropy", "policy entropy"),
        ]


@dataclass
class CurveTables:
    """The long tables behind one curve figure (columns as :func:`repdyn.analysis.figures.curves_figure` reads)."""

    panels: list[CurvePanel]
    curves: pd.DataFrame  # metric, group, step, mean, min, max, n of the smoothed runs
    raw: pd.DataFrame  # metric, group, run, step, value: every logged point
    last: pd.DataFrame  # metric, group, step, value, n: the last logged value per group
    runs: pd.DataFrame | None = None  # metric, group, run, step, value of each smoothed run (``per_run=true``)


@dataclass
class AnalysisTables:
    """Everything the figures show, as tables (each also written to CSV)."""

    curves: pd.DataFrame
    final: pd.DataFrame
    windows: pd.DataFrame
    window_correlations: dict[str, dict[str, float]]
    agreement: dict[str, dict[str, pd.DataFrame]] | None
    curve_panels: list[CurvePanel]
    scatter_panels: list[Panel]
    final_panels: list[Panel]
    rank_keys: list[str]
    notes: list[str] = field(default_factory=list)
    run_curves: pd.DataFrame | None = None  # per-run smoothed curves (``per_run=true``)
    main: CurveTables | None = None  # the training-curve figure
    signals: CurveTables | None = None  # the further-signals figure
    hidden_ranks: dict[str, float] = field(default_factory=dict)  # rank metrics constant in every run → constant


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


def _concat(parts: list[pd.DataFrame], columns: Sequence[str]) -> pd.DataFrame:
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(columns))


def curve_tables(runset: RunSet, panels: Sequence[CurvePanel], opts: ReportOptions) -> CurveTables:
    """Smoothed bands, raw points and last values of every key some run logs in ``panels``; panels left with no
    such key are dropped. Each run is smoothed over ``opts.smooth`` of its own budget (``runs.horizon``)."""
    horizons = runset.runs["horizon"].astype(float).to_dict()
    kept, parts = [], {"curves": [], "raw": [], "runs": []}
    for p in panels:
        keys = tuple(k for k in p.keys if _present(runset, k)[0])
        if not keys:
            continue
        kept.append(CurvePanel(p.title, keys, p.smooth))
        frac = opts.smooth if p.smooth else None
        for key in keys:
            frames = {
                "curves": stats.group_curves(runset.history, key, frac=frac, horizons=horizons),
                "raw": stats.run_curves(runset.history, key, frac=None),
            }
            if opts.per_run:
                frames["runs"] = stats.run_curves(runset.history, key, frac=frac, horizons=horizons)
            for name, frame in frames.items():
                frame.insert(0, "metric", key)
                parts[name].append(frame)
    raw = _concat(parts["raw"], ["metric", "group", "run", "step", "value"])
    last = [stats.last_values(g).assign(metric=k) for k, g in raw.groupby("metric", sort=False)]
    return CurveTables(
        panels=kept,
        curves=_concat(parts["curves"], ["metric", "group", "step", "mean", "min", "max", "n"]),
        raw=raw,
        last=_concat(last, ["group", "step", "value", "n", "metric"]),
        runs=_concat(parts["runs"], ["metric", "group", "run", "step", "value"]) if opts.per_run else None,
    )


def _main_curves(runset: RunSet, opts: ReportOptions, notes: list[str]) -> CurveTables:
    panels = opts.curve_panels()
    for p in panels:
        missing = {k: _present(runset, k)[1] for k in p.keys if _present(runset, k)[0]}
        if not missing:
            notes.append(f"training curves: no run logs any of {list(p.keys)} ({p.title}); panel skipped")
        for k, runs in missing.items():
            if runs:
                notes.append(f"training curves: {k!r} missing in run(s) {runs[:5]}")
    return curve_tables(runset, panels, opts)


def _signal_curves(runset: RunSet, opts: ReportOptions, shown: set[str]) -> CurveTables:
    """Curated further signals, plus fallback panels so every logged key family is in some figure."""
    panels = [p for p in opts.signal_panels() if not set(p.keys) <= shown]
    present = [k for k in runset.metric_keys if _present(runset, k)[0]]
    on_panels = {k for p in panels for k in p.keys if k in present}
    return curve_tables(runset, panels + fallback_panels(present, shown | on_panels), opts)


def _final_row(meta: pd.Series, df: pd.DataFrame, panels: Sequence[Panel], opts: ReportOptions) -> dict:
    """One run's row of ``final.csv``: last-``last_frac`` means, the excess ratio over its qualifying window."""
    steps = df["step"].to_numpy()
    row = {"run": meta["run"], "group": meta["group"], "seed": meta["seed"], "status": meta["status"]}
    row["horizon"], row["last_step"] = meta["horizon"], meta["last_step"]
    for p in panels:
        if p.key == EXCESS_KEY:
            w = stats.excess_ratio_window(
                steps, df[p.key].to_numpy(), opts.last_frac, opts.excess_min_count, meta["horizon"]
            )
            row[p.key], row["excess_ratio_window_end"], row["excess_ratio_count"] = w["mean"], w["end"], w["count"]
        else:
            row[p.key] = stats.last_fraction_mean(steps, df[p.key].to_numpy(), opts.last_frac, meta["horizon"])
    return row


def _final_values(runset: RunSet, opts: ReportOptions, notes: list[str]) -> tuple[pd.DataFrame, list[Panel]]:
    """Per-run final values of the boxplot panels some run logs (panels without any finite value are dropped)."""
    panels = [p for p in opts.final_panels() if _present(runset, p.key)[0]]
    for p in opts.final_panels():
        if p not in panels:
            notes.append(f"final values: no run logs {p.key!r}; boxplot skipped")
    final = pd.DataFrame([_final_row(meta, runset.run_frame(r), panels, opts) for r, meta in runset.runs.iterrows()])
    for p in list(panels):
        if not np.isfinite(final[p.key].to_numpy(dtype=float)).any():
            why = f"≥ {opts.excess_min_count} non-trivial ratios in a window" if p.key == EXCESS_KEY else "a value"
            notes.append(f"final values: no run has {why} in its last {opts.last_frac:.0%} for {p.key!r}; skipped")
            panels.remove(p)
    return final, panels


def _trust_windows(
    runset: RunSet, opts: ReportOptions, notes: list[str]
) -> tuple[pd.DataFrame, list[Panel], dict[str, dict[str, float]]]:
    """The lowest-ratio windows of every run (Fig. 4 points), the x panels and their rank correlations."""
    scatter_panels = [p for p in opts.scatter_panels() if _present(runset, p.key)[0]]
    if not _present(runset, RATIO_KEY)[0]:
        notes.append(f"trust-region scatter: no run logs {RATIO_KEY!r} (not a PPO sweep?); figure skipped")
        return pd.DataFrame(), scatter_panels, {}
    if not scatter_panels:
        notes.append("trust-region scatter: no representation metric to put on the x axis; figure skipped")
        return pd.DataFrame(), scatter_panels, {}
    parts = []
    for run_id, meta in runset.runs.iterrows():
        df = runset.run_frame(run_id)
        if RATIO_KEY not in df:
            continue
        cols = [RATIO_KEY] + [p.key for p in scatter_panels if p.key in df]
        low = stats.lowest_ratio_windows(
            df["step"].to_numpy(), df[cols], RATIO_KEY, k=opts.n_windows, frac=opts.window_frac, horizon=meta["horizon"]
        ).reset_index()
        low.insert(0, "group", meta["group"])
        low.insert(0, "run", run_id)
        parts.append(low)
    windows = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    correlations = {}
    if not windows.empty:
        for p in scatter_panels:
            correlations[p.key] = stats.spearman_kendall(windows[p.key].to_numpy(), windows[RATIO_KEY].to_numpy())
    return windows, scatter_panels, correlations


def resolved(runset: RunSet, opts: ReportOptions) -> ReportOptions:
    """``opts`` with ``network=auto`` replaced by the first of :data:`NETWORKS` whose approx. rank (in ``scope``) some
    run logs — the actor in a PPO sweep, the Q-network in a DQN sweep — or ``actor`` when none does."""
    opts.validate()
    if opts.network != "auto":
        return opts
    found = next((n for n in NETWORKS if runset.has_metric(opts.key("approx_rank", n)).any()), "actor")
    return dataclasses.replace(opts, network=found)


def compute_tables(runset: RunSet, opts: ReportOptions) -> AnalysisTables:
    """All statistics of the report (pure given the run set and options)."""
    opts = resolved(runset, opts)
    notes: list[str] = list(runset.notes)
    if opts.curves:
        runset.require_metrics(opts.curves)
    main = _main_curves(runset, opts, notes)
    signals = _signal_curves(runset, opts, {k for p in main.panels for k in p.keys})
    final, final_panels = _final_values(runset, opts, notes)
    windows, scatter_panels, correlations = _trust_windows(runset, opts, notes)
    rank_keys, agreement, hidden = _rank_agreement(runset, opts, notes)
    return AnalysisTables(
        curves=pd.concat([main.curves, signals.curves], ignore_index=True),
        run_curves=pd.concat([main.runs, signals.runs], ignore_index=True) if opts.per_run else None,
        main=main,
        signals=signals,
        hidden_ranks=hidden,
        final=final,
        windows=windows,
        window_correlations=correlations,
        agreement=agreement,
        curve_panels=main.panels,
        scatter_panels=scatter_panels,
        final_panels=final_panels,
        rank_keys=rank_keys,
        notes=notes,
    )


def _rank_agreement(
    runset: RunSet, opts: ReportOptions, notes: list[str]
) -> tuple[list[str], dict[str, dict[str, pd.DataFrame]] | None, dict[str, float]]:
    """Rank keys compared, their agreement (App. E.2) and the rank metrics hidden for being constant in every run."""
    logged = [opts.key(m) for m in opts.rank_metrics if _present(runset, opts.key(m))[0]]
    per_run = {r: runset.run_frame(r)[logged] for r in runset.runs.index}
    hidden = stats.constant_metrics(per_run, logged)
    if hidden:
        what = ", ".join(f"{k.rsplit('/', 1)[-1]} (= {v:.4g})" for k, v in hidden.items())
        notes.append(f"rank agreement: hidden, constant in every run so every correlation is undefined: {what}")
    rank_keys = [k for k in logged if k not in hidden]
    if len(rank_keys) < 2:
        notes.append(
            f"rank agreement: fewer than two non-constant metrics of {opts.rank_metrics} for {opts.network}; skipped"
        )
        return [], None, hidden
    widths = runset.runs["width"].astype(float)
    if not np.isfinite(widths).all():
        notes.append("rank agreement: feature width unknown (no model.hidden); pass feature_width=D for the L2")
    frames = {r: f[rank_keys] for r, f in per_run.items()}
    agreement = stats.rank_agreement(
        frames, rank_keys, {r: (w if np.isfinite(w) else np.nan) for r, w in widths.items()}
    )
    return rank_keys, agreement, hidden


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


def group_stats(final: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Per group and key, over the runs' end values (``final.csv``): runs with a finite value ``n``, ``mean``, the
    standard deviation ``std`` (ddof = 1) and the standard error of the mean ``se`` = std / √n; std and se are NaN
    for a single run (no spread to estimate), mean is NaN when no run has a finite value."""
    out = []
    for g, gdf in final.groupby("group", sort=False):
        for key in keys:
            v = gdf[key].astype(float) if key in gdf else pd.Series(dtype=float)
            v = v[np.isfinite(v)]
            n = len(v)
            std = float(v.std(ddof=1)) if n > 1 else float("nan")
            out.append(
                {
                    "group": g,
                    "key": key,
                    "n": n,
                    "mean": float(v.mean()) if n else float("nan"),
                    "std": std,
                    "se": std / math.sqrt(n) if n > 1 else float("nan"),
                }
            )
    return pd.DataFrame(out, columns=["group", "key", "n", "mean", "std", "se"])


def _group_summary(per_group: pd.DataFrame, runs: pd.Series, panels: Sequence[Panel]) -> pd.DataFrame:
    """The report's per-group table: the group's run count (``runs``: each run's group), then "mean ± SE" per panel
    (a lone finite value: that value)."""
    out = []
    titles = {p.key: p.title for p in panels}
    counts = runs.value_counts()
    for g, gdf in per_group.groupby("group", sort=False):
        row: dict[str, Any] = {"group": g, "runs": int(counts.get(g, 0))}
        for r in gdf.itertuples():
            cell = "–" if r.n == 0 else f"{r.mean:.4g}" if r.n == 1 else f"{r.mean:.4g} ± {r.se:.2g}"
            row[titles[r.key]] = cell
        out.append(row)
    return pd.DataFrame(out)


def _curves_caption(name: str, opts: ReportOptions) -> str:
    """What the curve figures show, with the smoothing actually applied."""
    if opts.smooth is None:
        how = "raw (smooth=none)"
    else:
        how = (
            f"smoothed with a centred moving average over {opts.smooth:.0%} of its budget in env steps, "
            "truncated to the logged points at both ends (capacity loss unsmoothed)"
        )
    what = (
        f"Moalla et al. 2024 Figs. 1-2 at the representation scope {opts.scope}"
        if name == "curves"
        else "every other logged key family, one panel per signal"
    )
    return (
        f"{what}. Per group: mean over seeds (line) and min/max over seeds (band) of each run {how}; faint dots are "
        "the raw logged points, the number at a curve's end is the group's mean last logged value. One line style "
        "per network (actor solid, critic dashed) or per signal, as in each panel's legend."
    )


FIGURE_HEADINGS = {
    "curves": "Training curves",
    "signals": "Further logged signals",
    "trust_region": "Trust region vs representation",
    "final": "Final values (interventions)",
    "rank_agreement": "Rank-metric agreement",
}


def _captions(tables: AnalysisTables, opts: ReportOptions) -> dict[str, str]:
    """HTML caption of each figure (escaped where it quotes metric names)."""
    hidden = html.escape(", ".join(k.rsplit("/", 1)[-1] for k in tables.hidden_ranks))
    n_runs = tables.windows["run"].nunique() if "run" in tables.windows else 0
    return {
        "curves": _curves_caption("curves", opts),
        "signals": _curves_caption("signals", opts),
        "trust_region": f"Per run, the {opts.n_windows} windows of {opts.window_frac:.0%} training progress with the "
        f"lowest average ratio below 1−ε; x = the window's average metric (Moalla et al. 2024 Fig. 4). "
        f"{len(tables.windows)} points from {n_runs} runs.",
        "final": f"Per run, the average over the last {opts.last_frac:.0%} of training; the excess ratio over the "
        f"latest {opts.last_frac:.0%} window with ≥ {opts.excess_min_count} non-trivial ratios (Moalla "
        "et al. 2024 Fig. 6, App. B.3). Boxes: quartiles, whiskers 1.5 IQR; dots: runs.",
        "rank_agreement": "Correlation / distance between the rank metrics' curves within each run, averaged over "
        "runs (top, ± std) and worst case (bottom); normalised L2 = √Σ(x−y)² / (√T·D), D = feature width "
        "(Moalla et al. App. E.2). Runs with a constant curve are excluded from that pair's correlations"
        + (f"; hidden, constant in every run: {hidden}." if hidden else "."),
    }


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

    captions = _captions(tables, opts)
    for name, heading in FIGURE_HEADINGS.items():
        if name in images:
            extra = ""
            if name == "final":
                per_group = group_stats(tables.final, [p.key for p in tables.final_panels])
                summary = _group_summary(per_group, tables.final["group"], tables.final_panels)
                extra = "<h3>Per group (mean ± standard error over runs; groups.csv)</h3>" + _fmt_table(summary)
            sections.append((name, heading, fig_block(name, captions[name]) + extra))
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


def _curve_figure(ct: CurveTables | None, colors: dict[str, str], ncols: int) -> Figure | None:
    if ct is None or not ct.panels:
        return None
    return figures.curves_figure(
        ct.curves, [(p.title, p.keys) for p in ct.panels], colors, ncols=ncols, raw=ct.raw, runs=ct.runs, last=ct.last
    )


def build_figures(runset: RunSet, tables: AnalysisTables) -> dict[str, Figure]:
    """Every figure of the report by name (``curves``, ``signals``, ``trust_region``, ``final``,
    ``rank_agreement``); a figure with nothing to show is absent."""
    colors = figures.group_colors(runset.groups)
    built: dict[str, Figure | None] = {
        "curves": _curve_figure(tables.main, colors, ncols=3),
        "signals": _curve_figure(tables.signals, colors, ncols=4),
    }
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
        labels = {k: k.rsplit("/", 1)[-1] for k in [*tables.rank_keys, *tables.hidden_ranks]}
        built["rank_agreement"] = figures.agreement_figure(tables.agreement, labels, tables.hidden_ranks)
    return {name: fig for name, fig in built.items() if fig is not None}


def make_report(runset: RunSet, out_dir: str | os.PathLike, opts: ReportOptions | None = None) -> ReportResult:
    """Compute the tables, draw and save every figure, write the CSVs and the HTML report into ``out_dir``."""
    opts = resolved(runset, opts or ReportOptions())
    tables = compute_tables(runset, opts)
    out_dir = Path(out_dir)
    fig_dir = out_dir / "figures"
    out_dir.mkdir(parents=True, exist_ok=True)

    built = build_figures(runset, tables)
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
    csv["groups"] = out_dir / "groups.csv"
    group_stats(tables.final, [p.key for p in tables.final_panels]).to_csv(csv["groups"], index=False)
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
