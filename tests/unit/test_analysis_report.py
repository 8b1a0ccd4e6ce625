"""Aggregated numbers of the report on a synthetic sweep with known curves (tests/synthetic_runs.py), and the
files the report writes (PNG decodes, HTML embeds each figure, CSVs hold the same numbers)."""

from __future__ import annotations

import base64
import re

import numpy as np
import pandas as pd
import pytest
from matplotlib import image as mpimg

from repdyn.analysis.loader import load_runs
from repdyn.analysis.report import ReportOptions, compute_tables, make_report
from tests.synthetic_runs import write_synthetic_sweep

N, H = 1000, 100_000  # log steps, horizon: step = 100·k, u = k / 1000
U_LAST = np.arange(951, 1001) / N  # the last 5%: steps (95000, 100000]
A = "batch_start/actor/"


@pytest.fixture(scope="module")
def runset(tmp_path_factory):
    root = tmp_path_factory.mktemp("analysis") / "sweep"
    write_synthetic_sweep(root, n_logs=N, horizon=H, collapse_u={2: 0.7})  # epochs=2: ratios trivial after u=0.7
    return load_runs(root, progress=False)


@pytest.fixture(scope="module")
def tables(runset):
    return compute_tables(runset, ReportOptions())


def _final(tables, run, key):
    return float(tables.final.set_index("run").loc[run, key])


def test_last_five_percent_averages(tables):
    u = U_LAST.mean()  # 0.9755
    for run, (e, s) in {"0": (1, 0), "1": (1, 1), "2": (2, 0), "3": (2, 1)}.items():
        assert _final(tables, run, "env/return") == pytest.approx(100 * u + 10 * s - 20 * (e - 1))
        assert _final(tables, run, A + "approx_rank") == pytest.approx(60 - 10 * e * u + s)
        # floor(8·e·u) is 7 (e=1) / 15 (e=2) for k = 951..999 and 8 / 16 at k = 1000
        assert _final(tables, run, A + "dead_units") == pytest.approx((49 * (8 * e - 1) + 8 * e) / 50)
        # capacity is logged at k = 975 and 1000 only
        assert _final(tables, run, "capacity/actor/loss") == pytest.approx(0.01 * e * (0.975 + 1.0) / 2)


def test_excess_ratio_window_rule(tables):
    # epochs=1: never collapses -> the last 5% (k = 951..1000), excess = 1 + u
    assert _final(tables, "0", "trust_region/excess_ratio") == pytest.approx(1 + U_LAST.mean())
    assert _final(tables, "0", "excess_ratio_window_end") == H
    # epochs=2: ratios stop at u = 0.7 (step 70000) -> window (65000, 70000], k = 651..700
    assert _final(tables, "2", "trust_region/excess_ratio") == pytest.approx(1 + np.arange(651, 701).mean() / N)
    assert _final(tables, "2", "excess_ratio_window_end") == 70_000
    assert _final(tables, "2", "excess_ratio_count") == 50


def test_training_curve_band_is_the_window_mean_of_linear_curves(tables):
    # x_k = 60 + s - (e/100)·k; the window is 2% of 100k steps = ±10 logs: exact inside, the mean of the logs
    # available near the ends (k = 1: logs 1..11, k̄ = 6; k = 10: logs 1..20, k̄ = 10.5; k = 1000: 990..1000, k̄ = 995)
    c = tables.curves[(tables.curves.metric == A + "approx_rank") & (tables.curves.group == "epochs=1")]
    c = c.set_index("step")
    k = np.array([1, 10, 500, 1000])
    kbar = np.array([6.0, 10.5, 500.0, 995.0])
    x0 = 60 - 0.01 * kbar  # seed 0
    np.testing.assert_allclose(c.loc[100 * k, "min"], x0)
    np.testing.assert_allclose(c.loc[100 * k, "max"], x0 + 1)
    np.testing.assert_allclose(c.loc[100 * k, "mean"], x0 + 0.5)
    assert (c["n"] == 2).all() and len(c) == N


def test_capacity_curve_is_not_smoothed(tables):
    c = tables.curves[(tables.curves.metric == "capacity/actor/loss") & (tables.curves.group == "epochs=2")]
    assert len(c) == N // 25
    np.testing.assert_allclose(c["mean"].to_numpy(), 0.02 * np.arange(25, N + 1, 25) / N)


def test_trust_region_windows_find_the_planted_lows(tables):
    w = tables.windows
    assert len(w) == 4 * 20
    first3 = w[w.run == "0"].head(3)
    assert first3["window"].tolist() == [55, 7, 30]
    np.testing.assert_allclose(first3["trust_region/ratio_below_mean"], [0.4, 0.5, 0.6])
    # window 55 = k 550..559: preact 1 + e·u -> 1 + mean(u) for e = 1; dead floor(8u) = 4 (e=1), floor(16u) = 8 (e=2)
    w55 = w[w.window == 55].set_index("run")
    assert w55.loc["0", A + "preact_norm"] == pytest.approx(1 + np.arange(550, 560).mean() / N)
    assert w55.loc["0", A + "dead_units"] == 4 and w55.loc["2", A + "dead_units"] == 8
    assert tables.window_correlations[A + "dead_units"]["n"] == 80


def test_rank_agreement_known_relations(tables):
    ag = tables.agreement
    er, ar, sr, fr, nr = (A + m for m in ("effective_rank", "approx_rank", "srank", "feature_rank", "numerical_rank"))
    assert ag["pearson"]["mean"].loc[er, ar] == pytest.approx(1.0)
    assert ag["l2"]["mean"].loc[er, ar] == pytest.approx(2 / 64)  # constant gap 2, D = 64
    assert ag["l2"]["worst"].loc[er, ar] == pytest.approx(2 / 64)
    # feature_rank = approx²/64 is monotone: rank correlations exactly 1, Pearson just below
    assert ag["kendall"]["worst"].loc[fr, ar] == pytest.approx(1.0)
    assert ag["spearman"]["worst"].loc[fr, ar] == pytest.approx(1.0)
    assert 0.99 < ag["pearson"]["worst"].loc[fr, ar] < 1.0
    # srank = 2·approx: L2 = rms(approx)/64, worst over runs = the largest rms (epochs 1, seed 1)
    u = np.arange(1, N + 1) / N
    rms = [np.sqrt(np.mean((60 - 10 * e * u + s) ** 2)) / 64 for e in (1, 2) for s in (0, 1)]
    assert ag["l2"]["mean"].loc[sr, ar] == pytest.approx(np.mean(rms))
    assert ag["l2"]["worst"].loc[sr, ar] == pytest.approx(max(rms))
    # numerical_rank is 64 in every run: its correlations are undefined, so it is hidden (with a note) not drawn
    assert tables.hidden_ranks == {nr: 64.0} and nr not in ag["kendall"]["mean"].index
    assert any("numerical_rank (= 64)" in n for n in tables.notes)


def test_absent_series_and_panels_are_noted_not_fatal(runset, tables):
    capacity = next(p for p in tables.curve_panels if p.title.startswith("capacity"))
    assert capacity.keys == ("capacity/actor/loss",)  # the critic's series is simply absent
    assert "capacity/critic/loss" not in set(tables.curves.metric)
    ends = compute_tables(runset, ReportOptions(scope="batch_end"))  # the synthetic sweep logs batch_start only
    assert any("no run logs any of" in n and "batch_end/critic/approx_rank" in n for n in ends.notes)
    assert [p.title for p in ends.curve_panels] == ["episode return", "capacity loss (unsmoothed)", "policy entropy"]


def test_bad_option_is_one_clear_error(runset):
    with pytest.raises(ValueError, match="network: must be auto or one of"):
        compute_tables(runset, ReportOptions(network="policy"))
    with pytest.raises(ValueError, match="formats"):
        compute_tables(runset, ReportOptions(formats=["jpg"]))


def test_report_files(runset, tmp_path):
    res = make_report(runset, tmp_path / "out", ReportOptions(formats=["png", "pdf"]))
    html = res.html.read_text()
    assert set(res.figures) == {"curves", "signals", "trust_region", "final", "rank_agreement"}
    for name, (png, pdf) in res.figures.items():
        img = mpimg.imread(png)
        assert img.shape[0] > 300 and img.shape[1] > 600, name
        assert img[..., :3].std() > 0.05, name  # not a blank canvas
        assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 5_000
        # the page embeds exactly this PNG
        m = re.search(rf'id="fig-{name}"><img alt="{name}" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
        assert m and base64.b64decode(m.group(1)) == png.read_bytes(), name
    assert "<script" not in html and "http://" not in html and "https://" not in html  # self-contained, no JS
    final = pd.read_csv(res.csv["final"])
    assert final.set_index("run").loc[2, "excess_ratio_window_end"] == 70_000
    table = pd.read_csv(res.csv["table"])
    assert len(table) == 4 * N and {"run", "group", "step", A + "approx_rank"} <= set(table.columns)
    assert set(pd.read_csv(res.csv["rank_agreement"]).stat) == {"kendall", "spearman", "pearson", "l2"}


def test_step_axis_labels_use_si_suffixes():
    from repdyn.analysis.figures import si_steps

    assert [si_steps(x) for x in (0, 512, 6144, 1.5e6, 1e7, 2e9)] == ["0", "512", "6.14k", "1.5M", "10M", "2G"]


def test_per_run_curves_are_drawn_and_written(runset, tmp_path):
    """per_run=true: each run's smoothed curve (mean of them = the band's mean) as a thin line and in run_curves.csv."""
    from repdyn.analysis import figures

    opts = ReportOptions(per_run=True, formats=["png"])
    tables = compute_tables(runset, opts)
    runs, band = tables.run_curves, tables.curves
    key = A + "approx_rank"
    r = runs[runs.metric == key].groupby(["group", "step"])["value"].mean()
    b = band[band.metric == key].set_index(["group", "step"])["mean"]
    np.testing.assert_allclose(r.loc[b.index].to_numpy(), b.to_numpy())
    fig = figures.curves_figure(band, [("rank", (key,))], {g: "C0" for g in band.group.unique()}, runs=runs)
    kinds = [line.get_gid().split("|")[0].split(":")[0] for line in fig.axes[0].lines]
    assert kinds.count("run") == runs.run.nunique() == 4 and kinds.count("mean") == band.group.nunique() == 2
    res = make_report(runset, tmp_path / "out", opts)
    assert len(pd.read_csv(res.csv["run_curves"])) == len(runs)


def test_group_stats_mean_std_and_standard_error_with_degenerate_groups():
    """Known answers: group a has end values 1, 2, 3, 6 (mean 3, sample std √(14/3), SE std/2); group b one run
    (mean only); group c no finite value; non-finite values are left out of n."""
    import math

    import numpy as np
    import pandas as pd

    from repdyn.analysis.report import group_stats

    final = pd.DataFrame(
        {
            "group": ["a", "a", "a", "a", "a", "b", "c"],
            "x": [1.0, 2.0, 3.0, 6.0, np.nan, 5.0, np.inf],
        }
    )
    out = group_stats(final, ["x", "missing"]).set_index(["group", "key"])
    a = out.loc[("a", "x")]
    assert a["n"] == 4 and a["mean"] == 3.0
    assert math.isclose(a["std"], math.sqrt(14 / 3)) and math.isclose(a["se"], math.sqrt(14 / 3) / 2)
    b = out.loc[("b", "x")]
    assert b["n"] == 1 and b["mean"] == 5.0 and math.isnan(b["std"]) and math.isnan(b["se"])
    c = out.loc[("c", "x")]
    assert c["n"] == 0 and math.isnan(c["mean"])
    assert (out.xs("missing", level="key")["n"] == 0).all()


def test_network_auto_picks_the_network_the_runs_log(tmp_path):
    """A PPO sweep logs the actor's ranks, a DQN sweep the Q-network's: network=auto resolves to each."""
    from repdyn.analysis.loader import load_runs
    from repdyn.analysis.report import ReportOptions, resolved
    from tests.synthetic_runs import write_synthetic_sweep

    write_synthetic_sweep(tmp_path / "ppo", n_logs=10, horizon=1000)
    ppo = load_runs(tmp_path / "ppo", progress=False)
    assert resolved(ppo, ReportOptions()).network == "actor"
    dirs = write_synthetic_sweep(tmp_path / "dqn", n_logs=10, horizon=1000)
    for d in dirs:  # the same records under the Q-network's keys
        h = d / "history.jsonl"
        h.write_text(h.read_text().replace("/actor/", "/qnet/").replace("/critic/", "/qnet_unused/"))
    dqn = load_runs(tmp_path / "dqn", progress=False)
    assert resolved(dqn, ReportOptions()).network == "qnet"
    assert resolved(dqn, ReportOptions(network="actor")).network == "actor"  # an explicit choice is kept


def test_group_table_counts_runs_not_finite_values():
    """The report's group table: `runs` is the group's run count even when its first metric is finite in fewer."""
    import numpy as np
    import pandas as pd

    from repdyn.analysis.report import Panel, _group_summary, group_stats

    final = pd.DataFrame({"group": ["a", "a", "a"], "x": [np.nan, np.nan, 2.0], "y": [1.0, 2.0, 3.0]})
    panels = [Panel("x", "X"), Panel("y", "Y")]
    table = _group_summary(group_stats(final, ["x", "y"]), final["group"], panels)
    assert table.to_dict("records") == [{"group": "a", "runs": 3, "X": "2", "Y": "2 ± 0.58"}]
