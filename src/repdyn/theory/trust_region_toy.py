"""PPO trust-region toy with a collapsed (1-D) representation (Moalla et al. 2024 §3.2.1, App. C, Table 1,
Fig. 5).

Two states x, y with frozen 1-D features φ(x) ~ N(0, 1) and φ(y) = α φ(x) (the penultimate layer of a network
whose representation collapsed to one live unit), a linear 2-logit softmax head θ = [θ1, θ2],
π_θ(a_i|s) ∝ exp(θ_i φ(s)), and one PPO batch {(x, a1), (y, a1)} with A(x, a1) = A(y, a1) = 1. PPO-Clip (ε 0.1) is
optimised with SGD (lr 1.5), minibatch 1, 10 epochs, so 20 gradient steps alternate x, y, all against the same
π_old. Because the features are colinear, a step on one state moves the other: with α = 3 the probabilities overshoot
the clip limit π_old(1 + ε) ("overshoot"), with α = −1 a step on each state pushes the other one down, below its
initial value ("interfere").

The loss is the agent's own :func:`repdyn.agents.losses.ppo_clip_objective`. The tests check this autograd path
against the closed-form update of App. C (θ1 += δ_s, θ2 −= δ_s with δ_s = η A/π_old(a1|s) · φ(s) π(a1|s) π(a2|s),
zero once the ratio left the clip range in the advantage's direction).

Run: ``python -m repdyn.theory.trust_region_toy`` (Hydra; config ``conf/theory/trust_region_toy.yaml``). Writes
``trust_region_toy.csv/.md`` (every step), ``trust_region_toy_summary.csv/.md``, ``trust_region_toy_draws.csv/.md``,
``trust_region_toy.png`` (Fig. 5), ``history.jsonl``, ``config.yaml`` and ``summary.json`` into the run dir.

The initial head θ0 is drawn like PyTorch's default ``nn.Linear(1, 2, bias=False)`` init, U(−1, 1)² (Table 1 does
not give it); ``phi_x`` / ``theta_init`` fix the illustrated run instead. Because the outcome of one run depends on
the draw (a large |φ(x)| with lr 1.5 moves a state past its own clip limit in a single step), the study also reports
the fractions over ``n_draws`` draws (``trust_region_toy_draws``), with an α = 0 control that has no coupling.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import hydra
import pandas as pd
import torch
from omegaconf import DictConfig
from torch import nn

from repdyn.agents.losses import ppo_clip_objective
from repdyn.loggers.history import History
from repdyn.paths import CONF_DIR, HISTORY_FILE
from repdyn.theory.report import run_study, study_entry, write_table


@dataclass(frozen=True)
class ToyResult:
    """Trajectory of one toy run: ``steps`` rows (step 0 = before any update) and the quantities they derive from."""

    alpha: float
    phi_x: float
    theta0: torch.Tensor
    old_probs: torch.Tensor  # π_old(a1|x), π_old(a1|y)
    table: pd.DataFrame


def _check_toy_args(order: str, epochs: int, clip_eps: float) -> None:
    if order not in ("xy", "yx"):
        raise ValueError(f"order must be 'xy' or 'yx', got {order!r}")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if not (0 < clip_eps < 1):
        raise ValueError(f"clip_eps must be in (0, 1), got {clip_eps}")


def _linear_head(theta0: torch.Tensor) -> nn.Linear:
    """The policy head: logits = θ · φ(s) for action a1 (θ1) and a2 (θ2), no bias, float64."""
    head = nn.Linear(1, 2, bias=False).double()
    with torch.no_grad():
        head.weight.copy_(theta0[:, None])
    return head


def _toy_row(
    head: nn.Linear, phi: torch.Tensor, old_probs: torch.Tensor, step: int, updated: str, grad_zero: bool | None
) -> dict:
    """π(a1|x), π(a1|y), their ratios to π_old and θ after ``step`` gradient steps."""
    with torch.no_grad():
        p = torch.softmax(head(phi), dim=-1)[:, 0]
    r = p / old_probs
    return {
        "step": step,
        "updated_state": updated,
        "grad_zero": grad_zero,
        "p_a1_x": float(p[0]),
        "p_a1_y": float(p[1]),
        "ratio_x": float(r[0]),
        "ratio_y": float(r[1]),
        "theta1": float(head.weight.detach()[0, 0]),
        "theta2": float(head.weight.detach()[1, 0]),
    }


def _clip_step(
    head: nn.Linear,
    opt: torch.optim.Optimizer,
    phi_s: torch.Tensor,
    old_log_prob_s: torch.Tensor,
    adv: torch.Tensor,
    clip_eps: float,
) -> bool:
    """One SGD step on −PPO-Clip for a single state; returns whether the clip zeroed the gradient."""
    log_prob = torch.log_softmax(head(phi_s), dim=-1)[:, 0]
    objective, _ = ppo_clip_objective(log_prob, old_log_prob_s, adv.expand(1), clip_eps)
    loss = -objective.mean()
    opt.zero_grad()
    loss.backward()
    grad_zero = bool(head.weight.grad.abs().max() == 0)
    opt.step()
    return grad_zero


def simulate(
    alpha: float,
    phi_x: float,
    theta0: Sequence[float] | torch.Tensor,
    *,
    clip_eps: float = 0.1,
    lr: float = 1.5,
    epochs: int = 10,
    advantage: float = 1.0,
    order: str = "xy",
) -> ToyResult:
    """Run the toy: ``epochs`` passes over the minibatches (size 1) in ``order``, SGD on −PPO-Clip, π_old frozen.

    Every gradient step goes through ``nn.Linear`` + ``torch.optim.SGD`` and the shared PPO loss, as in the agent.
    """
    _check_toy_args(order, epochs, clip_eps)
    theta0 = torch.as_tensor(theta0, dtype=torch.float64).reshape(2)
    head = _linear_head(theta0)
    opt = torch.optim.SGD(head.parameters(), lr=lr)
    phi = torch.tensor([[phi_x], [alpha * phi_x]], dtype=torch.float64)  # rows: x, y
    with torch.no_grad():
        old_log_prob = torch.log_softmax(head(phi), dim=-1)[:, 0]  # log π_old(a1|s), frozen for the whole phase
    old_probs = old_log_prob.exp()
    adv = torch.tensor(advantage, dtype=torch.float64)
    rows = [_toy_row(head, phi, old_probs, 0, "-", None)]
    idx = {"x": 0, "y": 1}
    step = 0
    for _ in range(epochs):
        for s in order:
            i = idx[s]
            grad_zero = _clip_step(head, opt, phi[i : i + 1], old_log_prob[i : i + 1], adv, clip_eps)
            step += 1
            rows.append(_toy_row(head, phi, old_probs, step, s, grad_zero))
    table = pd.DataFrame(rows)
    table.insert(0, "alpha", alpha)
    for j, state in enumerate(("x", "y")):  # the clip range of π(a1|s): π_old(a1|s) · (1 ± ε)
        table[f"clip_low_{state}"] = float(old_probs[j]) * (1 - clip_eps)
        table[f"clip_high_{state}"] = float(old_probs[j]) * (1 + clip_eps)
    return ToyResult(alpha=alpha, phi_x=phi_x, theta0=theta0, old_probs=old_probs, table=table)


def summarise(result: ToyResult, case: str, clip_eps: float) -> dict:
    """Per-case summary: final and extreme ratios, and whether the trust region [1 − ε, 1 + ε] was left or inverted."""
    t = result.table
    ratios = t[["ratio_x", "ratio_y"]].to_numpy()
    return {
        "case": case,
        "alpha": result.alpha,
        "phi_x": result.phi_x,
        "p_old_a1_x": float(result.old_probs[0]),
        "p_old_a1_y": float(result.old_probs[1]),
        "final_ratio_x": float(t["ratio_x"].iloc[-1]),
        "final_ratio_y": float(t["ratio_y"].iloc[-1]),
        "max_ratio": float(ratios.max()),
        "min_ratio": float(ratios.min()),
        "above_1+eps": bool(ratios[-1].max() > 1 + clip_eps),
        "below_initial": bool(ratios[-1].min() < 1.0),
        "zero_grad_steps": int(t["grad_zero"].iloc[1:].sum()),
    }


def plot(results: dict[str, ToyResult], path: Path) -> None:
    """Fig. 5 of Moalla et al. 2024: π(a1|x), π(a1|y) over the steps with each state's clip limits π_old(1 ± ε)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 4), squeeze=False)
    for ax, (case, res) in zip(axes[0], results.items(), strict=True):
        t = res.table
        for s, color in (("x", "tab:blue"), ("y", "tab:orange")):
            ax.plot(t["step"], t[f"p_a1_{s}"], "-o", ms=3, color=color, label=f"π(a1|{s})")
            ax.axhline(t[f"clip_high_{s}"].iloc[0], color=color, ls="--", lw=1, label=f"π_old(a1|{s})(1±ε)")
            ax.axhline(t[f"clip_low_{s}"].iloc[0], color=color, ls="--", lw=1)
        ax.set_title(f"{case}: α = {res.alpha:g}, φ(x) = {res.phi_x:.3g}")
        ax.set_xlabel("gradient step (alternating x, y)")
        ax.set_ylabel("probability of a1")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def draw_setting(gen: torch.Generator) -> tuple[float, torch.Tensor]:
    """One draw of (φ(x), θ0): φ(x) ~ N(0, 1) (Table 1) and θ0 ~ U(−1, 1)², which is PyTorch's default init of
    ``nn.Linear(1, 2, bias=False)`` (kaiming-uniform with a = √5 gives bound 1/√fan_in = 1)."""
    phi_x = float(torch.randn((), generator=gen, dtype=torch.float64))
    theta0 = torch.rand(2, generator=gen, dtype=torch.float64) * 2 - 1
    return phi_x, theta0


def simulate_many(
    alpha: float,
    phi_x: torch.Tensor,
    theta0: torch.Tensor,
    *,
    clip_eps: float = 0.1,
    lr: float = 1.5,
    epochs: int = 10,
    advantage: float = 1.0,
    order: str = "xy",
) -> torch.Tensor:
    """:func:`simulate` for a batch of independent settings at once: ``phi_x`` [B], ``theta0`` [B, 2] → ratios
    [2·epochs + 1, B, 2] (step, draw, state x/y). The loss sums the per-draw PPO-Clip losses, so each draw's θ gets
    exactly its own SGD gradient; same loss function as the agent."""
    if order not in ("xy", "yx"):
        raise ValueError(f"order must be 'xy' or 'yx', got {order!r}")
    theta = theta0.detach().clone().to(torch.float64).requires_grad_(True)
    phi = torch.stack([phi_x, alpha * phi_x], dim=1).to(torch.float64)  # [B, 2 states]
    opt = torch.optim.SGD([theta], lr=lr)

    def log_p_a1() -> torch.Tensor:  # [B, 2 states]
        return torch.log_softmax(phi[:, :, None] * theta[:, None, :], dim=-1)[..., 0]

    old = log_p_a1().detach()
    adv = torch.full_like(phi_x, advantage, dtype=torch.float64)
    ratios = [torch.ones_like(old)]
    for _ in range(epochs):
        for s in order:
            i = 0 if s == "x" else 1
            objective, _ = ppo_clip_objective(log_p_a1()[:, i], old[:, i], adv, clip_eps)
            opt.zero_grad()
            (-objective.sum()).backward()
            opt.step()
            with torch.no_grad():
                ratios.append((log_p_a1() - old).exp())
    return torch.stack(ratios)


def draws_table(cfg: DictConfig) -> pd.DataFrame:
    """How generic the effect is: over ``cfg.n_draws`` draws of (φ(x), θ0), the fraction of runs whose final ratios
    leave the trust region (some state above 1 + ε; some state below 1 − ε; some state below its initial
    probability)."""
    gen = torch.Generator().manual_seed(int(cfg.seed) + 1_000_003)
    draws = [draw_setting(gen) for _ in range(int(cfg.n_draws))]
    phi_x = torch.tensor([d[0] for d in draws], dtype=torch.float64)
    theta0 = torch.stack([d[1] for d in draws])
    eps = float(cfg.clip_eps)
    rows = []
    # α = 0 is the control: y's feature is 0, so nothing couples the states and any exit from the trust region is the
    # own-step overshoot of a large learning rate, not interference.
    cases = {**{str(k): float(v) for k, v in cfg.cases.items()}, "control": 0.0}
    for case, alpha in cases.items():
        r = simulate_many(float(alpha), phi_x, theta0, clip_eps=eps, lr=cfg.lr, epochs=cfg.epochs, order=cfg.order)
        final_max, final_min = r[-1].max(1).values, r[-1].min(1).values
        rows.append(
            {
                "case": str(case),
                "alpha": float(alpha),
                "n_draws": len(draws),
                "frac_above_1+eps": float((final_max > 1 + eps).double().mean()),
                "frac_below_1-eps": float((final_min < 1 - eps).double().mean()),
                "frac_below_initial": float((final_min < 1).double().mean()),
                "median_final_max_ratio": float(final_max.median()),
                "median_final_min_ratio": float(final_min.median()),
                "median_peak_ratio": float(r.amax(dim=(0, 2)).median()),
            }
        )
    return pd.DataFrame(rows).set_index("case")


def run(cfg: DictConfig, run_dir: Path) -> dict[str, pd.DataFrame]:
    """Run every case of ``cfg.cases`` and write the tables, figure and history into ``run_dir``."""
    if not cfg.cases:
        raise ValueError("cases must name at least one {case: alpha} pair")
    torch.set_num_threads(int(cfg.num_threads))
    phi_x, theta0 = draw_setting(torch.Generator().manual_seed(int(cfg.seed)))
    if cfg.phi_x is not None:
        phi_x = float(cfg.phi_x)
    if cfg.theta_init is not None:
        theta0 = torch.tensor(list(cfg.theta_init), dtype=torch.float64)
        if theta0.numel() != 2:
            raise ValueError(f"theta_init must have 2 entries, got {list(cfg.theta_init)}")
    results = {
        str(case): simulate(
            float(alpha), phi_x, theta0, clip_eps=cfg.clip_eps, lr=cfg.lr, epochs=cfg.epochs, order=cfg.order
        )
        for case, alpha in cfg.cases.items()
    }
    steps = pd.concat([r.table.assign(case=c) for c, r in results.items()], ignore_index=True)
    steps = steps[["case", *[c for c in steps.columns if c != "case"]]]
    summary = pd.DataFrame([summarise(r, c, cfg.clip_eps) for c, r in results.items()]).set_index("case")
    write_table(steps, run_dir, "trust_region_toy", title="PPO trust-region toy: every gradient step", index=False)
    write_table(summary, run_dir, "trust_region_toy_summary", title="PPO trust-region toy: summary per case")
    out = {"steps": steps, "summary": summary}
    if int(cfg.n_draws) > 0:
        out["draws"] = draws_table(cfg)
        write_table(out["draws"], run_dir, "trust_region_toy_draws", title=f"Over {cfg.n_draws} draws of (φ(x), θ0)")
    plot(results, run_dir / "trust_region_toy.png")
    hist = History(run_dir / HISTORY_FILE)
    n_steps = len(next(iter(results.values())).table)
    for k in range(n_steps):
        rec = {}
        for case, r in results.items():
            row = r.table.iloc[k]
            for key in ("p_a1_x", "p_a1_y", "ratio_x", "ratio_y"):
                rec[f"toy/{case}/{key}"] = float(row[key])
        hist.append(k, rec)
    hist.close()
    return out


def _summary(out: dict[str, pd.DataFrame]) -> dict[str, object]:
    return {f"{c}/{k}": v for c, row in out["summary"].iterrows() for k, v in row.items()}


@hydra.main(config_path=str(CONF_DIR), config_name="theory/trust_region_toy", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run_study(cfg, run, _summary, lambda out: out["summary"].to_string())


if __name__ == "__main__":
    study_entry(main)
