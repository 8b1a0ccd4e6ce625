"""Each Auto MPG study runs from its one command at a tiny size and writes tables with real values."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

TINY = ["model.width=8", "train.steps=5", "num_threads=1"]


def _run(module: str, run_dir: Path, *overrides: str) -> None:
    env = {**os.environ, "HYDRA_FULL_ERROR": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", module, f"hydra.run.dir={run_dir}", *TINY, *overrides],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "finished"


def test_ntk_correlation_entry_point(tmp_path: Path) -> None:
    _run("repdyn.supervised.ntk_correlation", tmp_path, "reps=2", "trials=4")
    table = pd.read_csv(tmp_path / "ntk_correlation.csv", index_col=0)
    assert list(table.index) == [
        "Initial NTK trace", "Initial kernel alignment", "Initial kernel test alignment", "Initial NTK entropy",
        "Final training loss",
    ]  # fmt: skip
    for regime in ("random", "fixed_model", "fixed_data"):
        vals = table[f"{regime}_mean"].to_numpy()
        assert np.isfinite(vals).all() and (np.abs(vals) <= 1).all()
    trials = pd.read_csv(tmp_path / "ntk_correlation_trials.csv")
    assert len(trials) == 3 * 2 * 4 and (trials.init_trace > 0).all() and (trials.final_test_loss > 0).all()
    # fixed_model: one initialisation per repetition → the same NTK on the same points; the trace varies only with data.
    fm = trials[trials.regime == "fixed_model"]
    assert fm.groupby("rep").init_trace.nunique().min() > 1
    fd = trials[trials.regime == "fixed_data"]
    assert fd.groupby("rep").final_train_loss.nunique().min() > 1
    assert "±" in (tmp_path / "ntk_correlation.md").read_text()


def test_ntk_selection_entry_point(tmp_path: Path) -> None:
    _run("repdyn.supervised.ntk_selection", tmp_path, "reps=2", "selection.n_tries=8")
    arms = pd.read_csv(tmp_path / "ntk_selection_arms.csv")
    methods = ["swap:trace", "swap:kernel_alignment", "swap:kernel_test_alignment", "swap:entropy", "top_n:trace"]
    assert len(arms) == 2 * (1 + 2 * len(methods))
    base = arms[arms.arm == "baseline"].set_index("rep")
    top = arms[(arms.method == "top_n:trace") & (arms.arm == "selected")].set_index("rep")
    assert (top.init_trace > base.init_trace).all()  # the exact maximiser beats a random set on the same model
    search = pd.read_csv(tmp_path / "ntk_selection_search.csv")
    assert (search.end >= search.start).all()  # swap search never lowers its metric
    for m in methods:
        t = pd.read_csv(tmp_path / f"ntk_selection_{m.replace(':', '_')}.csv", index_col=0)
        assert list(t.index)[:2] == ["Final test loss", "Final training loss"] and len(t) == 6
        assert np.isfinite(t[["baseline_mean", "selected_mean", "switched_mean", "selected_diff_se"]].to_numpy()).all()
        assert np.allclose(t.baseline_mean.iloc[0], base.final_test_loss.mean())
    overview = pd.read_csv(tmp_path / "ntk_selection.csv", index_col="method")
    assert list(overview.index) == methods and overview.baseline.nunique() == 1
    assert (tmp_path / "ntk_selection.png").exists()
