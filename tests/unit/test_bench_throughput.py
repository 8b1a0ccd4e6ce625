"""The steady-state rate of ``bench throughput``: env steps per wall second between the first record at or past a
step and the last record."""

import pytest

from repdyn.bench.throughput import steady_rate


def test_steady_rate_uses_the_window_after_from_step() -> None:
    records = [
        {"step": 0},  # the step-0 capacity record: no wall time, never in the window
        {"step": 2048, "perf/wall_time": 30.0},  # first batch end (after obs norm, capacity probe): excluded start
        {"step": 4096, "perf/wall_time": 32.0},
        {"step": 8192, "perf/wall_time": 36.0},
    ]
    assert steady_rate(records, 2048) == pytest.approx((8192 - 2048) / 6.0)
    assert steady_rate(records, 3000) == pytest.approx((8192 - 4096) / 4.0)


def test_steady_rate_needs_two_records() -> None:
    with pytest.raises(ValueError, match="need two timed records"):
        steady_rate([{"step": 2048, "perf/wall_time": 1.0}], 0)


def test_paired_ratio_cancels_drift_that_hits_both_sides() -> None:
    """The machine halves its speed between repeats: each pair still reads 2x, the ratio of medians would not."""
    from repdyn.bench.throughput import paired_ratio

    ours, theirs = [200.0, 100.0, 50.0], [100.0, 50.0, 25.0]
    assert paired_ratio(ours, theirs) == 2.0
    assert paired_ratio([200.0, 90.0, 50.0], [100.0, 50.0, 25.0]) == 2.0  # the median pair
    with pytest.raises(ValueError):
        paired_ratio([1.0], [1.0, 2.0])


def test_table_prints_every_row_with_its_ratio(capsys):
    """Each row shows our figure, theirs and the ratio key's value (not a ratio recomputed from the medians)."""
    from repdyn.bench.throughput import ROW_FIGURES, ROW_LABELS, print_table

    assert set(ROW_LABELS) == set(ROW_FIGURES)
    assert {"ppo_e2e_vs_reference", "ppo_collect_vs_raw", "dqn_e2e_vs_reference", "atari_e2e_vs_reference"} <= set(
        ROW_LABELS
    )
    res = {}
    for i, (key, (ours, theirs)) in enumerate(ROW_FIGURES.items()):
        res.update({ours: 1000.0 + i, theirs: 500.0, key: 1.5 + i / 100})
    print_table(res, quick=True)
    out = capsys.readouterr().out
    for i, key in enumerate(ROW_FIGURES):
        assert f"{1.5 + i / 100:.2f}×" in out, key


def test_table_leaves_out_the_settings_not_measured(capsys):
    """``--only dqn``: the DQN rows print, the PPO and Atari rows (whose figures are missing) do not."""
    from repdyn.bench.throughput import ROW_FIGURES, print_table

    res = {"dqn_e2e_sps": 300.0, "dqn_reference_sps": 200.0, "dqn_e2e_vs_reference": 1.5}
    res.update({"dqn_e2e_eager_sps": 220.0, "dqn_e2e_eager_vs_reference": 1.1})
    print_table(res, quick=True)
    out = capsys.readouterr().out
    assert "1.50×" in out and "1.10×" in out and "DQN Acrobot" in out
    assert "PPO Hopper" not in out and "PPO Phoenix" not in out
    assert len([k for k in ROW_FIGURES if k in res]) == 2
