"""Statistics of the collapse figures vs hand-computed values (docs/experiments.md#figure-statistics)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from repdyn.analysis import stats


def test_window_smooth_by_hand():
    # width 2 = ±1 step: t=0 {0,1}, t=1 {0,1,2}, t=2 {1,2,3}, t=3 {2,3}, t=10 alone; the NaN at t=4 is skipped
    steps = [3, 0, 10, 1, 4, 2]  # any order: each value keeps its own step
    vals = [9.0, 0.0, 5.0, 1.0, np.nan, 2.0]
    out = stats.window_smooth(steps, vals, width=2.0)
    np.testing.assert_allclose(out[[1, 3, 5, 0, 2]], [0.5, 1.0, 4.0, 5.5, 5.0])
    assert math.isnan(out[4])


def test_window_smooth_zero_width_is_raw_and_bad_width_fails():
    x = np.random.default_rng(0).normal(size=30)
    np.testing.assert_array_equal(stats.window_smooth(np.arange(30), x, 0.0), x)
    with pytest.raises(ValueError, match="width"):
        stats.window_smooth([1.0], [1.0], -1.0)


def test_window_smooth_does_not_lag_a_linear_trend_inside():
    # a symmetric window on evenly spaced linear data returns the data; at the last point (half a window) it lags by
    # slope·width/4 = 1·10/4 (mean of t = 95..100)
    t = np.arange(101.0)
    out = stats.window_smooth(t, t, width=10.0)
    np.testing.assert_allclose(out[5:96], t[5:96])
    assert out[-1] == pytest.approx(97.5)


def _two_run_table():
    return pd.DataFrame(
        {
            "run": ["a"] * 3 + ["b"] * 3 + ["c"] * 3,
            "group": ["g1"] * 6 + ["g2"] * 3,
            "step": [1, 2, 3] * 3,
            "m": [0.0, 10.0, 20.0, 2.0, 12.0, 22.0, 5.0, 5.0, 5.0],
        }
    )


def test_group_curves_raw_mean_min_max():
    out = stats.group_curves(_two_run_table(), "m", frac=None)
    g1 = out[out.group == "g1"]
    np.testing.assert_allclose(g1["mean"], [1.0, 11.0, 21.0])
    np.testing.assert_allclose(g1["min"], [0.0, 10.0, 20.0])
    np.testing.assert_allclose(g1["max"], [2.0, 12.0, 22.0])
    assert g1["n"].tolist() == [2, 2, 2]
    np.testing.assert_allclose(out[out.group == "g2"]["mean"], [5.0, 5.0, 5.0])


def test_group_curves_smooths_each_run_before_the_band():
    # frac 1 of the last step 3 = width 3 = ±1.5: run a -> 5, 10, 15; run b -> 7, 12, 17
    out = stats.group_curves(_two_run_table(), "m", frac=1.0)
    g1 = out[out.group == "g1"]
    np.testing.assert_allclose(g1["mean"], [6.0, 11.0, 16.0])
    np.testing.assert_allclose(g1["min"], [5.0, 10.0, 15.0])
    np.testing.assert_allclose(g1["max"], [7.0, 12.0, 17.0])
    # a budget of 1.5 steps per run: width 1.5 = ±0.75 holds only the point itself
    raw = stats.group_curves(_two_run_table(), "m", frac=1.0, horizons={"a": 1.5, "b": 1.5, "c": 1.5})
    np.testing.assert_allclose(raw[raw.group == "g1"]["mean"], [1.0, 11.0, 21.0])


def test_run_curves_are_the_smoothed_runs_under_the_band():
    out = stats.run_curves(_two_run_table(), "m", frac=1.0)
    by_run = {r: g.sort_values("step")["value"].tolist() for r, g in out.groupby("run")}
    assert by_run == {"a": [5.0, 10.0, 15.0], "b": [7.0, 12.0, 17.0], "c": [5.0, 5.0, 5.0]}
    assert set(out[out.run == "c"]["group"]) == {"g2"}


def test_last_values_mean_of_each_runs_last_point():
    raw = stats.run_curves(_two_run_table(), "m", frac=None)
    raw = raw[~((raw.run == "b") & (raw.step == 3))]  # run b stopped a step early
    last = stats.last_values(raw).set_index("group")
    assert last.loc["g1", "value"] == pytest.approx((20.0 + 12.0) / 2) and last.loc["g1", "step"] == 3
    assert last.loc["g2", "value"] == 5.0 and last.loc["g2", "n"] == 1


def test_constant_metrics_found_with_their_value():
    runs = {
        "r1": pd.DataFrame({"x": [1.0, 2.0], "k": [64.0, 64.0], "j": [3.0, 3.0], "half": [1.0, 1.0]}),
        "r2": pd.DataFrame({"x": [1.0, 1.0], "k": [64.0, np.nan], "j": [4.0, 4.0], "half": [1.0, 2.0]}),
    }
    out = stats.constant_metrics(runs, ["x", "k", "j", "half"])
    assert set(out) == {"k", "j"}  # x and half vary in some run
    assert out["k"] == 64.0 and math.isnan(out["j"])  # j is constant per run but differs between runs


def test_group_curves_missing_column_is_a_clear_error():
    with pytest.raises(ValueError, match="no column 'nope'"):
        stats.group_curves(_two_run_table(), "nope")


def test_last_fraction_mean_linear_curve():
    steps = np.arange(1, 101)
    assert stats.last_fraction_mean(steps, steps.astype(float), 0.05) == pytest.approx(98.0)  # mean(96..100)
    vals = steps.astype(float)
    vals[-1] = np.nan  # non-finite values are skipped
    assert stats.last_fraction_mean(steps, vals, 0.05) == pytest.approx(97.5)
    # a run that stopped at half its budget has no value in the last 5%
    assert math.isnan(stats.last_fraction_mean(steps, steps.astype(float), 0.05, horizon=200))


def test_excess_ratio_all_defined_uses_the_last_window():
    steps = np.arange(1, 1001)
    out = stats.excess_ratio_window(steps, steps / 100.0)
    assert out["mean"] == pytest.approx(9.755)  # mean(951..1000)/100
    assert (out["end"], out["count"]) == (1000, 50)


def test_excess_ratio_moves_before_a_collapse():
    steps = np.arange(1, 1001)
    ex = np.full(1000, np.nan)
    ex[:600] = steps[:600] / 100.0  # defined until step 600
    ex[690:700] = steps[690:700] / 100.0  # then exactly 10 non-trivial ratios at steps 691..700
    for s in (800, 850, 900, 950, 1000):  # a few isolated ratios after the collapse: never 10 in a window
        ex[s - 1] = 1.0
    out = stats.excess_ratio_window(steps, ex)
    assert out["end"] == 700 and out["count"] == 10
    assert out["mean"] == pytest.approx(6.955)  # mean(691..700)/100


def test_excess_ratio_needs_ten_non_trivial_ratios():
    steps = np.arange(1, 1001)
    ex = np.full(1000, np.nan)
    ex[:10] = 1.0 + np.arange(10)
    assert stats.excess_ratio_window(steps, ex)["mean"] == pytest.approx(5.5)
    ex[9] = np.inf  # only 9 left
    out = stats.excess_ratio_window(steps, ex)
    assert math.isnan(out["mean"]) and out["count"] == 0


def _planted_windows_frame():
    steps = np.arange(1, 1001)  # horizon 1000, 1% windows of 10 steps: window i = steps 10i..10i+9
    ratio = np.full(1000, 0.85)
    for w, r in ((7, 0.5), (30, 0.6), (55, 0.4)):
        ratio[(steps // 10) == w] = r
    ratio[steps > 800] = np.nan  # collapsed: ratios trivially inside the clip range, never logged
    frame = pd.DataFrame({"trust_region/ratio_below_mean": ratio, "dead": steps.astype(float)})
    return steps, frame


def test_window_means_by_hand():
    steps, frame = _planted_windows_frame()
    means = stats.window_means(steps, frame, frac=0.01)
    assert means.loc[0, "dead"] == pytest.approx(5.0)  # steps 1..9
    assert means.loc[12, "dead"] == pytest.approx(124.5)  # steps 120..129
    assert means.loc[99, "dead"] == pytest.approx(995.0)  # steps 990..1000 (horizon joins the last window)
    assert (means.loc[12, "step_start"], means.loc[12, "step_end"]) == (120.0, 130.0)


def test_lowest_ratio_windows_finds_the_planted_ones():
    steps, frame = _planted_windows_frame()
    low = stats.lowest_ratio_windows(steps, frame, k=3)
    assert low.index.tolist() == [55, 7, 30]
    np.testing.assert_allclose(low["trust_region/ratio_below_mean"], [0.4, 0.5, 0.6])
    np.testing.assert_allclose(low["dead"], [554.5, 74.5, 304.5])
    # windows 81..99 have no ratio (window 80 still has step 800): at most 81 windows can be returned
    assert len(stats.lowest_ratio_windows(steps, frame, k=1000)) == 81


def test_pair_agreement_by_hand():
    out = stats.pair_agreement([1, 2, 3], [1, 3, 2], width=1.0)
    assert out["pearson"] == pytest.approx(0.5)  # cov 1 / sqrt(2*2)
    assert out["spearman"] == pytest.approx(0.5)
    assert out["kendall"] == pytest.approx(1 / 3)  # 2 concordant, 1 discordant
    assert out["l2"] == pytest.approx(math.sqrt(2) / math.sqrt(3))


def test_normalised_l2_linear_rank_curves():
    t = np.arange(10.0)
    # differences t+1 -> sqrt(sum 1..10 of k^2) / (sqrt(10) * D) with D = 10
    assert stats.normalised_l2(t, 2 * t + 1, 10) == pytest.approx(math.sqrt(385) / (math.sqrt(10) * 10))
    out = stats.pair_agreement(t, 2 * t + 1, 10)
    assert out["kendall"] == pytest.approx(1.0) and out["pearson"] == pytest.approx(1.0)


def test_rank_agreement_mean_worst_and_constant_runs_excluded():
    runs = {
        "r1": pd.DataFrame({"x": [1.0, 2, 3], "y": [1.0, 3, 2]}),
        "r2": pd.DataFrame({"x": [1.0, 2, 3], "y": [3.0, 2, 1]}),
        "r3": pd.DataFrame({"x": [1.0, 2, 3], "y": [2.0, 2, 2]}),  # constant: correlation undefined
    }
    out = stats.rank_agreement(runs, ["x", "y"], width=1.0)
    p = out["pearson"]
    assert p["mean"].loc["x", "y"] == pytest.approx(-0.25)
    assert p["worst"].loc["x", "y"] == pytest.approx(-1.0)
    assert p["std"].loc["x", "y"] == pytest.approx(0.75)
    assert p["n"].loc["x", "y"] == 2
    assert p["mean"].loc["x", "x"] == pytest.approx(1.0)
    l2 = out["l2"]
    r1, r2 = math.sqrt(2 / 3), math.sqrt(8 / 3)
    assert l2["mean"].loc["y", "x"] == pytest.approx((r1 + r2 + r1) / 3)
    assert l2["worst"].loc["x", "y"] == pytest.approx(r2)
    assert l2["n"].loc["x", "y"] == 3


def test_rank_agreement_errors_before_compute():
    with pytest.raises(ValueError, match="at least two"):
        stats.rank_agreement({"r": pd.DataFrame({"x": [1.0]})}, ["x"], 1.0)
    with pytest.raises(ValueError, match="no column"):
        stats.rank_agreement({"r": pd.DataFrame({"x": [1.0]})}, ["x", "y"], 1.0)
    with pytest.raises(ValueError, match="width"):
        stats.normalised_l2([1.0], [1.0], 0)


def test_spearman_kendall_on_scatter_points():
    out = stats.spearman_kendall([1, 2, 3, np.nan], [1, 3, 2, 5])
    assert out["n"] == 3 and out["kendall"] == pytest.approx(1 / 3) and out["spearman"] == pytest.approx(0.5)
