"""Matplotlib figures of the collapse analysis (Moalla et al. 2024 Figs. 1-2, 4, 6 and App. E figs. 36-41).

Every function takes tables already computed by :mod:`repdyn.analysis.stats` and returns a
:class:`matplotlib.figure.Figure` built with the object API (no pyplot global state, so figures can be made from
threads and never pop up a window).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

NETWORKS = ("actor", "critic", "trunk", "qnet")
# one line style per series of a panel (actor, critic, ...), colours being taken by the groups
_LINESTYLES = ("-", "--", ":", "-.")

_PALETTE = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#ff7f0e",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


def group_colors(groups: Sequence[str]) -> dict[str, str]:
    """A stable color per group (in the given order), shared by every figure of a report."""
    return {g: _PALETTE[i % len(_PALETTE)] for i, g in enumerate(groups)}


def _grid(n: int, ncols: int, panel_w: float, panel_h: float) -> tuple[Figure, np.ndarray]:
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    fig = Figure(figsize=(panel_w * ncols, panel_h * nrows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes


def si_steps(x: float, _pos: object = None) -> str:
    """Tick label for an env-step axis: 512, 6k, 1.5M, 10M (no "1e6" offset text to hunt for at the axis end)."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{suffix}"
    return f"{x:.3g}"


def _steps_formatter(ax) -> None:
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(si_steps))


def _corr(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:.2f}"


def series_label(key: str) -> str:
    """Legend label of one series in a panel: its network (``batch_end/critic/preact_norm`` → ``critic``), else the
    key's last component (``trust_region/ratio_below_mean`` → ``ratio_below_mean``)."""
    parts = key.split("/")
    return parts[1] if len(parts) == 3 and parts[1] in NETWORKS else parts[-1]


def _rows(frame: pd.DataFrame | None, key: str, group: str) -> pd.DataFrame:
    if frame is None or frame.empty:
        return pd.DataFrame(columns=["run", "step", "value"])
    return frame[(frame["metric"] == key) & (frame["group"] == group)].sort_values("step")


def _draw_series(ax, key: str, group: str, color: str, style: str, tables: Mapping[str, pd.DataFrame | None]) -> None:
    """One (metric, group) series: raw points faintly, each run (optional), the smoothed seed mean and its min/max
    band, and the last logged value written at the curve's end. Lines carry ``gid`` = ``<what>|<key>|<group>``."""
    raw = _rows(tables.get("raw"), key, group)
    # the raw points under the line let the reader see what the smoothing did (or that it did nothing)
    ax.plot(raw["step"], raw["value"], ls="none", marker=".", ms=3, alpha=0.3, color=color, gid=f"raw|{key}|{group}")
    for run, r in _rows(tables.get("runs"), key, group).groupby("run", sort=True):
        ax.plot(r["step"], r["value"], color=color, ls=style, lw=0.6, alpha=0.45, gid=f"run:{run}|{key}|{group}")
    band = _rows(tables.get("curves"), key, group)
    if band.empty:
        return
    ax.plot(band["step"], band["mean"], color=color, ls=style, lw=1.6, gid=f"mean|{key}|{group}")
    ax.fill_between(band["step"], band["min"], band["max"], color=color, alpha=0.15, lw=0)
    last = _rows(tables.get("last"), key, group)
    if not last.empty:
        x, y = float(last["step"].iloc[0]), float(last["value"].iloc[0])
        ax.plot([x], [y], marker="o", ms=4, mfc="none", color=color, gid=f"last|{key}|{group}")
        ax.annotate(f"{y:.3g}", (x, y), xytext=(4, 0), textcoords="offset points", color=color, fontsize=7, va="center")


def curves_figure(
    curves: pd.DataFrame,
    panels: Sequence[tuple[str, Sequence[str]]],
    colors: Mapping[str, str],
    *,
    ncols: int = 3,
    suptitle: str | None = None,
    raw: pd.DataFrame | None = None,
    runs: pd.DataFrame | None = None,
    last: pd.DataFrame | None = None,
) -> Figure:
    """Training curves: one panel per (title, keys), one line style per key (actor solid, critic dashed, ...), one
    colour per group. Per group and key: the seed mean of the smoothed runs (line), their min/max (band), the raw
    points (faint dots, ``raw``), each smoothed run (``runs``) and the last logged value (``last``, annotated).

    ``curves`` has columns metric, group, step, mean, min, max, n (:func:`repdyn.analysis.stats.group_curves`);
    ``raw`` and ``runs`` metric, group, run, step, value (:func:`repdyn.analysis.stats.run_curves`); ``last`` metric,
    group, step, value (:func:`repdyn.analysis.stats.last_values`)."""
    fig, axes = _grid(len(panels), ncols, 4.6, 3.1)
    tables = {"curves": curves, "raw": raw, "runs": runs, "last": last}
    for ax, (title, keys) in zip(axes, panels, strict=False):
        for i, key in enumerate(keys):
            for group, color in colors.items():
                _draw_series(ax, key, group, color, _LINESTYLES[i % len(_LINESTYLES)], tables)
        if len(keys) > 1 or series_label(keys[0]) in NETWORKS:  # say whose curve it is, even when it is alone
            handles = [
                Line2D([], [], color="0.3", ls=_LINESTYLES[i % len(_LINESTYLES)], label=series_label(k))
                for i, k in enumerate(keys)
            ]
            ax.legend(handles=handles, fontsize=7, frameon=False, handlelength=2.2)
        lo, hi = ax.get_xlim()
        ax.set_xlim(lo, hi + 0.12 * (hi - lo))  # room for the last-value labels right of the curves
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("environment steps", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        _steps_formatter(ax)
    counts = curves.groupby("group")["n"].max() if not curves.empty else pd.Series(dtype=float)
    handles = [
        Line2D([], [], color=c, lw=1.6, label=f"{g} (n={int(counts[g])})") for g, c in colors.items() if g in counts
    ]
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 6), fontsize=9, frameon=False)
    if suptitle:
        fig.suptitle(suptitle, fontsize=12)
    return fig


def scatter_figure(
    windows: pd.DataFrame,
    x_panels: Sequence[tuple[str, str]],
    ratio_key: str,
    colors: Mapping[str, str],
    correlations: Mapping[str, Mapping[str, float]],
    *,
    ratio_label: str = "avg. probability ratio below 1-eps",
) -> Figure:
    """Trust-region scatter (Fig. 4): each point is one low-ratio 1% window of one run; y = its mean ratio below
    1-ε, x = the window's mean of a representation metric. Titles carry Kendall τ / Spearman ρ over all points."""
    fig, axes = _grid(len(x_panels), len(x_panels), 4.6, 3.6)
    for ax, (key, title) in zip(axes, x_panels, strict=False):
        for group, color in colors.items():
            g = windows[windows["group"] == group]
            if g.empty or key not in g:
                continue
            ax.scatter(g[key], g[ratio_key], s=16, color=color, alpha=0.7, edgecolor="none", label=group)
        c = correlations.get(key, {})
        constant = key in windows and windows[key].nunique(dropna=True) <= 1  # rank correlation undefined
        ax.set_title(
            f"{title}\nKendall τ={_corr(c.get('kendall', np.nan))}  Spearman ρ={_corr(c.get('spearman', np.nan))}"
            f"  (n={c.get('n', 0)}{'; x constant' if constant else ''})",
            fontsize=9,
        )
        ax.set_xlabel(title, fontsize=8)
        ax.set_ylabel(ratio_label, fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 6), fontsize=9, frameon=False)
    return fig


def boxplot_figure(
    final: pd.DataFrame,
    panels: Sequence[tuple[str, str, bool]],
    groups: Sequence[str],
    colors: Mapping[str, str],
    *,
    ncols: int = 4,
) -> Figure:
    """Intervention boxplots (Fig. 6): per group a box over runs of the run's last-5% value (Matplotlib's default
    whiskers, 1.5 IQR, as in App. B.3), with the runs drawn as points. Panels are (column, title, log-scale)."""
    fig, axes = _grid(len(panels), ncols, 3.6, 3.2)
    for ax, (col, title, log) in zip(axes, panels, strict=False):
        data = [final.loc[final["group"] == g, col].astype(float).dropna().to_numpy() for g in groups]
        positions = np.arange(1, len(groups) + 1)
        keep = [i for i, d in enumerate(data) if d.size]
        if keep:
            bp = ax.boxplot(
                [data[i] for i in keep],
                positions=positions[keep],
                vert=False,
                widths=0.6,
                patch_artist=True,
                showfliers=False,  # every run is drawn as a dot below, outliers included
                medianprops={"color": "black", "lw": 1.2},
            )
            for patch, i in zip(bp["boxes"], keep, strict=True):
                patch.set_facecolor(colors[groups[i]])
                patch.set_alpha(0.35)
            rng = np.random.default_rng(0)
            for i in keep:
                jitter = rng.uniform(-0.12, 0.12, size=data[i].size)
                ax.scatter(data[i], positions[i] + jitter, s=14, color=colors[groups[i]], zorder=3)
        ax.set_yticks(positions, labels=list(groups), fontsize=8)
        ax.set_ylim(len(groups) + 0.6, 0.4)  # first group on top
        if log and keep:
            vals = np.concatenate([data[i] for i in keep])
            # log scale only pays off when the values span more than a decade (excess ratios before a collapse do)
            if (vals > 0).all() and vals.max() / vals.min() > 10:
                ax.set_xscale("log")
        if ax.get_xscale() == "linear":
            from matplotlib.ticker import MaxNLocator

            # few ticks, and an exponent for tiny or huge values (capacity losses ~1e-4 otherwise overlap)
            ax.xaxis.set_major_locator(MaxNLocator(4))
            ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 4), useMathText=True)
        ax.set_title(title, fontsize=9)
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(alpha=0.3, axis="x")
    return fig


def text_color(rgba: Sequence[float]) -> str:
    """Black or white, whichever contrasts more with a background of colour ``rgba`` (channels in [0, 1]).

    Relative luminance of WCAG 2.1: L = 0.2126 R + 0.7152 G + 0.0722 B on linearised sRGB channels
    (c ≤ 0.04045: c / 12.92, else ((c + 0.055) / 1.055)^2.4). The contrast ratio with black, (L + 0.05) / 0.05,
    beats the one with white, 1.05 / (L + 0.05), exactly when L > √(1.05 · 0.05) − 0.05 ≈ 0.179."""
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgba[:3])
    lum = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return "black" if lum > math.sqrt(1.05 * 0.05) - 0.05 else "white"


def _cell_text(value: float, std: float, with_std: bool) -> str:
    if not np.isfinite(value):
        return "n/a"
    return f"{value:.2f}\n±{std:.2f}" if with_std else f"{value:.2f}"


def _heatmap(ax, m: np.ndarray, std: np.ndarray, stat: str, with_std: bool):
    """One agreement matrix with its numbers written in the colour that reads on each cell."""
    if stat == "l2":
        vmax = np.nanmax(m) if np.isfinite(m).any() and np.nanmax(m) > 0 else 1.0
        im = ax.imshow(m, cmap="magma_r", vmin=0.0, vmax=vmax)
    else:
        im = ax.imshow(m, cmap="RdBu", vmin=-1.0, vmax=1.0)
    for (i, j), v in np.ndenumerate(m):
        # NaN cells are left transparent by imshow: the text sits on the white axes background
        color = text_color(im.cmap(im.norm(v))) if np.isfinite(v) else "black"
        ax.text(j, i, _cell_text(v, std[i, j], with_std and i != j), ha="center", va="center", fontsize=7, color=color)
    return im


def agreement_figure(
    agreement: Mapping[str, Mapping[str, pd.DataFrame]],
    labels: Mapping[str, str] | None = None,
    hidden: Mapping[str, float] | None = None,
) -> Figure:
    """Rank-metric agreement heatmaps (App. E.2): top row the average over runs (annotated mean ± std), bottom row the
    worst case (min correlation, max normalised L2). ``hidden`` (metric → its constant value) is written under the
    figure: metrics constant in every run, left out because their correlations are undefined."""
    stats_order = [s for s in ("kendall", "spearman", "pearson", "l2") if s in agreement]
    titles = {"kendall": "Kendall τ", "spearman": "Spearman ρ", "pearson": "Pearson r", "l2": "normalised L2"}
    any_frame = agreement[stats_order[0]]["mean"]
    names = [labels.get(m, m) if labels else m for m in any_frame.index]
    k = len(names)
    side = max(3.2, 0.55 * k + 1.6)
    fig = Figure(figsize=(side * len(stats_order), side * 2 * 0.9), layout="constrained")
    axes = fig.subplots(2, len(stats_order), squeeze=False)
    for col, s in enumerate(stats_order):
        for row, kind in enumerate(("mean", "worst")):
            ax = axes[row, col]
            m = agreement[s][kind].to_numpy(dtype=float)
            im = _heatmap(ax, m, agreement[s]["std"].to_numpy(dtype=float), s, kind == "mean")
            ax.set_xticks(range(k), labels=names, rotation=45, ha="right", fontsize=7)
            ax.set_yticks(range(k), labels=names, fontsize=7)
            ax.set_title(f"{titles[s]} — {'average' if kind == 'mean' else 'worst case'}", fontsize=9)
            fig.colorbar(im, ax=ax, shrink=0.7)
    if hidden:
        what = ", ".join(
            f"{labels.get(m, m) if labels else m} (= {v:.4g})" if np.isfinite(v) else (labels or {}).get(m, m)
            for m, v in hidden.items()
        )
        fig.supxlabel(f"hidden, constant in every run so correlations are undefined: {what}", fontsize=8)
    return fig


def save_figure(
    fig: Figure, out_dir: str | os.PathLike, name: str, formats: Sequence[str], dpi: int = 110
) -> list[Path]:
    """Save ``fig`` as ``out_dir/name.<fmt>`` for each format; return the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in sorted(formats, key=lambda f: f != "png"):  # png first: the HTML report embeds paths[0]
        path = out_dir / f"{name}.{fmt}"
        fig.savefig(path, dpi=dpi, format=fmt)
        paths.append(path)
    return paths
