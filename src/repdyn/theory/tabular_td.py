"""Tabular and kernel TD eigen-dynamics (Lyle et al. 2022b §4.1-4.2, App. A.2, C.2 Fig. 9, arXiv:2206.02126).

Continuous-time expected updates on a finite MDP with policy transition matrix P = P^π, reward R = R^π:

* Monte Carlo (regress on V^π):  ∂V = V^π − V,            V_t = e^{−t}(V_0 − V^π) + V^π.
* TD (regress on the Bellman target): ∂V = −(I − γP)V + R,  V_t = exp(−t(I − γP))(V_0 − V^π) + V^π   (ibid. eq. 10).
* Along the right eigenvectors u_i of P (P = U Λ U^{-1}, possibly complex), the coordinates α = U^{-1}V obey
  α_t^i − α_π^i = exp(−t(1 − γλ_i))(α_0^i − α_π^i) (Observation 4.1): smooth directions (λ ≈ 1) converge slowest.
* Kernel TD on a training subset X_train (Theorem 4.2, eq. 16): ∂V(X) = K(X, X_train)[(T^π V − V)(X_train)], i.e.
  ∂V = A V + c with A = K[:, tr] S (γP − I), c = K[:, tr] S R, S the row selector of X_train. Kernel MC:
  ∂V = K[:, tr] S (V^π − V).

Every linear ODE ∂V = AV + c is solved exactly by :func:`repdyn.theory.linear_ode.linear_ode_solution` (one matrix
exponential of an augmented matrix), so singular A (untrained states never update themselves) needs no special case.

Run: ``python -m repdyn.theory.tabular_td`` (config ``conf/theory/tabular_td.yaml``): the 50-state circle MDP
(n → n + 1 mod 50, reward at state 25), eigen-coefficient dynamics, and the kernel-TD grid of Fig. 9 (RBF kernel,
lengthscales {0.01, 1, 100}, γ ∈ {0.5, 0.99}, train on states 1-40). Writes ``tabular_td_eigen``,
``tabular_td_kernel`` (CSV + Markdown) and ``tabular_td_eigen.png``, ``tabular_td_kernel.png``.

What "TD diverges" means here: for the RBF kernel on integer states the training-dynamics spectrum has no eigenvalue
with a clearly positive real part (the largest is ~1e-16, numerically zero, because the smooth kernels are
numerically singular); what Fig. 9 shows for ℓ = 100, γ = 0.99 is growth of |V_t| far beyond ‖V^π‖_∞ along those
near-null, non-normal directions, which MC regression (a gradient flow, real rates ≤ 0) never has. The table
therefore reports the growth max_t ‖V_t‖_∞ / ‖V^π‖_∞ over the TD horizon, the largest real rate and the
explicit-Euler spectral radius at ``lr`` side by side.

Choices the papers leave open (ours): states are the integers 1..n and the RBF kernel is
K(i, j) = exp(−(i − j)²/(2ℓ²)) on the plain (not circular) distance; "steps" are continuous time t = lr · steps with
the unnormalised kernel update; V_0 = 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import hydra
import pandas as pd
import torch
from omegaconf import DictConfig

from repdyn.paths import CONF_DIR
from repdyn.theory.linear_ode import linear_ode_solution
from repdyn.theory.report import run_study, study_entry, write_table

_POLICIES = ("shift", "random_walk")


def _check_gamma(gamma: float) -> None:
    if not (0.0 <= gamma < 1.0):
        raise ValueError(f"gamma must be in [0, 1) for a finite V^π, got {gamma}")


def circle_mdp(
    n_states: int = 50, reward_state: int = 25, policy: str = "shift", p_right: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """The circle MDP of Lyle et al. 2022b Fig. 9: states 1..n (index i ↔ state i + 1), reward 1 in ``reward_state``.

    ``policy="shift"`` moves n → n + 1 mod N (the paper's policy); ``"random_walk"`` moves right with probability
    ``p_right`` and left otherwise (a real-diagonalisable, symmetric P for ``p_right = 0.5``).
    Returns (P [N, N], R [N]).
    """
    if policy not in _POLICIES:
        raise ValueError(f"policy must be one of {_POLICIES}, got {policy!r}")
    if n_states < 2:
        raise ValueError(f"n_states must be >= 2, got {n_states}")
    if not (1 <= reward_state <= n_states):
        raise ValueError(f"reward_state must be in [1, {n_states}], got {reward_state}")
    idx = torch.arange(n_states)
    P = torch.zeros(n_states, n_states, dtype=torch.float64)
    if policy == "shift":
        P[idx, (idx + 1) % n_states] = 1.0
    else:
        P[idx, (idx + 1) % n_states] += p_right
        P[idx, (idx - 1) % n_states] += 1.0 - p_right
    R = torch.zeros(n_states, dtype=torch.float64)
    R[reward_state - 1] = 1.0
    return P, R


def value_function(P: torch.Tensor, R: torch.Tensor, gamma: float) -> torch.Tensor:
    """V^π = (I − γP)^{-1} R."""
    _check_gamma(gamma)
    return torch.linalg.solve(torch.eye(P.shape[0], dtype=P.dtype) - gamma * P, R)


def td_closed_form(
    P: torch.Tensor, R: torch.Tensor, gamma: float, v0: torch.Tensor, times: Sequence[float]
) -> torch.Tensor:
    """Tabular TD trajectory V_t = exp(−t(I − γP))(V_0 − V^π) + V^π (Lyle et al. 2022b eq. 10) → [len(times), N]."""
    v_pi = value_function(P, R, gamma)
    A = gamma * P - torch.eye(P.shape[0], dtype=P.dtype)
    t = torch.as_tensor(list(times), dtype=P.dtype)
    return (torch.linalg.matrix_exp(A[None] * t[:, None, None]) @ (v0 - v_pi)) + v_pi


def mc_closed_form(v_pi: torch.Tensor, v0: torch.Tensor, times: Sequence[float]) -> torch.Tensor:
    """Monte Carlo trajectory V_t = e^{−t}(V_0 − V^π) + V^π → [len(times), N]."""
    t = torch.as_tensor(list(times), dtype=v_pi.dtype)
    return torch.exp(-t)[:, None] * (v0 - v_pi)[None] + v_pi[None]


def eigen_coefficients(P: torch.Tensor, V: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(λ, α) with P u_i = λ_i u_i (unit-norm right eigenvectors) and V = Σ_i α_i u_i, i.e. α = U^{-1} V.

    ``V`` may be [N] or [T, N] (then α is [T, N]). Complex in general (the shift policy's P is a permutation).
    """
    lam, U = torch.linalg.eig(P)
    Vc = V.to(U.dtype)
    alpha = torch.linalg.solve(U, Vc.T if Vc.ndim == 2 else Vc)
    return lam, (alpha.T if Vc.ndim == 2 else alpha)


def rbf_kernel(states: torch.Tensor, lengthscale: float) -> torch.Tensor:
    """K(i, j) = exp(−(s_i − s_j)² / (2ℓ²)) on 1-D states."""
    if lengthscale <= 0:
        raise ValueError(f"lengthscale must be > 0, got {lengthscale}")
    d = states[:, None] - states[None, :]
    return torch.exp(-(d**2) / (2 * lengthscale**2))


def _selector(train_idx: torch.Tensor, n: int, dtype: torch.dtype) -> torch.Tensor:
    if train_idx.numel() == 0 or int(train_idx.min()) < 0 or int(train_idx.max()) >= n:
        raise ValueError(f"train_idx must be non-empty indices in [0, {n}), got {train_idx.tolist()}")
    S = torch.zeros(train_idx.numel(), n, dtype=dtype)
    S[torch.arange(train_idx.numel()), train_idx] = 1.0
    return S


def kernel_td_system(
    K: torch.Tensor, P: torch.Tensor, R: torch.Tensor, gamma: float, train_idx: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(A, c) of kernel semi-gradient TD on X_train (Lyle et al. 2022b Thm. 4.2): ∂V = K[:, tr] S((γP − I)V + R)."""
    _check_gamma(gamma)
    S = _selector(train_idx, P.shape[0], P.dtype)
    Kt = K[:, train_idx]
    return Kt @ S @ (gamma * P - torch.eye(P.shape[0], dtype=P.dtype)), Kt @ S @ R


def kernel_mc_system(K: torch.Tensor, v_pi: torch.Tensor, train_idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(A, c) of kernel Monte Carlo regression on X_train: ∂V = K[:, tr] S(V^π − V)."""
    S = _selector(train_idx, v_pi.shape[0], v_pi.dtype)
    Kt = K[:, train_idx]
    return -Kt @ S, Kt @ S @ v_pi


def kernel_rates(K: torch.Tensor, B: torch.Tensor, train_idx: torch.Tensor) -> torch.Tensor:
    """Eigenvalues of the training-error dynamics for ∂V = K[:, tr] S B V + c: eig((S B) K[:, tr]) (|tr| values).

    These are the nonzero eigenvalues of K[:, tr] S B (push-through identity); the remaining N − |tr| eigenvalues of
    the full system are 0 (untrained states never update themselves). The dynamics diverge iff some rate has a
    positive real part; explicit Euler with step ``lr`` diverges iff some |1 + lr·λ| > 1.
    """
    return torch.linalg.eigvals(B[train_idx] @ K[:, train_idx])


def _normalised_coefficient_errors(
    P: torch.Tensor, traj: torch.Tensor, v_pi: torch.Tensor, v0: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(λ, share of V^π per mode, |α_t − α_π| / |α_0 − α_π| [T, N]) for a trajectory ``traj`` [T, N]."""
    lam, a_t = eigen_coefficients(P, traj)
    _, a_pi = eigen_coefficients(P, v_pi)
    _, a_0 = eigen_coefficients(P, v0)
    denom = (a_0 - a_pi).abs()
    err = (a_t - a_pi[None]).abs() / torch.where(denom > 1e-12, denom, torch.nan)[None]
    share = a_pi.abs() ** 2 / (a_pi.abs() ** 2).sum()
    return lam, share, err


def eigen_table(cfg: DictConfig) -> tuple[pd.DataFrame, dict]:
    """Observation 4.1 on the circle MDP: per eigenvalue group (conjugate pairs together), the TD convergence rate
    1 − γ Re λ, the measured normalised coefficient error of the closed-form trajectory at the report times (TD and MC),
    the theory exp(−t(1 − γ Re λ)), and the share of V^π on the group. Also returns trajectories for the figure."""
    P, R = circle_mdp(cfg.mdp.n_states, cfg.mdp.reward_state, cfg.mdp.policy, cfg.mdp.p_right)
    n = P.shape[0]
    v0 = torch.zeros(n, dtype=torch.float64)
    times = [float(t) for t in cfg.eigen.report_times]
    grid = torch.linspace(0, float(cfg.eigen.t_max), int(cfg.eigen.n_grid), dtype=torch.float64).tolist()
    rows, curves = [], {}
    for gamma in cfg.eigen.gammas:
        gamma = float(gamma)
        v_pi = value_function(P, R, gamma)
        lam, share, err_td = _normalised_coefficient_errors(P, td_closed_form(P, R, gamma, v0, times), v_pi, v0)
        _, _, err_mc = _normalised_coefficient_errors(P, mc_closed_form(v_pi, v0, times), v_pi, v0)
        _, _, grid_td = _normalised_coefficient_errors(P, td_closed_form(P, R, gamma, v0, grid), v_pi, v0)
        curves[gamma] = (lam, grid, grid_td, v_pi)
        # Group conjugate pairs (same Re λ, |Im λ|): they share one rate.
        keys = [(round(float(z.real), 9), round(abs(float(z.imag)), 9)) for z in lam]
        for key in sorted(set(keys), key=lambda k: -k[0]):
            members = [i for i, k in enumerate(keys) if k == key]
            rate = 1.0 - gamma * key[0]
            row = {
                "gamma": gamma,
                "re_lambda": key[0],
                "abs_im_lambda": key[1],
                "frequency": round(math.atan2(key[1], key[0]) * n / (2 * math.pi)),
                "n_modes": len(members),
                "td_rate": rate,
                "share_of_v_pi": float(share[members].sum()),
            }
            for j, t in enumerate(times):
                row[f"td_err_t{t:g}"] = float(torch.nanmean(err_td[j, members]))
                row[f"theory_t{t:g}"] = math.exp(-t * rate)
                row[f"mc_err_t{t:g}"] = float(torch.nanmean(err_mc[j, members]))
            rows.append(row)
    return pd.DataFrame(rows), curves


def kernel_table(cfg: DictConfig) -> tuple[pd.DataFrame, dict]:
    """The kernel-TD grid of Lyle et al. 2022b Fig. 9: for each (γ, ℓ), TD and MC kernel dynamics trained on X_train.

    Columns: RMSE to V^π on train and test states for TD after each ``td_steps`` and MC after ``mc_steps`` (time =
    lr · steps); the growth max_t ‖V_t‖_∞ / ‖V^π‖_∞ over the TD horizon ("diverges" when > ``growth_threshold``);
    the largest real part of the training-dynamics eigenvalues (continuous-time divergence iff > 0); and the spectral
    radius of the explicit-Euler iteration with step ``lr`` (discrete divergence iff > 1), for TD and MC."""
    kc = cfg.kernel
    P, R = circle_mdp(cfg.mdp.n_states, cfg.mdp.reward_state, cfg.mdp.policy, cfg.mdp.p_right)
    n = P.shape[0]
    train_idx = torch.arange(int(kc.train_states[0]) - 1, int(kc.train_states[1]), dtype=torch.long)
    test_mask = torch.ones(n, dtype=torch.bool)
    test_mask[train_idx] = False
    states = torch.arange(1, n + 1, dtype=torch.float64)
    v0 = torch.zeros(n, dtype=torch.float64)
    lr = float(kc.lr)
    td_times = [lr * s for s in kc.td_steps]
    mc_time = lr * float(kc.mc_steps)
    dense = torch.linspace(0, max(td_times), int(kc.n_grid), dtype=torch.float64).tolist()
    eye = torch.eye(n, dtype=torch.float64)
    rows, curves = [], {}
    for gamma in kc.gammas:
        gamma = float(gamma)
        v_pi = value_function(P, R, gamma)
        vmax = float(v_pi.abs().max())
        for ell in kc.lengthscales:
            ell = float(ell)
            K = rbf_kernel(states, ell)
            A_td, c_td = kernel_td_system(K, P, R, gamma, train_idx)
            A_mc, c_mc = kernel_mc_system(K, v_pi, train_idx)
            v_td = linear_ode_solution(A_td, c_td, v0, td_times)
            v_mc = linear_ode_solution(A_mc, c_mc, v0, [mc_time])[0]
            growth = float(linear_ode_solution(A_td, c_td, v0, dense).abs().amax()) / vmax
            growth_mc = float(linear_ode_solution(A_mc, c_mc, v0, dense).abs().amax()) / vmax
            rates_td = kernel_rates(K, gamma * P - eye, train_idx)
            rates_mc = kernel_rates(K, -eye, train_idx)
            row = {"gamma": gamma, "lengthscale": ell}
            for s, v in zip(kc.td_steps, v_td, strict=True):
                row[f"td{s}_rmse_train"] = float((v - v_pi)[~test_mask].pow(2).mean().sqrt())
                row[f"td{s}_rmse_test"] = float((v - v_pi)[test_mask].pow(2).mean().sqrt())
            row[f"mc{kc.mc_steps}_rmse_train"] = float((v_mc - v_pi)[~test_mask].pow(2).mean().sqrt())
            row[f"mc{kc.mc_steps}_rmse_test"] = float((v_mc - v_pi)[test_mask].pow(2).mean().sqrt())
            row["td_growth"] = growth
            row["mc_growth"] = growth_mc
            row["td_diverges"] = bool(growth > float(kc.growth_threshold))
            row["mc_diverges"] = bool(growth_mc > float(kc.growth_threshold))
            row["td_max_re_rate"] = float(rates_td.real.max())
            row["mc_max_re_rate"] = float(rates_mc.real.max())
            row["td_euler_radius"] = float((1 + lr * rates_td).abs().max())
            row["mc_euler_radius"] = float((1 + lr * rates_mc).abs().max())
            rows.append(row)
            curves[(gamma, ell)] = (v_pi, v_td, v_mc, test_mask)
    return pd.DataFrame(rows), curves


def _plot_eigen(curves: dict, path: Path, frequencies: Sequence[int]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(5.5 * len(curves), 4), squeeze=False)
    for ax, (gamma, (lam, grid, err, _)) in zip(axes[0], curves.items(), strict=True):
        n = lam.numel()
        freq = torch.round(torch.atan2(lam.imag.abs(), lam.real) * n / (2 * math.pi)).long()
        for k in frequencies:
            members = (freq == k).nonzero().flatten()
            if members.numel() == 0:
                continue
            y = torch.nanmean(err[:, members], dim=1)
            ax.semilogy(grid, y.clamp_min(1e-12), label=f"TD, frequency {k} (Re λ = {float(lam[members[0]].real):.2f})")
        ax.semilogy(grid, torch.exp(-torch.tensor(grid)), "k--", label="MC (every mode)")
        ax.set_title(f"Circle MDP, γ = {gamma:g}: |α_t − α_π| / |α_0 − α_π|")
        ax.set_xlabel("t")
        ax.set_ylim(1e-6, 2)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_kernel(curves: dict, cfg: DictConfig, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gammas = [float(g) for g in cfg.kernel.gammas]
    ells = [float(e) for e in cfg.kernel.lengthscales]
    fig, axes = plt.subplots(len(gammas), len(ells), figsize=(4.5 * len(ells), 3.2 * len(gammas)), squeeze=False)
    for r, gamma in enumerate(gammas):
        for c, ell in enumerate(ells):
            ax = axes[r][c]
            v_pi, v_td, v_mc, test_mask = curves[(gamma, ell)]
            x = torch.arange(1, v_pi.numel() + 1)
            test_states = x[test_mask]
            ax.axvspan(float(test_states.min()) - 0.5, float(test_states.max()) + 0.5, color="0.9", label="test states")
            ax.plot(x, v_pi, "k-", lw=2, label="V^π")
            for s, v in zip(cfg.kernel.td_steps, v_td, strict=True):
                ax.plot(x, v, "-", label=f"TD, {s} steps")
            ax.plot(x, v_mc, "r--", label=f"MC, {cfg.kernel.mc_steps} steps")
            ax.set_title(f"γ = {gamma:g}, ℓ = {ell:g}")
            ax.set_xlabel("state")
            if c == 0:
                ax.set_ylabel("value")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(cfg: DictConfig, run_dir: Path) -> dict[str, pd.DataFrame]:
    """Both parts of the study; tables and figures go to ``run_dir``."""
    eig, eig_curves = eigen_table(cfg)
    ker, ker_curves = kernel_table(cfg)
    write_table(eig, run_dir, "tabular_td_eigen", title="Tabular TD: coefficient error per eigen-mode", index=False)
    write_table(ker, run_dir, "tabular_td_kernel", title="Kernel TD vs MC on the circle MDP", index=False)
    _plot_eigen(eig_curves, run_dir / "tabular_td_eigen.png", list(cfg.eigen.plot_frequencies))
    _plot_kernel(ker_curves, cfg, run_dir / "tabular_td_kernel.png")
    return {"eigen": eig, "kernel": ker}


def _summary(out: dict[str, pd.DataFrame]) -> dict[str, list]:
    ker = out["kernel"]
    return {
        "td_diverges": [[r.gamma, r.lengthscale] for r in ker.itertuples() if r.td_diverges],
        "mc_diverges": [[r.gamma, r.lengthscale] for r in ker.itertuples() if r.mc_diverges],
    }


@hydra.main(config_path=str(CONF_DIR), config_name="theory/tabular_td", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run_study(cfg, run, _summary, lambda out: out["kernel"].to_string(index=False))


if __name__ == "__main__":
    study_entry(main)
