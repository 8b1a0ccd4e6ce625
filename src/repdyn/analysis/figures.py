"""Matplotlib figures of the collapse analysis (Moalla et al. 2024 Figs. 1-2, 4, 6 and App. E figs. 36-41).

Every function takes tables already computed by :mod:`repdyn.analysis.stats` and returns a
:class:`matplotlib.figure.Figure` built with the object API (no pyplot global state, so figures can be made from
threads and never pop up a window).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

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


def curves_figure(
    curves: pd.DataFrame,
    panels: Sequence[tuple[str, str]],
    colors: Mapping[str, str],
    *,
    ncols: int = 3,
    suptitle: str | None = None,
    runs: pd.DataFrame | None = None,
) -> Figure:
    """Training curves: one panel per (metric, title); per group the seed mean (line) and min/max (band), and with
    ``runs`` (columns metric, group, run, step, value: :func:`repdyn.analysis.stats.run_curves`) each run as a thin
    line in its group's color.

    ``curves`` has columns metric, group, step, mean, min, max (see :func:`repdyn.analysis.stats.group_curves`)."""
    fig, axes = _grid(len(panels), ncols, 4.6, 3.1)
    for ax, (key, title) in zip(axes, panels, strict=False):
        sub = curves[curves["metric"] == key]
        for group, color in colors.items():
            g = sub[sub["group"] == group].sort_values("step")
            if g.empty:
                continue
            n = int(g["n"].max())
            if runs is not None:
                mine = runs[(runs["metric"] == key) & (runs["group"] == group)]
                for _, r in mine.groupby("run", sort=True):
                    r = r.sort_values("step")
                    ax.plot(r["step"], r["value"], color=color, lw=0.6, alpha=0.45)
            ax.plot(g["step"], g["mean"], color=color, lw=1.6, label=f"{group} (n={n})")
            ax.fill_between(g["step"], g["min"], g["max"], color=color, alpha=0.2, lw=0)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("environment steps", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        _steps_formatter(ax)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 6), fontsize=9, frameon=False)
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


def agreement_figure(
    agreement: Mapping[str, Mapping[str, pd.DataFrame]],
    labels: Mapping[str, str] | None = None,
) -> Figure:
    """Rank-metric agreement heatmaps (App. E.2): top row the average over runs (annotated mean ± std), bottom row the
    worst case (min correlation, max normalised L2)."""
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
            if s == "l2":
                vmax = np.nanmax(m) if np.isfinite(m).any() and np.nanmax(m) > 0 else 1.0
                im = ax.imshow(m, cmap="magma_r", vmin=0.0, vmax=vmax)
            else:
                im = ax.imshow(m, cmap="RdBu", vmin=-1.0, vmax=1.0)
            std = agreement[s]["std"].to_numpy(dtype=float)
            for i in range(k):
                for j in range(k):
                    if not np.isfinite(m[i, j]):
                        txt = "n/a"
                    elif kind == "mean" and i != j:
                        txt = f"{m[i, j]:.2f}\n±{std[i, j]:.2f}"
                    else:
                        txt = f"{m[i, j]:.2f}"
                    ax.text(j, i, txt, ha="center", va="center", fontsize=7)
            ax.set_xticks(range(k), labels=names, rotation=45, ha="right", fontsize=7)
            ax.set_yticks(range(k), labels=names, fontsize=7)
            ax.set_title(f"{titles[s]} — {'average' if kind == 'mean' else 'worst case'}", fontsize=9)
            fig.colorbar(im, ax=ax, shrink=0.7)
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
