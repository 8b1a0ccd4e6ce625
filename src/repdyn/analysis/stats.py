"""Statistics behind the collapse figures: pure functions, arrays/frames in, numbers out
(docs/experiments.md#figure-statistics; Moalla et al. 2024 App. B.3-B.4 and App. E.2, arXiv:2405.00662).

Conventions fixed here (the paper leaves them implicit):

* Step axis = environment steps. "Training progress" is ``step / horizon`` where ``horizon`` is the run's budget
  (``train.total_frames``) when known, else its last logged step.
* Smoothing: a centred moving average over a window measured in env steps, ``width = frac · horizon`` (``frac`` =
  0.02 by default): ``s_k = mean{x_i : |t_i − t_k| ≤ width/2, x_i finite}``. Near either end the window holds only
  the logged points on one side, so the start is not pulled towards a zero initial state (no bias to correct) and the
  curve never extends past the last logged step; at the end it lags a linear trend by slope·width/4. A per-point
  EWMA (Moalla et al. 2024 §3, α = 0.05) averages over ~1/α = 20 *log points* whatever the horizon: at the default
  cadence (a record every 0.1% of the budget) that is 2% of training, but over a 20-record run it reaches back to
  the start and reads far behind the raw value, which a window in env steps does not. A non-finite ``x_k`` has no
  smoothed value.
* Seed bands: each run is smoothed first, then mean / min / max over the runs that have a value at that step, so the
  shading shows the spread of the smoothed seed curves (raw min/max would mostly show logging noise).
* Last-5% averages: mean of the finite values with ``step`` in ``(horizon − 0.05·horizon, horizon]``.
* Excess ratio (App. B.3, Fig. 6): a "non-trivial ratio" is a log step where ``excess_ratio`` is finite (it is only
  logged when both ratio sets are non-empty). The window has width 5% of the horizon and the latest end ``e`` such that
  ``(e − w, e]`` holds at least 10 non-trivial ratios; candidate ends are the horizon and every non-trivial step
  (moving an end between two non-trivial steps only adds earlier points, so these candidates are enough). The value is
  the mean of the non-trivial ratios in that window, NaN when no window qualifies.
* 1% windows (Fig. 4): window ``i`` holds steps with ``floor(step · n / horizon) = i`` for ``n = round(1/frac)``
  (the step equal to the horizon joins the last window); metrics are averaged per window ignoring non-finite values,
  windows whose ratio average is undefined (trivial ratios, e.g. after a collapse) are dropped, and the ``k`` windows
  with the lowest ``ratio_below_mean`` are kept.
* Rank-metric agreement (App. E.2): on the log steps where both curves are finite, Kendall τ-b (ties are the norm for
  integer ranks), Spearman ρ, Pearson r and the normalised L2 distance ``√Σ(x_t−y_t)² / (√T · D)`` with D the feature
  width. Correlations of a constant curve are undefined (NaN) and excluded from the average and the worst case, as the
  paper excludes runs with constant trivial ranks. Worst case = minimum correlation / maximum distance over runs.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

AGREEMENT_STATS = ("kendall", "spearman", "pearson", "l2")


def _as_float_array(x: Sequence[float] | np.ndarray | pd.Series, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def _check_frac(frac: float, name: str = "frac") -> None:
    if not (0.0 < frac <= 1.0):
        raise ValueError(f"{name} must be in (0, 1], got {frac}")


def _horizon(steps: np.ndarray, horizon: float | None) -> float:
    if horizon is not None:
        if not horizon > 0:
            raise ValueError(f"horizon must be > 0, got {horizon}")
        return float(horizon)
    if steps.size == 0:
        return float("nan")
    return float(np.max(steps))


def window_smooth(
    steps: Sequence[float] | np.ndarray, values: Sequence[float] | np.ndarray, width: float
) -> np.ndarray:
    """Centred moving average in step units: ``s_k = mean{x_i : |t_i − t_k| ≤ width/2, x_i finite}`` at every finite
    ``x_k`` (NaN elsewhere). The window is truncated to the logged points at both ends, so the first and last values
    average only real points (see module docstring); ``width = 0`` returns the raw values."""
    if not width >= 0:
        raise ValueError(f"width must be >= 0 (env steps), got {width}")
    t, x = _as_float_array(steps, "steps"), _as_float_array(values, "values")
    if t.shape != x.shape:
        raise ValueError(f"steps and values must have the same length, got {t.shape} and {x.shape}")
    ok = np.isfinite(x) & np.isfinite(t)
    order = np.argsort(t[ok], kind="stable")
    ft, fx = t[ok][order], x[ok][order]
    lo = np.searchsorted(ft, ft - width / 2, side="left")
    hi = np.searchsorted(ft, ft + width / 2, side="right")
    out = np.full_like(x, np.nan)
    if width == 0 or fx.size == 0:
        out[ok] = x[ok]
        return out
    # window sums as differences of a running sum, taken around the mean to keep the cancellation error small
    centre = float(np.mean(fx))
    csum = np.concatenate([[0.0], np.cumsum(fx - centre)])
    smoothed = np.empty_like(fx)
    smoothed[order] = centre + (csum[hi] - csum[lo]) / (hi - lo)
    out[ok] = smoothed
    return out


def seed_band(curves: pd.DataFrame) -> pd.DataFrame:
    """Mean, min, max and count over runs per step, for a frame indexed by step with one column per run.

    Non-finite entries are ignored; steps where no run has a value are dropped."""
    vals = curves.astype(float).replace([np.inf, -np.inf], np.nan)
    out = pd.DataFrame(
        {"mean": vals.mean(axis=1), "min": vals.min(axis=1), "max": vals.max(axis=1), "n": vals.count(axis=1)},
        index=curves.index,
    )
    return out[out["n"] > 0]


def group_curves(
    table: pd.DataFrame,
    metric: str,
    *,
    run_col: str = "run",
    group_col: str = "group",
    step_col: str = "step",
    frac: float | None = 0.02,
    horizons: Mapping[Any, float] | None = None,
) -> pd.DataFrame:
    """Training-curve statistics per group: each run's ``metric`` smoothed with :func:`window_smooth` over
    ``frac · horizon`` env steps (``frac=None``: raw, as for capacity loss), then :func:`seed_band` over the group's
    runs. ``horizons`` maps run → budget (default: the run's last logged step). Returns columns group, step, mean,
    min, max, n."""
    parts = []
    for group, wide in _smoothed_runs(table, metric, run_col, group_col, step_col, frac, horizons):
        band = seed_band(wide).reset_index().rename(columns={step_col: "step"})
        band.insert(0, "group", group)
        parts.append(band)
    if not parts:
        return pd.DataFrame(columns=["group", "step", "mean", "min", "max", "n"])
    return pd.concat(parts, ignore_index=True)


def run_curves(
    table: pd.DataFrame,
    metric: str,
    *,
    run_col: str = "run",
    group_col: str = "group",
    step_col: str = "step",
    frac: float | None = 0.02,
    horizons: Mapping[Any, float] | None = None,
) -> pd.DataFrame:
    """Each run's ``metric`` smoothed as in :func:`group_curves` (``frac=None``: the raw points). Returns columns
    group, run, step, value (logged finite values only)."""
    parts = []
    for group, wide in _smoothed_runs(table, metric, run_col, group_col, step_col, frac, horizons):
        long = wide.reset_index().melt(id_vars=step_col, var_name="run", value_name="value").dropna(subset=["value"])
        long = long.rename(columns={step_col: "step"})
        long.insert(0, "group", group)
        parts.append(long[["group", "run", "step", "value"]])
    if not parts:
        return pd.DataFrame(columns=["group", "run", "step", "value"])
    return pd.concat(parts, ignore_index=True)


def _smoothed_runs(
    table: pd.DataFrame,
    metric: str,
    run_col: str,
    group_col: str,
    step_col: str,
    frac: float | None,
    horizons: Mapping[Any, float] | None,
) -> list[tuple[Any, pd.DataFrame]]:
    """Per group: a frame indexed by step with one smoothed column per run (NaN where the run did not log)."""
    for col in (run_col, group_col, step_col, metric):
        if col not in table.columns:
            raise ValueError(f"table has no column {col!r}; columns: {sorted(map(str, table.columns))}")
    if frac is not None:
        _check_frac(frac)
    out = []
    for group, gdf in table.groupby(group_col, sort=True):
        wide = gdf.pivot_table(index=step_col, columns=run_col, values=metric, aggfunc="last").sort_index()
        if frac is not None:
            steps = wide.index.to_numpy(dtype=float)
            for run in wide.columns:
                # each run over its own budget, so runs of one group with different budgets get the same share
                h = _horizon(steps[wide[run].notna().to_numpy()], (horizons or {}).get(run))
                wide[run] = window_smooth(steps, wide[run].to_numpy(dtype=float), frac * h if h == h else 0.0)
        out.append((group, wide))
    return out


def last_values(raw: pd.DataFrame) -> pd.DataFrame:
    """Per group, the mean over runs of each run's last logged value, ``v_g = mean_r x_r(T_r)``, and the latest of
    those steps ``max_r T_r`` (where the annotation goes). ``raw`` has columns group, run, step, value (finite values
    only, as :func:`run_curves` with ``frac=None`` returns). Returns columns group, step, value, n."""
    if raw.empty:
        return pd.DataFrame(columns=["group", "step", "value", "n"])
    last = raw.sort_values("step", kind="stable").groupby(["group", "run"], sort=False).tail(1)
    out = last.groupby("group", sort=False).agg(step=("step", "max"), value=("value", "mean"), n=("run", "count"))
    return out.reset_index()


def last_fraction_mean(
    steps: Sequence[float] | np.ndarray,
    values: Sequence[float] | np.ndarray,
    frac: float = 0.05,
    horizon: float | None = None,
) -> float:
    """Mean of the finite ``values`` with ``step ∈ (horizon·(1 − frac), horizon]`` (Moalla §5: "averages over the last
    5% of training progress"). NaN when the window holds no finite value (e.g. a run that stopped early)."""
    _check_frac(frac)
    s, v = _as_float_array(steps, "steps"), _as_float_array(values, "values")
    if s.shape != v.shape:
        raise ValueError(f"steps and values must have the same length, got {s.shape} and {v.shape}")
    h = _horizon(s, horizon)
    mask = (s > h - frac * h) & (s <= h) & np.isfinite(v)
    return float(np.mean(v[mask])) if mask.any() else float("nan")


def excess_ratio_window(
    steps: Sequence[float] | np.ndarray,
    excess_ratio: Sequence[float] | np.ndarray,
    frac: float = 0.05,
    min_count: int = 10,
    horizon: float | None = None,
) -> dict[str, float]:
    """Average excess ratio over the latest 5%-of-training window holding ≥ ``min_count`` non-trivial (finite) ratios
    (Moalla et al. 2024 App. B.3, "Figure 6"). Returns ``{"mean", "start", "end", "count"}`` (window
    ``(start, end]``); ``mean`` is NaN and ``count`` 0 when no window qualifies."""
    _check_frac(frac)
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}")
    s, v = _as_float_array(steps, "steps"), _as_float_array(excess_ratio, "excess_ratio")
    if s.shape != v.shape:
        raise ValueError(f"steps and excess_ratio must have the same length, got {s.shape} and {v.shape}")
    h = _horizon(s, horizon)
    ok = np.isfinite(v) & (s <= h)
    fs, fv = s[ok], v[ok]
    width = frac * h
    for end in sorted({h, *fs.tolist()}, reverse=True):
        inside = (fs > end - width) & (fs <= end)
        if inside.sum() >= min_count:
            return {"mean": float(np.mean(fv[inside])), "start": end - width, "end": end, "count": int(inside.sum())}
    return {"mean": float("nan"), "start": float("nan"), "end": float("nan"), "count": 0}


def window_means(
    steps: Sequence[float] | np.ndarray,
    frame: pd.DataFrame,
    frac: float = 0.01,
    horizon: float | None = None,
) -> pd.DataFrame:
    """Average every column of ``frame`` (rows aligned with ``steps``) over windows of ``frac`` of training progress.

    Index: window number ``i`` (window ``[i, i+1)·frac·horizon``, the horizon itself in the last one); columns: the
    frame's, plus ``step_start``/``step_end``. Non-finite values are ignored; windows without a log step are absent."""
    _check_frac(frac)
    s = _as_float_array(steps, "steps")
    if len(frame) != s.size:
        raise ValueError(f"frame has {len(frame)} rows but steps has {s.size}")
    h = _horizon(s, horizon)
    n = int(round(1.0 / frac))
    keep = (s >= 0) & (s <= h)
    # step·n/h is exact for integer steps that are multiples of h/n, so planted windows land where expected
    idx = np.minimum(np.floor(s[keep] * n / h), n - 1).astype(int)
    vals = frame.loc[keep].astype(float).replace([np.inf, -np.inf], np.nan)
    means = vals.groupby(idx).mean()
    means.index.name = "window"
    means.insert(0, "step_end", (means.index.to_numpy() + 1) * h / n)
    means.insert(0, "step_start", means.index.to_numpy() * h / n)
    return means


def lowest_ratio_windows(
    steps: Sequence[float] | np.ndarray,
    frame: pd.DataFrame,
    ratio_col: str = "trust_region/ratio_below_mean",
    k: int = 20,
    frac: float = 0.01,
    horizon: float | None = None,
) -> pd.DataFrame:
    """The ``k`` windows of ``frac`` training progress with the lowest average ``ratio_col`` (Moalla
    et al. 2024 §3.2 fn. 8 and App. B.3 "Figure 4"), sorted ascending by that ratio. Windows where the ratio
    average is undefined are dropped, so a run that collapses early gives fewer than ``k`` points (as in the paper)."""
    if ratio_col not in frame.columns:
        raise ValueError(f"ratio_col={ratio_col!r} is not a column of frame; columns: {list(frame.columns)}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    means = window_means(steps, frame, frac=frac, horizon=horizon)
    means = means[means[ratio_col].notna()]
    return means.sort_values(ratio_col, kind="stable").head(k)


def normalised_l2(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, width: float) -> float:
    """``√Σ_t (x_t − y_t)² / (√T · D)`` over the T steps where both are finite; D = feature width (Moalla App. E.2)."""
    if not width > 0:
        raise ValueError(f"width must be > 0 (the feature width D), got {width}")
    a, b = _as_float_array(x, "x"), _as_float_array(y, "y")
    if a.shape != b.shape:
        raise ValueError(f"x and y must have the same length, got {a.shape} and {b.shape}")
    ok = np.isfinite(a) & np.isfinite(b)
    t = int(ok.sum())
    if t == 0:
        return float("nan")
    return float(np.sqrt(np.sum((a[ok] - b[ok]) ** 2)) / (np.sqrt(t) * width))


def pair_agreement(
    x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, width: float | None
) -> dict[str, float]:
    """Kendall τ-b, Spearman ρ, Pearson r and normalised L2 between two curves of one run (finite pairs only).
    Correlations are NaN for fewer than 2 points or a constant curve; L2 is NaN when ``width`` is None or NaN
    (feature width unknown)."""
    a, b = _as_float_array(x, "x"), _as_float_array(y, "y")
    if a.shape != b.shape:
        raise ValueError(f"x and y must have the same length, got {a.shape} and {b.shape}")
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    out = {"l2": float("nan") if width is None or np.isnan(width) else normalised_l2(a, b, width)}
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        out.update(kendall=float("nan"), spearman=float("nan"), pearson=float("nan"))
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns on near-constant input; the NaN it returns is what we want
        out["kendall"] = float(sps.kendalltau(a, b).statistic)
        out["spearman"] = float(sps.spearmanr(a, b).statistic)
        out["pearson"] = float(sps.pearsonr(a, b).statistic)
    return {k: out[k] for k in AGREEMENT_STATS}


def rank_agreement(
    runs: Mapping[str, pd.DataFrame],
    metrics: Sequence[str],
    width: float | None | Mapping[str, float | None],
) -> dict[str, dict[str, pd.DataFrame]]:
    """Agreement between rank metrics across runs (Moalla et al. 2024 App. E.2).

    ``runs`` maps a run id to a frame whose columns include ``metrics`` (one row per log step); ``width`` is the
    feature width D, one number or one per run. Returns ``{stat: {"mean", "std", "worst", "n"}}`` with each value a
    metrics × metrics frame: average over runs, its standard deviation, the worst case (min correlation, max L2) and
    the number of runs where the statistic was defined."""
    if not runs:
        raise ValueError("runs is empty: need at least one run to compare rank metrics")
    if len(metrics) < 2:
        raise ValueError(f"metrics needs at least two rank metrics, got {list(metrics)}")
    per_stat: dict[str, np.ndarray] = {
        s: np.full((len(runs), len(metrics), len(metrics)), np.nan) for s in AGREEMENT_STATS
    }
    for r, (run_id, df) in enumerate(runs.items()):
        missing = [m for m in metrics if m not in df.columns]
        if missing:
            raise ValueError(f"run {run_id!r} has no column(s) {missing}")
        w = width[run_id] if isinstance(width, Mapping) else width
        for i, mi in enumerate(metrics):
            for j in range(i, len(metrics)):
                vals = pair_agreement(df[mi].to_numpy(), df[metrics[j]].to_numpy(), w)
                for s in AGREEMENT_STATS:
                    per_stat[s][r, i, j] = per_stat[s][r, j, i] = vals[s]
    out: dict[str, dict[str, pd.DataFrame]] = {}
    for s, arr in per_stat.items():
        frames = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices → NaN, which is the honest answer
            frames["mean"] = np.nanmean(arr, axis=0)
            frames["std"] = np.nanstd(arr, axis=0)
            frames["worst"] = np.nanmax(arr, axis=0) if s == "l2" else np.nanmin(arr, axis=0)
        frames["n"] = np.isfinite(arr).sum(axis=0).astype(float)
        out[s] = {k: pd.DataFrame(v, index=list(metrics), columns=list(metrics)) for k, v in frames.items()}
    return out


def constant_metrics(runs: Mapping[str, pd.DataFrame], metrics: Sequence[str]) -> dict[str, float]:
    """Metrics whose curve is constant in every run (``max_t x_t = min_t x_t`` over the finite values, or no finite
    value at all), mapped to that constant (NaN when it differs between runs or was never logged). Their
    correlations with anything are undefined in every run (a rank correlation needs two distinct values), so an
    agreement heatmap would show only "n/a" for them."""
    out = {}
    for m in metrics:
        vals = [df[m].to_numpy(dtype=float) if m in df else np.array([]) for df in runs.values()]
        finite = [v[np.isfinite(v)] for v in vals]
        if all(f.size == 0 or np.ptp(f) == 0 for f in finite):
            firsts = {float(f[0]) for f in finite if f.size}
            out[m] = firsts.pop() if len(firsts) == 1 else float("nan")
    return out


def spearman_kendall(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> dict[str, float]:
    """Kendall τ-b and Spearman ρ on the finite pairs (NaN when undefined), as annotated on the Fig. 4 scatters."""
    a, b = _as_float_array(x, "x"), _as_float_array(y, "y")
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return {"kendall": float("nan"), "spearman": float("nan"), "n": int(a.size)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "kendall": float(sps.kendalltau(a, b).statistic),
            "spearman": float(sps.spearmanr(a, b).statistic),
            "n": int(a.size),
        }
