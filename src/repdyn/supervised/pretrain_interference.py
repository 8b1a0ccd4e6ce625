"""Pre-training on high-frequency targets harms interpolation after fine-tuning: Fig. 2 of Lyle et al. 2022b (Lyle,
Rowland, Dabney, Kwiatkowska, Gal 2022, "Learning Dynamics and Generalization in Reinforcement Learning", ICML,
arXiv:2206.02126; the figure is discussed in §4.1 and §4.3).

The paper's argument: TD learning fits the non-smooth components of the value function early, and a network that has
fitted a high-frequency function interferes less between nearby inputs afterwards — it memorises rather than
generalises. Fig. 2 shows it in a supervised toy: an MLP is pre-trained on targets of increasing frequency, then
fine-tuned on a smooth value function on the same training states; the higher the pre-training frequency, the worse
the fine-tuned network does on states *between* the training states, at a similar training loss.

Here, on ``x ∈ [0, 2π]`` (the network sees ``u = x/π − 1 ∈ [−1, 1]``):

* training grid: ``n_train`` evenly spaced states ``x_0 = 0, …, x_{n−1} = 2π`` (spacing ``Δ = 2π/(n − 1)``);
* interpolating grid: ``refine − 1`` evenly spaced states strictly inside each interval of the training grid;
* pre-training target for each ``k`` in ``frequencies``: ``sin(k x)`` (``k = 0``: the zero function, a network
  pre-trained towards its own smooth output, the baseline);
* fine-tuning target: the value of a walk that moves one training state to the right per step with reward 1 on
  reaching ``2π``, ``V(x) = γ^{(2π − x)/Δ}`` (on the training grid ``V(x_i) = γ^{n−1−i}``), smooth in ``x``;
* both phases: full-batch MSE on the training grid, Adam (a fresh optimizer for fine-tuning).

The paper does not state its network, frequencies, grids or optimiser, so every one of them is config; the defaults
were chosen so that the pre-training targets are fitted (MSE ≤ 0.04; their variance is 0.5) in under a minute.

Logged per ``k`` and seed every ``log_every`` fine-tuning steps: the MSE on the training grid and on the interpolating
grid (the paper's right column, top and bottom). Run: ``python -m repdyn.supervised.pretrain_interference`` (config
``conf/supervised/pretrain_interference.yaml``). Writes ``pretrain_interference.csv/.md`` (final losses per ``k``,
mean ± std over seeds), ``pretrain_interference_curves.csv`` (every logged step), ``pretrain_interference.png``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import hydra
import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig
from torch import nn

from repdyn.models.mlp import activation_module
from repdyn.paths import CONF_DIR
from repdyn.theory.report import mean_std_str, run_study, study_entry, write_table

DOMAIN = 2 * math.pi  # x ∈ [0, 2π]


@dataclass(frozen=True)
class Grids:
    x_train: torch.Tensor  # [n_train] training states
    x_interp: torch.Tensor  # [(n_train − 1)(refine − 1)] states strictly between training states
    x_plot: torch.Tensor  # [dense] for the figure only


def make_grids(n_train: int, refine: int) -> Grids:
    """Training grid ``x_i = iΔ``, ``Δ = 2π/(n_train − 1)``, and the interpolating grid ``x_i + jΔ/refine`` for
    ``j = 1, …, refine − 1`` (every state between two training states, none of them a training state)."""
    x_train = torch.linspace(0.0, DOMAIN, n_train, dtype=torch.float64)
    step = DOMAIN / (n_train - 1)
    offsets = torch.arange(1, refine, dtype=torch.float64) * step / refine
    x_interp = (x_train[:-1, None] + offsets[None, :]).reshape(-1)
    return Grids(x_train, x_interp, torch.linspace(0.0, DOMAIN, 1024, dtype=torch.float64))


def pretrain_target(x: torch.Tensor, k: float) -> torch.Tensor:
    """``sin(k x)``: ``k`` periods over ``[0, 2π]`` (Lyle et al. 2022b, Fig. 2, top left)."""
    return torch.sin(k * x)


def value_target(x: torch.Tensor, gamma: float, n_train: int) -> torch.Tensor:
    """``V(x) = γ^{(2π − x)/Δ}``, ``Δ = 2π/(n_train − 1)``: on the training grid the discounted value
    ``γ^{n−1−i}`` of walking right one state per step to a reward of 1 at ``x = 2π``; smooth in between."""
    return gamma ** ((DOMAIN - x) / (DOMAIN / (n_train - 1)))


def net_input(x: torch.Tensor) -> torch.Tensor:
    """The network's input ``u = x/π − 1 ∈ [−1, 1]`` as a column ``[n, 1]`` of float32."""
    return (x / math.pi - 1.0).float()[:, None]


def init_layers(cfg: DictConfig, seed: int) -> list[nn.Linear]:
    """The layers of one MLP ``1 → width × depth → 1``, PyTorch's default init, a function of ``seed`` only."""
    torch.manual_seed(seed)
    sizes = [1, *[int(cfg.model.width)] * int(cfg.model.depth), 1]
    return [nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]


class Members:
    """Independent MLPs (one per ``seeds`` entry, ``model.activation`` after every hidden layer) trained at once:
    member ``m``'s layer ``l`` is ``z ↦ z W_l[m] + b_l[m]`` as one batched matmul over members. The loss is the sum of
    the members' MSEs and Adam acts elementwise, so each member follows exactly its own training."""

    def __init__(self, cfg: DictConfig, seeds: list[int]) -> None:
        nets = [init_layers(cfg, s) for s in seeds]
        self.weights = [
            torch.stack([n[i].weight.detach().T for n in nets]).requires_grad_() for i in range(len(nets[0]))
        ]
        self.biases = [
            torch.stack([n[i].bias.detach()[None] for n in nets]).requires_grad_() for i in range(len(nets[0]))
        ]
        self.activation = activation_module(str(cfg.model.activation))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Every member's prediction ``f_m(x)``: ``[members, len(x)]``."""
        z = net_input(x)[None].expand(len(self.weights[0]), -1, -1)
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            z = torch.baddbmm(b, z, w)
            z = self.activation(z) if i < len(self.weights) - 1 else z
        return z[..., 0]

    def mse(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per member ``mean_i (f_m(x_i) − y_{m,i})²`` (``y``: ``[members, len(x)]``), without a graph."""
        with torch.no_grad():
            return ((self(x) - y.float()) ** 2).mean(1)

    def fit(self, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float, log=None, log_every: int = 1) -> None:
        """``steps`` full-batch Adam steps (a fresh optimizer) on each member's ``mean_i (f_m(x_i) − y_{m,i})²``;
        ``log(step)`` at step 0, every ``log_every`` steps and after the last one (when given)."""
        opt = torch.optim.Adam(self.weights + self.biases, lr=lr)
        target = y.float()
        for step in range(steps):
            if log is not None and step % log_every == 0:
                log(step)
            opt.zero_grad(set_to_none=True)
            ((self(x) - target) ** 2).mean(1).sum().backward()
            opt.step()
        if log is not None:
            log(steps)


def run_members(cfg: DictConfig, grids: Grids, ks: list[float], seeds: list[int]) -> tuple[pd.DataFrame, np.ndarray]:
    """Member ``m`` (``k = ks[m]``, init ``seeds[m]``): pre-train on ``sin(k x)``, fine-tune on ``V``. Returns the
    fine-tuning curves (``k, seed, step, pretrain_loss, train_loss, interp_loss``) and the fine-tuned predictions on
    the plotting grid ``[members, len(x_plot)]``."""
    nets = Members(cfg, seeds)
    x, n, gamma = grids.x_train, int(cfg.grid.n_train), float(cfg.value.gamma)
    pre_y = torch.stack([pretrain_target(x, k) for k in ks])
    nets.fit(x, pre_y, int(cfg.pretrain.steps), float(cfg.pretrain.lr))
    pre_loss = nets.mse(x, pre_y)
    v_train = value_target(x, gamma, n).expand(len(ks), -1)
    v_interp = value_target(grids.x_interp, gamma, n).expand(len(ks), -1)
    rows: list[dict] = []

    def log(step: int) -> None:
        train, interp = nets.mse(x, v_train), nets.mse(grids.x_interp, v_interp)
        rows.extend(
            {
                "k": k,
                "seed": s,
                "step": step,
                "pretrain_loss": float(p),
                "train_loss": float(a),
                "interp_loss": float(b),
            }
            for k, s, p, a, b in zip(ks, seeds, pre_loss, train, interp, strict=True)
        )

    nets.fit(x, v_train, int(cfg.finetune.steps), float(cfg.finetune.lr), log, int(cfg.finetune.log_every))
    with torch.no_grad():
        return pd.DataFrame(rows), nets(grids.x_plot).numpy()


def summarise(curves: pd.DataFrame) -> pd.DataFrame:
    """Per ``k``: mean and std over seeds of the final pre-training MSE and the final fine-tuning train / interpolation
    MSE, and the ratio of the two means (interpolation / train)."""
    last = curves[curves.step == curves.step.max()]
    g = last.groupby("k")[["pretrain_loss", "train_loss", "interp_loss"]]
    table = g.mean().add_prefix("final_").join(g.std(ddof=1).add_prefix("final_").add_suffix("_std"))
    return table.assign(interp_over_train=table.final_interp_loss / table.final_train_loss, n_seeds=g.size())


def _markdown_view(curves: pd.DataFrame) -> pd.DataFrame:
    last = curves[curves.step == curves.step.max()]
    cols = {"pretrain_loss": "pre-training MSE", "train_loss": "train-grid MSE", "interp_loss": "interpolation MSE"}
    return pd.DataFrame({label: last.groupby("k")[c].apply(mean_std_str) for c, label in cols.items()})


def _plot(cfg: DictConfig, grids: Grids, curves: pd.DataFrame, preds: dict[float, np.ndarray], path: Path) -> None:
    """Fig. 2's layout: targets (top left), fine-tuned predictions (bottom left), train / interpolation loss curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(10, 6.5))
    xp, n = grids.x_plot.numpy(), int(cfg.grid.n_train)
    for k, pred in preds.items():
        axes[0][0].plot(xp, pretrain_target(grids.x_plot, k).numpy(), lw=0.8, label=f"k = {k:g}")
        axes[1][0].plot(xp, pred, lw=0.8, label=f"k = {k:g}")
    axes[1][0].plot(xp, value_target(grids.x_plot, float(cfg.value.gamma), n).numpy(), "k--", lw=1.2, label="V")
    axes[1][0].plot(grids.x_train.numpy(), np.zeros(n), "k|", ms=6)
    axes[0][0].set_title("pre-training targets sin(kx)", fontsize=9)
    axes[1][0].set_title(f"fine-tuned on V (seed {int(cfg.seed)}); | = training states", fontsize=9)
    mean = curves.groupby(["k", "step"])[["train_loss", "interp_loss"]].mean().reset_index()
    for (col, title), ax in zip(
        {"train_loss": "MSE on the training states", "interp_loss": "MSE on the interpolating states"}.items(),
        (axes[0][1], axes[1][1]),
        strict=True,
    ):
        for k, g in mean.groupby("k"):
            ax.semilogy(g.step, g[col], label=f"k = {k:g}")
        ax.set_title(f"{title} (mean of {int(cfg.n_seeds)} seeds)", fontsize=9)
        ax.set_xlabel("fine-tuning step")
    axes[1][0].set_xlabel("x")
    axes[0][0].legend(fontsize=7)
    axes[0][1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def validate(cfg: DictConfig) -> None:
    """Check the study's settings; raises ``ValueError`` naming the key."""
    if not cfg.frequencies or any(float(k) < 0 for k in cfg.frequencies):
        raise ValueError(f"frequencies must be a non-empty list of k >= 0, got {cfg.frequencies}")
    if int(cfg.grid.n_train) < 2 or int(cfg.grid.refine) < 2:
        raise ValueError(f"grid.n_train and grid.refine must be >= 2, got {cfg.grid.n_train}, {cfg.grid.refine}")
    if int(cfg.n_seeds) < 1 or not 0.0 < float(cfg.value.gamma) < 1.0:
        raise ValueError(f"n_seeds must be >= 1 and value.gamma in (0, 1), got {cfg.n_seeds}, {cfg.value.gamma}")
    for phase in ("pretrain", "finetune"):
        if int(cfg[phase].steps) < 0 or float(cfg[phase].lr) <= 0:
            raise ValueError(f"{phase}.steps must be >= 0 and {phase}.lr > 0, got {cfg[phase].steps}, {cfg[phase].lr}")
    if int(cfg.finetune.log_every) < 1:
        raise ValueError(f"finetune.log_every must be >= 1, got {cfg.finetune.log_every}")


def run(cfg: DictConfig, run_dir: Path) -> dict[str, pd.DataFrame]:
    """Every ``k`` × seed; tables and the figure go to ``run_dir``."""
    grids = make_grids(int(cfg.grid.n_train), int(cfg.grid.refine))
    pairs = [(float(k), s) for k in cfg.frequencies for s in range(int(cfg.seed), int(cfg.seed) + int(cfg.n_seeds))]
    curves, preds = run_members(cfg, grids, [k for k, _ in pairs], [s for _, s in pairs])
    first = {}  # k → the fine-tuned prediction of its first seed (the figure)
    for (k, _), pred in zip(pairs, preds, strict=True):
        first.setdefault(k, pred)
    table = summarise(curves)
    title = f"Pre-training on sin(kx), then fine-tuning on V: final MSE ({int(cfg.n_seeds)} seeds, mean ± std)"
    write_table(table, run_dir, "pretrain_interference", title=title, md_df=_markdown_view(curves))
    curves.to_csv(run_dir / "pretrain_interference_curves.csv", index=False)
    _plot(cfg, grids, curves, first, run_dir / "pretrain_interference.png")
    return {"table": table, "curves": curves}


def _summary(out: dict[str, pd.DataFrame]) -> dict[str, object]:
    t = out["table"]
    return {
        "final_train_loss": {f"k={k:g}": v for k, v in t.final_train_loss.items()},
        "final_interp_loss": {f"k={k:g}": v for k, v in t.final_interp_loss.items()},
    }


@hydra.main(config_path=str(CONF_DIR), config_name="supervised/pretrain_interference", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run_study(cfg, run, _summary, lambda out: out["table"].to_string(), validate=validate)


if __name__ == "__main__":
    study_entry(main)
