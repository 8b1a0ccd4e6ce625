"""TD-NTK study: linearised TD policy evaluation vs really trained networks (Anonymous 2023 §5, App. D;
docs/references.md#anonymous-2023).

For each environment (the App. D.1 toy and cart-pole policy evaluation, :mod:`repdyn.theory.td_envs`):

1. ``n_inits`` Q-networks in NTK parameterisation (:class:`repdyn.theory.ntk_mlp.NTKMLP`); for each, the empirical NTK
   at initialisation on [X; X'; X*] from :func:`repdyn.metrics.ntk.ntk_gram` and the closed-form linearised
   predictions Q_t(X*) (:mod:`repdyn.theory.td_linear`, eq. 24 single network or eqs. 15-17 target network) at the
   checkpoint times and t = ∞ → "TD-NTK (empirical)": mean and variance over initialisations (Monte Carlo, eq. 8 + 5).
2. Optionally the infinite-width ReLU kernels (arc-cosine NNGP and NTK) → "TD-NTK (analytic)": the Gaussian of
   eq. 10/29.
3. The first ``n_nets`` of those initialisations really trained: full-batch gradient descent on the TD loss
   ½‖Q(X) − r − G Q(X')‖² (gradient through both terms, or a soft-updated target network) with step ``lr`` for
   ``n_steps`` steps, all members at once (``torch.func`` vmap over stacked parameters) → "NNs".
4. Against the true values (toy: exact returns; cart-pole: Monte-Carlo returns of the policy): RMSE of the ensemble
   mean and Gaussian NLL per evaluation state (mean ± std over states, as its Table 1) on train / test states;
   and, per checkpoint, the parameter-space and function-space distance between each trained network and its own
   linearisation (its Fig. 1).

Run: ``python -m repdyn.theory.td_ntk`` (config ``conf/theory/td_ntk.yaml``; ``envs=[toy]`` for one environment).
Writes ``td_ntk_<env>.csv/.md`` (Table 1), ``td_ntk_<env>_distance.csv/.md`` (Fig. 1), ``td_ntk_<env>_*.png``,
``history.jsonl`` (per checkpoint step, keys ``td_ntk/<env>/<metric>``), ``config.yaml``, ``summary.json``.

Time: one gradient step of size η is one unit of the closed form's t (θ̇ = −η∇L). ``lr: auto`` picks
``lr_fraction`` · η_critical with η_critical = 2/(λ_max + λ_min) of Θ̄ at the first initialisation (eq. 11).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path

import hydra
import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig
from torch.func import functional_call, stack_module_state, vmap

from repdyn.loggers.history import History
from repdyn.metrics.ntk import ntk_gram
from repdyn.paths import CONF_DIR, HISTORY_FILE
from repdyn.progress import progress_bar
from repdyn.theory.ntk_mlp import NTKMLP, analytic_kernels
from repdyn.theory.report import run_study, study_entry, write_table
from repdyn.theory.td_envs import TDDataset, cartpole_dataset, load_checkpoint_policy, toy_dataset, train_linear_policy
from repdyn.theory.td_linear import (
    KernelBlocks,
    dual_matrices,
    ensemble_moments,
    eval_operator,
    gaussian_nll,
    linearised_predictions,
    param_displacement,
    theta_bar,
)

_ENVS = ("toy", "cartpole")
_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def validate(cfg: DictConfig) -> None:
    """Fail before any compute on a bad config (one clear message)."""
    bad = [e for e in cfg.envs if e not in _ENVS]
    if bad or not cfg.envs:
        raise ValueError(f"envs must be a non-empty subset of {list(_ENVS)}, got {list(cfg.envs)}")
    if cfg.mode not in ("single", "target"):
        raise ValueError(f"mode must be 'single' or 'target', got {cfg.mode!r}")
    if cfg.mode == "target" and float(cfg.tau) < 0:
        raise ValueError(f"tau must be >= 0, got {cfg.tau}")
    for env in cfg.envs:
        e = cfg[env]
        if e.model.activation != "relu" and cfg.analytic:
            raise ValueError(f"analytic kernels exist for relu only; {env}.model.activation={e.model.activation!r}")
        if not (1 <= int(e.n_nets) <= int(e.n_inits)):
            raise ValueError(f"{env}: need 1 <= n_nets <= n_inits, got n_nets={e.n_nets}, n_inits={e.n_inits}")
        if int(e.n_steps) < 1:
            raise ValueError(f"{env}.n_steps must be >= 1, got {e.n_steps}")
        if e.lr != "auto" and float(e.lr) <= 0:
            raise ValueError(f"{env}.lr must be 'auto' or > 0, got {e.lr}")
        if e.train_dtype not in _DTYPES:
            raise ValueError(f"{env}.train_dtype must be one of {sorted(_DTYPES)}, got {e.train_dtype!r}")
    if "cartpole" in cfg.envs and cfg.cartpole.policy.source not in ("train", "checkpoint"):
        raise ValueError(f"cartpole.policy.source must be 'train' or 'checkpoint', got {cfg.cartpole.policy.source!r}")


def checkpoint_steps(n_steps: int, n_points: int) -> list[int]:
    """0, then ~log-spaced integer steps up to and including ``n_steps``."""
    pts = np.unique(np.round(np.geomspace(1, n_steps, max(2, n_points))).astype(int))
    return [0, *[int(p) for p in pts]]


def build_dataset(env: str, cfg: DictConfig, seed: int) -> TDDataset:
    e = cfg[env]
    if env == "toy":
        return toy_dataset(float(e.gamma), int(e.n_states), tuple(e.grid))
    pc = e.policy
    if pc.source == "train":
        policy, pinfo = train_linear_policy(int(pc.iterations), int(pc.episodes_per_iter), float(pc.lr), seed)
    else:
        policy, pinfo = load_checkpoint_policy(pc.run_dir)
    ds = cartpole_dataset(
        policy, float(e.gamma), int(e.n_transitions), int(e.n_eval_train), int(e.n_eval_test), int(e.mc_horizon), seed
    )
    ds.info.update(pinfo)
    return ds


def make_models(n: int, in_dim: int, mcfg: DictConfig, seed: int) -> list[NTKMLP]:
    """``n`` float64 initialisations, each seeded by (seed, index) so a member's init does not depend on ``n``."""
    models = []
    for i in range(n):
        torch.manual_seed(seed * 100_003 + i)
        models.append(
            NTKMLP(
                in_dim,
                int(mcfg.width),
                int(mcfg.depth),
                float(mcfg.sigma_w2),
                float(mcfg.sigma_b2),
                str(mcfg.activation),
            ).double()
        )
    return models


def linearise(model: NTKMLP, ds: TDDataset, chunk: int) -> tuple[KernelBlocks, dict[str, torch.Tensor]]:
    """Empirical NTK blocks on [X; X'; X*] and the outputs at initialisation."""
    n, m = ds.x.shape[0], ds.xs.shape[0]
    union = torch.cat([ds.x, ds.xp, ds.xs])
    K = ntk_gram(model, union, chunk_size=chunk)
    with torch.no_grad():
        q = model(union)[0][:, 0]
    return KernelBlocks.from_full(K, n, m), {"x": q[:n], "xp": q[n : 2 * n], "s": q[2 * n :]}


def critical_lr(blocks: KernelBlocks, g: torch.Tensor) -> float:
    """η_critical = 2/(λ_max + λ_min) of Θ̄ (Anonymous 2023 eq. 11)."""
    lam = torch.linalg.eigvalsh(theta_bar(blocks, g))
    return float(2.0 / (lam.max() + lam.min().clamp_min(0)))


def train_ensemble(
    models: list[NTKMLP], ds: TDDataset, lr: float, steps: list[int], mode: str, tau: float, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """Full-batch GD on the TD loss for every model at once; returns predictions on X* [S, N, m], flattened parameters
    [S, N, P] at the checkpoint ``steps`` and the mean TD loss per checkpoint."""
    nets = [copy.deepcopy(m).to(dtype) for m in models]
    params, _ = stack_module_state(nets)
    base = copy.deepcopy(nets[0]).to("meta")

    def fwd(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(base, (p,), (x,))[0][:, 0]

    f = vmap(fwd, in_dims=(0, None))
    x, xp, xs = ds.x.to(dtype), ds.xp.to(dtype), ds.xs.to(dtype)
    r, g = ds.r.to(dtype), ds.g.to(dtype)
    n = x.shape[0]
    both = torch.cat([x, xp])
    target = {k: v.detach().clone() for k, v in params.items()} if mode == "target" else None
    want = set(steps)
    preds, flats, losses = [], [], []

    def record(loss: float) -> None:
        with torch.no_grad():
            preds.append(f(params, xs).double())
            flats.append(torch.cat([v.detach().reshape(len(nets), -1) for v in params.values()], 1).double())
        losses.append(loss)

    def td_loss() -> torch.Tensor:
        if mode == "single":
            q = f(params, both)
            q_x, q_xp = q[:, :n], q[:, n:]
        else:
            q_x = f(params, x)
            with torch.no_grad():
                q_xp = f(target, xp)
        return 0.5 * (q_x - r - g * q_xp).square().sum()

    if 0 in want:
        with torch.no_grad():
            record(float(td_loss()) / len(nets))
    for step in progress_bar(range(1, max(steps) + 1), desc="TD training", leave=False, mininterval=5):
        loss = td_loss()
        grads = torch.autograd.grad(loss, list(params.values()))
        with torch.no_grad():
            for p, gr in zip(params.values(), grads, strict=True):
                p.sub_(lr * gr)
            if target is not None:  # soft update θ̄ ← (1 − τ)θ̄ + τθ_{t+1} (Anonymous 2023 eq. 12)
                for k, p in params.items():
                    target[k].mul_(1 - tau).add_(tau * p)
        if step in want:
            with torch.no_grad():
                record(float(td_loss()) / len(nets))
    return torch.stack(preds), torch.stack(flats), losses


def _metrics(mean: torch.Tensor, var: torch.Tensor, y: torch.Tensor, floor: float) -> dict[str, float]:
    nll = gaussian_nll(y, mean, var, floor)
    return {
        "rmse": float((mean - y).pow(2).mean().sqrt()),
        "nll_mean": float(nll.mean()),
        "nll_std": float(nll.std()) if nll.numel() > 1 else float("nan"),
        "pred_std_mean": float(var.clamp_min(0).sqrt().mean()),
    }


@dataclass
class Linearisations:
    """The closed-form linearised predictions of every initialisation and what the rest of the study needs of them."""

    preds: torch.Tensor  # [I, T+1, m]: Q_t(X*) at the checkpoint times and t = ∞
    coeffs: list[torch.Tensor]  # per trained net: dual coefficients at the finite checkpoints
    blocks0: KernelBlocks  # eNTK blocks of the first initialisation
    eta_crit: float
    lr: float


def linearise_all(
    env: str, models: list[NTKMLP], ds: TDDataset, e: DictConfig, times: list[float], cfg: DictConfig
) -> Linearisations:
    """Empirical NTK + closed form for each initialisation; the step size comes from the first one (``lr: auto``)."""
    mode, tau = str(cfg.mode), float(cfg.tau)
    lin_preds, coeffs, blocks0, eta_crit, lr = [], [], None, None, None
    for i, model in enumerate(progress_bar(models, desc=f"{env}: eNTK + closed form", leave=False)):
        blocks, q0 = linearise(model, ds, int(cfg.ntk_chunk))
        if i == 0:
            blocks0 = blocks
            eta_crit = critical_lr(blocks, ds.g)
            lr = float(e.lr_fraction) * eta_crit if e.lr == "auto" else float(e.lr)
        M = dual_matrices(blocks, ds.g, lr, times, mode=mode, tau=tau)
        lin_preds.append(
            linearised_predictions(q0["s"], q0["x"], q0["xp"], ds.r, ds.g, eval_operator(blocks, ds.g, mode), M)
        )
        if i < int(e.n_nets):
            r_hat = q0["x"] - ds.r - ds.g * q0["xp"]
            coeffs.append(M[:-1] @ r_hat)  # dual coefficients at the finite checkpoints
    return Linearisations(torch.stack(lin_preds), coeffs, blocks0, eta_crit, lr)


def distance_table(
    nets: list[NTKMLP],
    ds: TDDataset,
    lin: Linearisations,
    steps: list[int],
    trained: tuple[torch.Tensor, torch.Tensor, list[float]],
    mode: str,
) -> pd.DataFrame:
    """Per checkpoint: TD loss, relative parameter change of the networks and of their linearisations, and the
    parameter- and function-space RMSE between each network and its own linearisation (Anonymous 2023 Fig. 1)."""
    nn_preds, nn_params, losses = trained
    theta0 = nn_params[0]  # [N, P]
    rows = []
    for k, step in enumerate(steps):
        omega = torch.stack(
            [param_displacement(m, ds.x, ds.xp, lin.coeffs[j][k], ds.g, mode) for j, m in enumerate(nets)]
        )  # [N, P]
        move = nn_params[k] - theta0
        rows.append(
            {
                "step": step,
                "t_eta": step * lin.lr,
                "td_loss_nn": losses[k],
                "param_change_rel_nn": float((move.norm(dim=1) / theta0.norm(dim=1)).mean()),
                "param_change_rel_lin": float((omega.norm(dim=1) / theta0.norm(dim=1)).mean()),
                "param_rmse_nn_vs_lin": float((move - omega).pow(2).mean(1).sqrt().mean()),
                "func_rmse_nn_vs_lin": float((nn_preds[k] - lin.preds[: len(nets), k]).pow(2).mean(1).sqrt().mean()),
            }
        )
    return pd.DataFrame(rows)


def analytic_ensemble(
    ds: TDDataset, mcfg: DictConfig, lr: float, t_final: float, mode: str, tau: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance on X* at t = ``t_final`` and t = ∞ ([2, m] each) of the infinite-width ensemble: the
    Gaussian of Anonymous 2023 eq. 10/29 from the arc-cosine NNGP and NTK kernels."""
    n, m = ds.x.shape[0], ds.xs.shape[0]
    union = torch.cat([ds.x, ds.xp, ds.xs])
    nngp_k, ntk_k = analytic_kernels(union, int(mcfg.depth), float(mcfg.sigma_w2), float(mcfg.sigma_b2))
    nngp_b, ntk_b = KernelBlocks.from_full(nngp_k, n, m), KernelBlocks.from_full(ntk_k, n, m)
    M = dual_matrices(ntk_b, ds.g, lr, [t_final, math.inf], mode=mode, tau=tau)
    mean, cov = ensemble_moments(nngp_b, ntk_b, ds.r, ds.g, M, mode)
    return mean, torch.diagonal(cov, dim1=1, dim2=2)


def accuracy_table(methods: dict[str, tuple[torch.Tensor, torch.Tensor]], ds: TDDataset, floor: float) -> pd.DataFrame:
    """Table 1: RMSE and Gaussian NLL of each method's (mean, variance) against the true values, train and test."""
    split = np.asarray(ds.split)
    rows = []
    for sp in ("train", "test"):
        idx = torch.as_tensor(np.nonzero(split == sp)[0])
        for name, (mu, var) in methods.items():
            rows.append(
                {"split": sp, "method": name, "n_states": len(idx), **_metrics(mu[idx], var[idx], ds.ys[idx], floor)}
            )
    return pd.DataFrame(rows)


def run_env(env: str, cfg: DictConfig) -> dict:
    """The whole study for one environment; returns tables and arrays for the figures."""
    e = cfg[env]
    seed = int(cfg.seed)
    ds = build_dataset(env, cfg, seed)
    mode, tau = str(cfg.mode), float(cfg.tau)
    models = make_models(int(e.n_inits), ds.x.shape[1], e.model, seed)
    steps = checkpoint_steps(int(e.n_steps), int(e.n_checkpoints))
    times = [float(s) for s in steps] + [math.inf]
    lin = linearise_all(env, models, ds, e, times, cfg)
    nets = models[: int(e.n_nets)]
    trained = train_ensemble(nets, ds, lin.lr, steps, mode, tau, _DTYPES[e.train_dtype])
    nn_final = trained[0][-1]
    analytic = analytic_ensemble(ds, e.model, lin.lr, times[-2], mode, tau) if cfg.analytic else None
    T = int(e.n_steps)
    methods = {
        f"NNs ({len(nets)} nets, {T} steps)": (nn_final.mean(0), nn_final.var(0)),
        f"TD-NTK empirical ({len(models)} inits, t={T})": (lin.preds[:, -2].mean(0), lin.preds[:, -2].var(0)),
        f"TD-NTK empirical ({len(models)} inits, t=inf)": (lin.preds[:, -1].mean(0), lin.preds[:, -1].var(0)),
    }
    if analytic is not None:
        methods[f"TD-NTK analytic (inf width, t={T})"] = (analytic[0][0], analytic[1][0])
        methods["TD-NTK analytic (inf width, t=inf)"] = (analytic[0][1], analytic[1][1])
    info = {
        **ds.info,
        "lr": lin.lr,
        "eta_critical": lin.eta_crit,
        "lambda_bar_max": float(torch.linalg.eigvalsh(theta_bar(lin.blocks0, ds.g)).max()),
    }
    return {
        "table": accuracy_table(methods, ds, float(cfg.var_floor)),
        "distance": distance_table(nets, ds, lin, steps, trained, mode),
        "info": info,
        "ds": ds,
        "nn_final": nn_final,
        "lin_final": lin.preds[:, -2],
        "analytic": None if analytic is None else (analytic[0][0], analytic[1][0]),
        "steps": steps,
    }


def _plot(env: str, out: dict, run_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ds, dist = out["ds"], out["distance"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    d = dist[dist.step > 0]
    axes[0].loglog(d.step, d.param_change_rel_nn, label="NN ‖θ_t − θ_0‖/‖θ_0‖")
    axes[0].loglog(d.step, d.param_change_rel_lin, "--", label="linearised ‖ω_t‖/‖θ_0‖")
    axes[1].loglog(d.step, d.param_rmse_nn_vs_lin)
    axes[2].loglog(d.step, d.func_rmse_nn_vs_lin)
    for ax, title in zip(
        axes,
        ("parameter change", "parameter RMSE: NN vs linearisation", "Q RMSE on X*: NN vs linearisation"),
        strict=True,
    ):
        ax.set_title(f"{env}: {title}", fontsize=9)
        ax.set_xlabel("gradient step")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(run_dir / f"td_ntk_{env}_distance.png", dpi=110)
    plt.close(fig)

    test = np.asarray(ds.split) == "test"
    series = {
        "NNs": (out["nn_final"].mean(0), out["nn_final"].std(0)),
        "TD-NTK empirical": (out["lin_final"].mean(0), out["lin_final"].std(0)),
    }
    if out["analytic"] is not None:
        series["TD-NTK analytic"] = (out["analytic"][0], out["analytic"][1].clamp_min(0).sqrt())
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    if env == "toy":
        s = ds.xs[test, 0].numpy()
        for name, (mu, sd) in series.items():
            ax.plot(s, mu[test], label=name)
            ax.fill_between(s, (mu - sd)[test], (mu + sd)[test], alpha=0.2)
        ax.plot(s, ds.ys[test], "k--", label="true value")
        for x0 in ds.x[:, 0].numpy():
            ax.axvline(x0, color="g", lw=0.3)
        ax.set_xlabel("state s")
        ax.set_ylabel("Q")
    else:
        y = ds.ys[test].numpy()
        for name, (mu, sd) in series.items():
            ax.errorbar(y, mu[test], yerr=sd[test], fmt=".", alpha=0.5, label=name)
        ax.plot([y.min(), y.max()], [y.min(), y.max()], "k--", lw=1)
        ax.set_xlabel("Monte-Carlo return (test states)")
        ax.set_ylabel("predicted Q (mean ± std)")
    ax.set_title(f"{env}: predictions after {out['steps'][-1]} steps", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(run_dir / f"td_ntk_{env}_predictions.png", dpi=110)
    plt.close(fig)


def run(cfg: DictConfig, run_dir: Path) -> dict[str, dict]:
    outs, records = {}, {}
    for env in cfg.envs:
        out = run_env(env, cfg)
        outs[env] = out
        write_table(out["table"], run_dir, f"td_ntk_{env}", title=f"TD-NTK vs trained networks: {env}", index=False)
        write_table(
            out["distance"], run_dir, f"td_ntk_{env}_distance", title=f"NN vs linearisation: {env}", index=False
        )
        _plot(env, out, run_dir)
        for row in out["distance"].itertuples(index=False):
            rec = records.setdefault(int(row.step), {})
            for k, v in row._asdict().items():
                if k != "step":
                    rec[f"td_ntk/{env}/{k}"] = float(v)
    hist = History(run_dir / HISTORY_FILE)
    for step in sorted(records):
        hist.append(step, records[step])
    hist.close()
    return outs


def _summary(outs: dict[str, dict]) -> dict[str, dict]:
    return {env: {"info": out["info"], "table": out["table"].to_dict(orient="records")} for env, out in outs.items()}


def _show(outs: dict[str, dict]) -> str:
    return "\n".join(f"== {env} ==\n{out['table'].to_string(index=False)}" for env, out in outs.items())


@hydra.main(config_path=str(CONF_DIR), config_name="theory/td_ntk", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run_study(cfg, run, _summary, _show, validate=validate)


if __name__ == "__main__":
    study_entry(main)
