"""Each theory study runs from its one command at a tiny size and writes tables with real values (subprocess smoke)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from repdyn.loggers.history import read_history


def _run(module: str, run_dir: Path, *overrides: str) -> None:
    env = {**os.environ, "HYDRA_FULL_ERROR": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", module, f"hydra.run.dir={run_dir}", "num_threads=1", *overrides],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "finished"
    assert (run_dir / "config.yaml").exists()


def test_trust_region_toy_entry_point(tmp_path: Path) -> None:
    _run("repdyn.theory.trust_region_toy", tmp_path, "n_draws=16")
    steps = pd.read_csv(tmp_path / "trust_region_toy.csv")
    assert list(steps["case"].unique()) == ["overshoot", "interfere"] and len(steps) == 2 * 21
    start = steps[steps.step == 0]
    assert np.allclose(start[["ratio_x", "ratio_y"]].to_numpy(), 1.0)
    summary = pd.read_csv(tmp_path / "trust_region_toy_summary.csv", index_col="case")
    assert summary.loc["overshoot", "alpha"] == 3.0 and summary.loc["interfere", "alpha"] == -1.0
    assert bool(summary.loc["overshoot", "above_1+eps"])  # the default draw shows the overshoot…
    assert bool(summary.loc["interfere", "below_initial"])  # …and the interference
    draws = pd.read_csv(tmp_path / "trust_region_toy_draws.csv", index_col="case")
    assert list(draws.index) == ["overshoot", "interfere", "control"] and (draws.n_draws == 16).all()
    assert draws.loc["control", "frac_below_initial"] == 0.0  # without coupling nothing is pushed down
    assert (tmp_path / "trust_region_toy.png").stat().st_size > 10_000
    assert "|" in (tmp_path / "trust_region_toy_summary.md").read_text()
    assert len(read_history(tmp_path / "history.jsonl")) == 21


def test_tabular_td_entry_point(tmp_path: Path) -> None:
    _run(
        "repdyn.theory.tabular_td", tmp_path,
        "mdp.n_states=12", "mdp.reward_state=5", "kernel.train_states=[1,9]", "kernel.td_steps=[5]",
        "kernel.mc_steps=50", "kernel.n_grid=21", "eigen.n_grid=20",
    )  # fmt: skip
    eig = pd.read_csv(tmp_path / "tabular_td_eigen.csv")
    assert set(eig.gamma) == {0.5, 0.99}
    # Observation 4.1: the measured coefficient error of the closed form equals exp(−t(1 − γ Re λ)).
    for t in (1, 5, 20):
        assert np.allclose(eig[f"td_err_t{t}"], eig[f"theory_t{t}"], rtol=1e-6, atol=1e-12)
        assert np.allclose(eig[f"mc_err_t{t}"], np.exp(-t))
    assert np.isclose(eig.groupby("gamma").share_of_v_pi.sum(), 1.0).all()
    ker = pd.read_csv(tmp_path / "tabular_td_kernel.csv")
    assert len(ker) == 6 and set(ker.lengthscale) == {0.01, 1.0, 100.0}
    # ℓ = 0.01 is the identity kernel: MC regression fits the trained states exactly after t = 50.
    assert (ker[ker.lengthscale == 0.01]["mc50_rmse_train"] < 1e-6).all()
    assert ker["td5_rmse_test"].notna().all() and (ker["mc_max_re_rate"] <= 1e-9).all()
    for f in ("tabular_td_eigen.png", "tabular_td_kernel.png", "tabular_td_kernel.md"):
        assert (tmp_path / f).exists()


@pytest.mark.parametrize("env", ["toy", "cartpole"])
def test_td_ntk_entry_point(tmp_path: Path, env: str) -> None:
    common = [f"envs=[{env}]", "ntk_chunk=64"]
    if env == "toy":
        sizes = ["toy.model.width=256", "toy.n_steps=16", "toy.n_checkpoints=4", "toy.n_inits=4", "toy.n_nets=2",
                 "toy.grid=[0.0,1.25,11]"]  # fmt: skip
    else:
        sizes = ["cartpole.n_transitions=32", "cartpole.n_eval_train=6", "cartpole.n_eval_test=6",
                 "cartpole.mc_horizon=60", "cartpole.policy.iterations=1", "cartpole.policy.episodes_per_iter=2",
                 "cartpole.model.width=16", "cartpole.n_steps=8", "cartpole.n_checkpoints=3",
                 "cartpole.n_inits=3", "cartpole.n_nets=2"]  # fmt: skip
    _run("repdyn.theory.td_ntk", tmp_path, *common, *sizes)
    table = pd.read_csv(tmp_path / f"td_ntk_{env}.csv")
    assert list(table.split.unique()) == ["train", "test"] and len(table) == 2 * 5
    assert table[["rmse", "nll_mean", "pred_std_mean"]].notna().all().all() and (table.rmse >= 0).all()
    methods = table.method.tolist()
    assert any(m.startswith("NNs") for m in methods) and any("analytic" in m for m in methods)
    if env == "toy":
        # γ = 1 on the toy: the t = ∞ linearisation solves the Bellman equation on the dataset exactly, and every
        # dataset next state is itself a dataset state, so its train-state values are the true values 1 / 0. (Width
        # 256: narrower ReLU nets on this 1-D input can have a singular Θ̄ for some inits, then only the pseudo-inverse
        # solution exists.)
        inf_rows = table[(table.split == "train") & table.method.str.contains("empirical.*t=inf")]
        assert float(inf_rows.rmse.iloc[0]) < 1e-6
    dist = pd.read_csv(tmp_path / f"td_ntk_{env}_distance.csv")
    assert dist.step.iloc[0] == 0 and dist.step.iloc[-1] == (16 if env == "toy" else 8)
    assert dist.iloc[0][["param_change_rel_nn", "param_rmse_nn_vs_lin", "func_rmse_nn_vs_lin"]].abs().max() < 1e-5
    assert (dist.param_change_rel_nn.iloc[1:] > 0).all()
    hist = read_history(tmp_path / "history.jsonl")
    assert [h["step"] for h in hist] == dist.step.tolist() and f"td_ntk/{env}/func_rmse_nn_vs_lin" in hist[-1]


def test_aux_tasks_entry_point(tmp_path: Path) -> None:
    _run(
        "repdyn.theory.aux_tasks", tmp_path,
        "heads=400", "t_final=300", "n_times=30", "n_random_subspaces=20", "mdps.circle.n_states=12",
        "mdps.circle.reward_state=5", "mdps.chain.n_states=10", "joint.report_times=[0,50]", "value_path.n_random=10",
    )  # fmt: skip
    lim = pd.read_csv(tmp_path / "aux_tasks_limits.csv")
    assert len(lim) == 3 * 4 * 2 and set(lim.reward.astype(str)) == {"0", "R"}
    # Table 1: Φ_∞ = 0 exactly for r = 0 except random cumulants; the limit subspace of the tasks whose heads share
    # P^π are its EBFs (far below the random-subspace distance).
    zero = lim[(lim.reward.astype(str) == "0") & (lim.task != "random_cumulants")]
    assert (zero.phi_inf_M_rel_err == 0).all()
    shared = lim[lim.task.isin(["ensemble", "random_cumulants", "multiple_gammas"]) & (lim.mdp != "random_sparse")]
    assert (shared.d_limit < 1e-4).all() and (lim.d_random > 1.5).all()
    assert (lim.d_limit_M_inf < 0.1 * lim.d_random).all()  # the M → ∞ flow, additional policies included
    joint = pd.read_csv(tmp_path / "aux_tasks_joint.csv")
    assert joint.max_head_value_rel_err.iloc[-1] < 1e-4
    vp = pd.read_csv(tmp_path / "aux_tasks_value_path.csv").groupby(["feature_set", "with_value"]).r2.mean()
    assert vp[("ebf", False)] > vp[("random", False)] + 0.3
    for f in ("aux_tasks_distances.png", "aux_tasks_value_path.png", "aux_tasks_limits.md"):
        assert (tmp_path / f).exists()


@pytest.mark.parametrize(
    ("module", "override", "code", "named"),
    [
        ("repdyn.theory.trust_region_toy", "--help", 0, "trust_region_toy is powered by Hydra"),
        ("repdyn.theory.trust_region_toy", "no_such_key=1", 2, "no_such_key"),
        ("repdyn.theory.td_ntk", "envs=[nope]", 2, "envs"),
        ("repdyn.supervised.ntk_correlation", "correlation=foo", 2, "correlation"),
    ],
)
def test_study_exit_codes(tmp_path: Path, module: str, override: str, code: int, named: str) -> None:
    """Every study exits like repdyn.train (report.study_entry / run_study): 0 for --help, 2 naming the key."""
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", module, f"hydra.run.dir={tmp_path}", override],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert proc.returncode == code, proc.stderr[-2000:]
    assert named in proc.stdout + proc.stderr
    assert not (tmp_path / "summary.json").exists()
