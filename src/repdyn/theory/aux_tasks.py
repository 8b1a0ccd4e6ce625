"""Auxiliary tasks and representation dynamics on tabular MDPs (Lyle et al. 2021, "On the Effect of Auxiliary Tasks on
Representation Dynamics", AISTATS 2021, arXiv:2102.13089, §3-5, Table 1 and the value-improvement-path figure).

Run: ``python -m repdyn.theory.aux_tasks`` (config ``conf/theory/aux_tasks.yaml``). Writes, in the run dir:

* ``aux_tasks_limits`` (CSV + Markdown): Table 1 measured. For each MDP (50-state circle, chain, random sparse MDP;
  main policy uniform), auxiliary task (ensemble, random cumulants, additional policies, multiple γs) and reward
  (r = 0 or the MDP's R), M fixed heads with weights N(0, I/M) (``repdyn.theory.aux_heads``), solved exactly:
  the measured Φ at ``t_final`` and the finite-M fixed point Φ_∞^M against the theory's Φ_∞ = A^{-1}Z on the same
  draw (relative Frobenius error; relative to ‖Φ_0‖ when the theory says 0), the Grassmann distance of
  span(Φ_T − Φ_∞^M) to the predicted EBFs and, as contrasts, to the EBFs of P^π and to random subspaces, and for
  random cumulants the distance of span(Φ_∞^M) to the RSBFs.
* ``aux_tasks_curves`` + ``aux_tasks_distances.png``: those distances over time on ``curves_mdp``, with
  d(span Φ_t, EBFs) for the r = 0 ensemble (Corollary 4.2: → 0).
* ``aux_tasks_joint``: learned heads (β > 0) integrated with RK4 — no closed form exists; reports where span(Φ_T)
  lies and whether every head reached V^π.
* ``aux_tasks_value_path`` + ``aux_tasks_value_path.png``: R² of each next value on the chain's policy-iteration
  path by K EBFs, K RSBFs, K random features of the current policy, with and without V^{π_k}
  (``repdyn.theory.value_improvement``).

Choices the paper leaves open (ours): α = 1 with weights N(0, I/M) for every task (its second scaling), Gaussian
cumulants with Σ = I, heads assigned to the additional policies / discounts in turn, state-only rewards, Φ_0 ~ N(0, 1)
entries, the uniform policy as π; distances are measured at ``t_final`` rather than in the limit.
"""

from __future__ import annotations

from pathlib import Path

import hydra
import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig

from repdyn.paths import CONF_DIR
from repdyn.theory.aux_heads import AUX_TASKS, AuxProblem, aux_problem
from repdyn.theory.feature_flow import (
    fixed_heads_deviation,
    fixed_heads_fixed_point,
    fixed_heads_trajectory,
    integrate_joint_flow,
    limit_deviation,
    td_errors,
)
from repdyn.theory.report import run_study, study_entry, write_table
from repdyn.theory.subspaces import (
    eigen_basis_functions,
    grassmann_distance,
    orthonormal_basis,
    random_subspace_distance,
    resolvent_singular_basis,
)
from repdyn.theory.tabular_mdps import (
    TabularMDP,
    chain_mdp,
    circle_mdp,
    policy_transition,
    random_policies,
    random_sparse_mdp,
    uniform_policy,
    value_improvement_path,
)
from repdyn.theory.value_improvement import path_transfer

# Table 1 of the paper: (dynamics for r = 0, Φ_∞ for r = 0, Φ_∞ for r ≠ 0, limit of span(Φ_t − Φ_∞)).
THEORY = {
    "ensemble": ("−(I−γP^π)Φ", "0", "(I−γP^π)^-1 R εᵀ", "EBFs of P^π"),
    "random_cumulants": ("−(I−γP^π)Φ + Z_Σ", "(I−γP^π)^-1 Z_Σ", "(I−γP^π)^-1 Z_Σ", "EBFs of P^π"),
    "additional_policies": ("−(I−γP^π̄)Φ", "0", "(I−γP^π̄)^-1 R εᵀ", "EBFs of P^π̄"),
    "multiple_gammas": ("−(I−γ̄P^π)Φ", "0", "(I−γ̄P^π)^-1 R εᵀ", "EBFs of P^π"),
}


def build_mdp(name: str, c: DictConfig) -> TabularMDP:
    """The MDP ``name`` ∈ {circle, chain, random_sparse} from its config block."""
    if name == "circle":
        return circle_mdp(int(c.n_states), int(c.reward_state))
    if name == "chain":
        return chain_mdp(int(c.n_states), float(c.slip), float(c.reward_left), float(c.reward_right))
    if name == "random_sparse":
        return random_sparse_mdp(int(c.n_states), int(c.n_actions), int(c.n_successors), int(c.seed))
    raise ValueError(f"unknown MDP {name!r}; expected circle, chain or random_sparse")


def _problems(cfg: DictConfig, mdp: TabularMDP, K: int, task: str, seed: int) -> dict[str, AuxProblem]:
    """{"0": r = 0, "R": r = R} for ``task``, on the same head draw (same seed)."""
    P = policy_transition(mdp, uniform_policy(mdp))
    extra = [policy_transition(mdp, pi) for pi in random_policies(mdp, int(cfg.extra_policies.n), seed)]
    out = {}
    for key, R in (("0", torch.zeros_like(mdp.R)), ("R", mdp.R)):
        gen = torch.Generator().manual_seed(seed)
        out[key] = aux_problem(task, P, R, float(cfg.gamma), K, int(cfg.heads), gen, extra_P=extra,
                               gammas=[float(g) for g in cfg.multiple_gammas])  # fmt: skip
    return out


def _rel(x: torch.Tensor, ref: torch.Tensor, fallback: torch.Tensor) -> float:
    denom = ref.norm() if float(ref.norm()) > 0 else fallback.norm()
    return float((x - ref).norm() / denom)


def resolved_distance(E: torch.Tensor, basis: torch.Tensor, min_ratio: float) -> float:
    """d(span E, span basis), or nan when span E is not resolved in double precision (σ_K / σ_1 < ``min_ratio``):
    the trailing directions of Φ_t − Φ_∞ decay exponentially faster than the leading one, and once they are below
    rounding the computed span is noise, not the flow's."""
    s = torch.linalg.svdvals(E)
    if float(s[0]) == 0.0 or float(s[-1] / s[0]) < min_ratio:
        return float("nan")
    return grassmann_distance(E, basis)


def _limit_row(cfg: DictConfig, prob: AuxProblem, P_pi: torch.Tensor, phi0: torch.Tensor, K: int) -> dict:
    """Measured Φ_T, Φ_∞^M and subspace distances of one problem against its limit (module docstring). The subspace
    distances are taken at the latest time of the curve grid where span(Φ_t − Φ_∞) is still resolved."""
    T, ratio = float(cfg.t_final), float(cfg.min_sv_ratio)
    phi_T = fixed_heads_trajectory(phi0, prob.heads, prob.Ps, prob.alpha, [T])[0]
    phi_inf = fixed_heads_fixed_point(prob.heads, prob.Ps, prob.alpha)
    theory = torch.linalg.solve(prob.limit_A, prob.limit_Z)
    times = _times(cfg)
    devs = fixed_heads_deviation(phi0 - phi_inf, prob.heads, prob.Ps, prob.alpha, times)
    ebf, ebf_pi = eigen_basis_functions(prob.ebf_P, K), eigen_basis_functions(P_pi, K)
    t_meas, d_limit, d_pi = _last_resolved(times, devs, (ebf, ebf_pi), ratio)
    lim_devs = limit_deviation(prob.limit_A, phi0 - theory, times)
    _, d_limit_inf, _ = _last_resolved(times, lim_devs, (ebf, ebf_pi), ratio)
    row = {
        "phi_T_rel_err": _rel(phi_T, theory, phi0),
        "phi_inf_M_rel_err": _rel(phi_inf, theory, phi0),
        "t_measured": t_meas,
        "d_limit": d_limit,
        "d_limit_M_inf": d_limit_inf,
        "d_ebf_pi": d_pi,
        "d_rsbf_phi_inf": float("nan"),
    }
    if prob.task == "random_cumulants":
        row["d_rsbf_phi_inf"] = grassmann_distance(phi_inf, resolvent_singular_basis(P_pi, float(cfg.gamma), K))
    return row


def _last_resolved(
    times: list[float], devs: torch.Tensor, bases: tuple[torch.Tensor, ...], ratio: float
) -> tuple[float, ...]:
    """(t, d to each basis) at the latest time whose deviation span is resolved (all nan if none is)."""
    out: tuple[float, ...] = (float("nan"),) * (1 + len(bases))
    for t, E in zip(times, devs, strict=True):
        d = tuple(resolved_distance(E, b, ratio) for b in bases)
        if d[0] == d[0]:  # not nan
            out = (t, *d)
    return out


def _times(cfg: DictConfig) -> list[float]:
    return np.geomspace(float(cfg.t_min), float(cfg.t_final), int(cfg.n_times)).tolist()


def limits_table(cfg: DictConfig) -> pd.DataFrame:
    """Table 1 measured on every MDP of ``cfg.mdps`` (columns in the module docstring)."""
    rows = []
    for i, (name, c) in enumerate(cfg.mdps.items()):
        mdp, K = build_mdp(str(name), c), int(c.k)
        P_pi = policy_transition(mdp, uniform_policy(mdp))
        phi0 = torch.randn(
            mdp.R.numel(), K, generator=torch.Generator().manual_seed(int(cfg.seed) + i), dtype=torch.float64
        )
        d_random = random_subspace_distance(eigen_basis_functions(P_pi, K), int(cfg.n_random_subspaces),
                                            torch.Generator().manual_seed(int(cfg.seed)))  # fmt: skip
        for j, task in enumerate(AUX_TASKS):
            probs = _problems(cfg, mdp, K, task, int(cfg.seed) * 1000 + 10 * i + j)
            dyn, inf0, inf_r, sub = THEORY[task]
            for key, prob in probs.items():
                rows.append({
                    "mdp": name, "K": K, "task": task, "reward": key, "dynamics (r = 0)": dyn,
                    "phi_inf_theory": inf0 if key == "0" else inf_r, "limit_subspace": sub,
                    **_limit_row(cfg, prob, P_pi, phi0, K), "d_random": d_random,
                })  # fmt: skip
    return pd.DataFrame(rows)


def distance_curves(cfg: DictConfig) -> pd.DataFrame:
    """Long table (task, reward, t, quantity, distance) on ``cfg.curves_mdp`` over log-spaced times."""
    name = str(cfg.curves_mdp)
    i = list(cfg.mdps).index(name)
    c = cfg.mdps[name]
    mdp, K = build_mdp(name, c), int(c.k)
    P_pi = policy_transition(mdp, uniform_policy(mdp))
    phi0 = torch.randn(
        mdp.R.numel(), K, generator=torch.Generator().manual_seed(int(cfg.seed) + i), dtype=torch.float64
    )
    times, ratio = _times(cfg), float(cfg.min_sv_ratio)
    rsbf = resolvent_singular_basis(P_pi, float(cfg.gamma), K)
    rows = []
    for j, task in enumerate(AUX_TASKS):
        for key, prob in _problems(cfg, mdp, K, task, int(cfg.seed) * 1000 + 10 * i + j).items():
            ebf = eigen_basis_functions(prob.ebf_P, K)
            phi_inf = fixed_heads_fixed_point(prob.heads, prob.Ps, prob.alpha)
            dev = fixed_heads_deviation(phi0 - phi_inf, prob.heads, prob.Ps, prob.alpha, times)
            phis = fixed_heads_trajectory(phi0, prob.heads, prob.Ps, prob.alpha, times)
            for t, E, F in zip(times, dev, phis, strict=True):
                base = {"task": task, "reward": key, "t": t}
                rows.append({**base, "quantity": "d(Φ_t − Φ_∞, EBFs)", "distance": resolved_distance(E, ebf, ratio)})
                rows.append({**base, "quantity": "d(Φ_t, EBFs)", "distance": resolved_distance(F, ebf, ratio)})
                rows.append({**base, "quantity": "d(Φ_t, RSBFs)", "distance": resolved_distance(F, rsbf, ratio)})
    return pd.DataFrame(rows)


def joint_flow_table(cfg: DictConfig) -> pd.DataFrame:
    """Learned heads (β > 0), RK4: for the ensemble on ``cfg.joint.mdp`` with r = R, per report time, the distances
    of span(Φ_t) to the EBFs and RSBFs, and the worst head's relative value error max_m ‖Φw^m − V^π‖ / ‖V^π‖."""
    jc = cfg.joint
    name = str(jc.mdp)
    c = cfg.mdps[name]
    mdp, K = build_mdp(name, c), int(c.k)
    P = policy_transition(mdp, uniform_policy(mdp))
    gamma = float(cfg.gamma)
    gen = torch.Generator().manual_seed(int(cfg.seed))
    prob = aux_problem("ensemble", P, mdp.R, gamma, K, int(jc.heads), gen)
    phi0 = torch.randn(mdp.R.numel(), K, generator=gen, dtype=torch.float64)
    times = [float(t) for t in jc.report_times]
    phis, ws = integrate_joint_flow(phi0, prob.heads, prob.Ps, float(jc.alpha), float(jc.beta), float(jc.dt), times)
    v_pi = torch.linalg.solve(torch.eye(P.shape[0], dtype=P.dtype) - gamma * P, mdp.R)
    ebf, rsbf = eigen_basis_functions(P, K), resolvent_singular_basis(P, gamma, K)
    rows = []
    for t, F, W in zip(times, phis, ws, strict=True):
        heads = type(prob.heads)(W, prob.heads.C, prob.heads.gamma, prob.heads.policy)
        rows.append({
            "t": t, "beta": float(jc.beta), "heads": int(jc.heads), "d_ebf": grassmann_distance(F, ebf),
            "d_rsbf": grassmann_distance(F, rsbf), "d_v_pi_in_span": _distance_to_span(v_pi, F),
            "max_head_value_rel_err": float(((F @ W) - v_pi[:, None]).norm(dim=0).max() / v_pi.norm()),
            "td_error_norm": float(td_errors(F, W, heads, prob.Ps).norm()),
        })  # fmt: skip
    return pd.DataFrame(rows)


def _distance_to_span(v: torch.Tensor, F: torch.Tensor) -> float:
    """Sine of the angle between v and span(F): 0 when v ∈ span(F)."""
    Q = orthonormal_basis(F)
    return float((v - Q @ (Q.T @ v)).norm() / v.norm())


def value_path_table(cfg: DictConfig) -> pd.DataFrame:
    """R² along the policy-iteration path of the chain MDP from the always-left policy (``value_improvement``)."""
    vc = cfg.value_path
    mdp = build_mdp("chain", cfg.mdps.chain)
    S = mdp.R.numel()
    pi0 = torch.zeros(S, 2, dtype=torch.float64)
    pi0[:, 0] = 1.0  # always left: the improvement path then sweeps right-walking states in from the rewarding end
    path = value_improvement_path(mdp, pi0, float(vc.gamma))
    return pd.DataFrame(path_transfer(mdp, path, float(vc.gamma), int(vc.k), int(vc.n_random), int(cfg.seed)))


def _plot_curves(curves: pd.DataFrame, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    quantities = list(dict.fromkeys(curves.quantity))
    fig, axes = plt.subplots(1, len(quantities), figsize=(5.2 * len(quantities), 4), squeeze=False)
    for ax, q in zip(axes[0], quantities, strict=True):
        for (task, reward), g in curves[curves.quantity == q].groupby(["task", "reward"], sort=False):
            ax.semilogx(g.t, g.distance, "-" if reward == "0" else "--", label=f"{task}, r = {reward}")
        ax.set_title(f"{title}: {q}")
        ax.set_xlabel("t")
        ax.set_ylabel("Grassmann distance")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_value_path(table: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for (kind, with_value), g in table.groupby(["feature_set", "with_value"], sort=False):
        ax.plot(g.step, g.r2, "-o" if with_value else "--o", ms=3, label=f"{kind}{' + V^π_k' if with_value else ''}")
    ax.set_xlabel("policy-iteration step k (features of π_k, target V^π_{k+1})")
    ax.set_ylabel("fraction of ‖V‖² explained (R²)")
    ax.set_ylim(0, 1.02)
    ax.set_title("Chain MDP: transfer along the value-improvement path")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(cfg: DictConfig, run_dir: Path) -> dict[str, pd.DataFrame]:
    """Every part of the study; tables and figures go to ``run_dir``."""
    out = {
        "limits": limits_table(cfg),
        "curves": distance_curves(cfg),
        "joint": joint_flow_table(cfg),
        "value_path": value_path_table(cfg),
    }
    write_table(out["limits"], run_dir, "aux_tasks_limits", title="Auxiliary tasks: Table 1 measured", index=False)
    write_table(out["curves"], run_dir, "aux_tasks_curves", title="Subspace distances over time", index=False)
    write_table(out["joint"], run_dir, "aux_tasks_joint", title="Learned heads (RK4)", index=False)
    write_table(out["value_path"], run_dir, "aux_tasks_value_path", title="Value-improvement path", index=False)
    _plot_curves(out["curves"], run_dir / "aux_tasks_distances.png", str(cfg.curves_mdp))
    _plot_value_path(out["value_path"], run_dir / "aux_tasks_value_path.png")
    return out


def _summary(out: dict[str, pd.DataFrame]) -> dict[str, float]:
    lim = out["limits"]
    return {
        "max_d_limit": float(lim.d_limit.max()),
        "min_d_random": float(lim.d_random.min()),
        "max_phi_inf_M_rel_err": float(lim.phi_inf_M_rel_err.max()),
    }


def _show(out: dict[str, pd.DataFrame]) -> str:
    shown = ["mdp", "task", "reward", "phi_T_rel_err", "phi_inf_M_rel_err", "d_limit", "d_ebf_pi", "d_random"]
    return out["limits"][shown].to_string(index=False)


@hydra.main(config_path=str(CONF_DIR), config_name="theory/aux_tasks", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run_study(cfg, run, _summary, _show)


if __name__ == "__main__":
    study_entry(main)
