"""What the curve figures draw, read back from the Matplotlib artists: the smoothed end value of a curve that jumps
near the end of training, raw points, last-value labels, every network's series, and the rank heatmaps' labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from repdyn import analyze
from repdyn.analysis import figures, stats
from repdyn.analysis.loader import AnalysisError, RunRecord, build_runset
from repdyn.analysis.report import ReportOptions, build_figures, compute_tables

ACTOR, CRITIC = "batch_start/actor/preact_norm", "batch_start/critic/preact_norm"
GROUP = "epochs=1"


def _jump_runset(n_logs: int, jump_k: int, horizon: int = 100_000):
    """Two seeds logging ``n_logs`` evenly spaced records; the actor's pre-activation norm is 8 + 0.2·seed up to log
    ``jump_k`` and 11 + 0.2·seed after it (the critic's is twice that), so the raw end value is 11.1 (22.2)."""
    k = np.arange(1, n_logs + 1)
    records = []
    for seed in (0, 1):
        actor = np.where(k > jump_k, 11.0, 8.0) + 0.2 * seed
        hist = pd.DataFrame({"step": (k * horizon // n_logs).astype(float), ACTOR: actor, CRITIC: 2 * actor})
        cfg = OmegaConf.create({"seed": seed, "agent": {"epochs": 1}, "train": {"total_frames": horizon}})
        records.append(RunRecord(f"s{seed}", "memory", cfg, hist, overrides=["agent.epochs=1", f"seed={seed}"]))
    return build_runset(records, group_by="agent.epochs")


def _lines(fig, kind: str, key: str) -> list:
    return [ln for ax in fig.axes for ln in ax.lines if ln.get_gid() == f"{kind}|{key}|{GROUP}"]


def _drawn(runset, opts: ReportOptions):
    return build_figures(runset, compute_tables(runset, opts))["curves"]


@pytest.mark.parametrize(("n_logs", "jump_k"), [(20, 15), (1000, 980)])
def test_smoothed_end_value_follows_a_late_jump(n_logs, jump_k):
    """20 records (a short run) jumping 5 records before the end, and 1000 records jumping 20 before the end: the
    plotted end of the smoothed curve is within 5% of the raw end value; the per-point EWMA (α = 0.05) is not."""
    runset = _jump_runset(n_logs, jump_k)
    fig = _drawn(runset, ReportOptions(formats=["png"]))
    for key, raw_end in ((ACTOR, 11.1), (CRITIC, 22.2)):
        (line,) = _lines(fig, "mean", key)
        assert abs(line.get_ydata()[-1] - raw_end) <= 0.05 * raw_end, (key, line.get_ydata()[-3:])
        assert line.get_xdata()[-1] == 100_000  # the line stops at the last logged step
    # the smoothing of Moalla et al. 2024 §3 (per-point EWMA, α = 0.05) lags far behind on the same data
    ewma_end = np.mean(
        [
            pd.Series(f[ACTOR].to_numpy()).ewm(alpha=0.05, adjust=False).mean().iloc[-1]
            for _, f in runset.history.groupby("run")
        ]
    )
    assert abs(ewma_end - 11.1) > 0.05 * 11.1


def test_raw_points_last_value_and_both_networks_in_one_panel():
    runset = _jump_runset(20, 15)
    fig = _drawn(runset, ReportOptions(formats=["png"]))
    (actor,), (critic,) = _lines(fig, "mean", ACTOR), _lines(fig, "mean", CRITIC)
    assert actor.axes is critic.axes and actor.get_linestyle() != critic.get_linestyle()
    assert [t.get_text() for t in actor.axes.get_legend().get_texts()] == ["actor", "critic"]
    (raw,) = _lines(fig, "raw", ACTOR)
    assert len(raw.get_ydata()) == 2 * 20 and raw.get_alpha() < 0.5  # every logged point of both seeds, faint
    (last,) = _lines(fig, "last", ACTOR)
    assert last.get_xdata()[0] == 100_000 and last.get_ydata()[0] == pytest.approx(11.1)
    assert "11.1" in [t.get_text() for t in actor.axes.texts] and "22.2" in [t.get_text() for t in actor.axes.texts]


def test_smooth_none_draws_the_raw_seed_mean():
    runset = _jump_runset(200, 150)
    raw_mean = runset.history.groupby("step")[ACTOR].mean().to_numpy()
    (line,) = _lines(_drawn(runset, ReportOptions(smooth=None, formats=["png"])), "mean", ACTOR)
    np.testing.assert_allclose(line.get_ydata(), raw_mean)
    # smooth=0.05: 5,000 steps = ±5 logs of 500 steps; log 152 averages logs 147..157, 4 before the jump and 7 after
    (line,) = _lines(_drawn(runset, ReportOptions(smooth=0.05, formats=["png"])), "mean", ACTOR)
    assert line.get_ydata()[0] == pytest.approx(8.1)
    assert line.get_ydata()[151] == pytest.approx((4 * 8.1 + 7 * 11.1) / 11)


@pytest.mark.parametrize(
    ("rgba", "expected"),
    [((1, 1, 1), "black"), ((0, 0, 0), "white"), ((0.5, 0.5, 0.5), "black"), ((0.4, 0.4, 0.4), "white")],
)
def test_text_color_by_luminance(rgba, expected):
    # grey 0.5 has relative luminance 0.214 > 0.179 (black text); grey 0.4 has 0.133 (white text)
    assert figures.text_color(rgba) == expected


def test_heatmap_labels_readable_and_hidden_metric_noted():
    t = np.arange(10.0)
    runs = {"r": pd.DataFrame({"a": t, "b": -t, "c": t**0.5})}
    ag = stats.rank_agreement(runs, ["a", "b", "c"], 1.0)
    fig = figures.agreement_figure(ag, hidden={"numerical_rank": 64.0})
    colors = {txt.get_text(): txt.get_color() for txt in fig.axes[0].texts}
    assert colors["-1.00\n±0.00"] == "white"  # Kendall -1: the darkest red of RdBu
    assert any("numerical_rank (= 64)" in txt.get_text() for txt in fig.texts)  # the note under the heatmaps
    # fig.axes: the 2 × 4 heatmaps row by row, then their colorbars; [3] = average L2, whose 0 diagonal is pale
    l2 = fig.axes[3]
    assert l2.get_title().startswith("normalised L2")
    assert {txt.get_color() for txt in l2.texts if txt.get_text() == "0.00"} == {"black"}
    # the largest distance is the darkest cell of magma_r: white text
    assert {
        txt.get_color() for txt in l2.texts if txt.get_text().startswith(f"{ag['l2']['mean'].to_numpy().max():.2f}")
    } == {"white"}


@pytest.mark.parametrize(("arg", "value"), [("smooth=none", None), ("smooth=0.05", 0.05), ("smooth=null", None)])
def test_cli_smooth_option(tmp_path, arg, value):
    assert analyze.parse_args([str(tmp_path), arg]).smooth == value
    assert analyze.parse_args([str(tmp_path)]).smooth == 0.02


@pytest.mark.parametrize("arg", ["smooth=1.5", "smooth=wide", "smooth=-0.1"])
def test_cli_smooth_option_errors(tmp_path, arg):
    with pytest.raises(AnalysisError, match="smooth: must be none or a fraction"):
        analyze.parse_args([str(tmp_path), arg])
