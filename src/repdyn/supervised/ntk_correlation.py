"""Study B: do initial NTK metrics predict the final test loss? (Jansson 2025 §3.4-3.5, Table 4.1)

Three regimes, each repeated ``reps`` times with ``trials`` trainings per repetition:

* ``random``: every trial draws a new split and a new initialisation ("baseline" in Table 4.1);
* ``fixed_model``: one initialisation per repetition, a new split per trial (isolates the data's effect);
* ``fixed_data``: one split per repetition, a new initialisation per trial (isolates the model's effect).

Per repetition, the correlation (Pearson, or Spearman via config) across its trials between each initial metric —
NTK trace, kernel alignment, kernel test alignment (against the trial's test set), NTK entropy — and the final test
loss; the table gives mean ± std over repetitions (Table 4.1 layout: rows = metrics, columns = regimes), with the
final *training* loss as one more row (the thesis reports its correlation with the test loss to justify the
de-correlated splits, §3.4.1).

Run: ``python -m repdyn.supervised.ntk_correlation`` (config ``conf/supervised/ntk_correlation.yaml``). Writes
``ntk_correlation.csv/.md`` (summary), ``ntk_correlation_trials.csv`` (every trial), ``ntk_correlation.png``.
"""

from __future__ import annotations

from pathlib import Path

import hydra
import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig

from repdyn.paths import CONF_DIR
from repdyn.supervised.auto_mpg import load_auto_mpg, random_split
from repdyn.supervised.regressor import validate_train_cfg
from repdyn.supervised.trials import Arm, run_arms, validation_from
from repdyn.theory.report import (
    mean_std_str,
    run_study,
    study_entry,
    write_table,
)

REGIMES = ("random", "fixed_model", "fixed_data")
ROWS = {
    "init_trace": "Initial NTK trace",
    "init_kernel_alignment": "Initial kernel alignment",
    "init_kernel_test_alignment": "Initial kernel test alignment",
    "init_entropy": "Initial NTK entropy",
    "final_train_loss": "Final training loss",
}


def correlation(a: np.ndarray, b: np.ndarray, method: str) -> float:
    """Pearson or Spearman correlation; NaN when either side is constant."""
    if method == "spearman":
        a, b = pd.Series(a).rank().to_numpy(), pd.Series(b).rank().to_numpy()
    if np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def build_arms(cfg: DictConfig, n_data: int) -> list[Arm]:
    """Every trial of every regime, with its split and initialisation seeds (drawn from ``cfg.seed``)."""
    rng = np.random.default_rng(int(cfg.seed))
    arms = []
    for regime in cfg.regimes:
        for rep in range(int(cfg.reps)):
            fixed_split_seed, fixed_model_seed = (int(s) for s in rng.integers(0, 2**31 - 1, 2))
            for trial in range(int(cfg.trials)):
                split_seed, model_seed = (int(s) for s in rng.integers(0, 2**31 - 1, 2))
                if regime == "fixed_model":
                    model_seed = fixed_model_seed
                if regime == "fixed_data":
                    split_seed = fixed_split_seed
                gen = torch.Generator().manual_seed(split_seed)
                split = random_split(n_data, gen)
                val = None
                if cfg.train.early_stopping.enabled:
                    val = validation_from(split.unused, int(cfg.train.early_stopping.val_size), gen)
                arms.append(
                    Arm(split.train, split.test, model_seed, {"regime": regime, "rep": rep, "trial": trial}, val)
                )
    return arms


def summarise(trials: pd.DataFrame, method: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-repetition correlations with the final test loss, and their mean ± std per regime (Table 4.1)."""
    per_rep = []
    for (regime, rep), g in trials.groupby(["regime", "rep"], sort=False):
        row = {"regime": regime, "rep": rep}
        for col in ROWS:
            row[col] = correlation(g[col].to_numpy(), g["final_test_loss"].to_numpy(), method)
        per_rep.append(row)
    per_rep = pd.DataFrame(per_rep)
    regimes = list(dict.fromkeys(per_rep["regime"]))
    table = pd.DataFrame(index=pd.Index(list(ROWS.values()), name=f"{method} correlation with final test loss"))
    for regime in regimes:
        vals = per_rep[per_rep.regime == regime]
        table[regime] = [mean_std_str(vals[c].to_numpy()) for c in ROWS]
        table[f"{regime}_mean"] = [float(np.nanmean(vals[c])) for c in ROWS]
        table[f"{regime}_std"] = [float(np.nanstd(vals[c], ddof=1)) if len(vals) > 1 else float("nan") for c in ROWS]
    return table, per_rep


def _plot(trials: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [c for c in ROWS if c != "final_train_loss"]
    regimes = list(dict.fromkeys(trials["regime"]))
    fig, axes = plt.subplots(len(regimes), len(metrics), figsize=(3.6 * len(metrics), 3 * len(regimes)), squeeze=False)
    for i, regime in enumerate(regimes):
        sub = trials[trials.regime == regime]
        for j, m in enumerate(metrics):
            ax = axes[i][j]
            for _rep, g in sub.groupby("rep"):
                ax.scatter(g[m], g["final_test_loss"], s=6, alpha=0.6)
            ax.set_title(f"{regime}: {ROWS[m]}", fontsize=8)
            ax.set_xlabel(m, fontsize=7)
            if j == 0:
                ax.set_ylabel("final test MSE")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def validate(cfg: DictConfig) -> None:
    """Check the study's settings; raises ``ValueError`` naming the key."""
    bad = [r for r in cfg.regimes if r not in REGIMES]
    if bad or not cfg.regimes:
        raise ValueError(f"regimes must be a non-empty subset of {list(REGIMES)}, got {list(cfg.regimes)}")
    if cfg.correlation not in ("pearson", "spearman"):
        raise ValueError(f"correlation must be 'pearson' or 'spearman', got {cfg.correlation!r}")
    if int(cfg.reps) < 1 or int(cfg.trials) < 3:
        raise ValueError(f"need reps >= 1 and trials >= 3, got {cfg.reps}, {cfg.trials}")
    validate_train_cfg(cfg.train)


def run(cfg: DictConfig, run_dir: Path) -> dict[str, pd.DataFrame]:
    data = load_auto_mpg()
    trials = run_arms(build_arms(cfg, len(data.y)), data, cfg.model, cfg.train, int(cfg.seed))
    table, per_rep = summarise(trials, str(cfg.correlation))
    view = table[[c for c in table.columns if not c.endswith(("_mean", "_std"))]]
    title = f"{cfg.correlation} correlation of initial NTK metrics with final test loss ({cfg.reps} x {cfg.trials})"
    write_table(table, run_dir, "ntk_correlation", title=title, md_df=view)
    trials.to_csv(run_dir / "ntk_correlation_trials.csv", index=False)
    per_rep.to_csv(run_dir / "ntk_correlation_per_rep.csv", index=False)
    _plot(trials, run_dir / "ntk_correlation.png")
    return {"table": table, "trials": trials, "per_rep": per_rep}


def _summary(out: dict[str, pd.DataFrame]) -> dict[str, float]:
    t = out["trials"]
    return {
        "n_trials": len(t),
        "mean_final_test_loss": float(t.final_test_loss.mean()),
        "mean_final_train_loss": float(t.final_train_loss.mean()),
    }


def _show(out: dict[str, pd.DataFrame]) -> str:
    return out["table"][[c for c in out["table"].columns if not c.endswith(("_mean", "_std"))]].to_string()


@hydra.main(config_path=str(CONF_DIR), config_name="supervised/ntk_correlation", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run_study(cfg, run, _summary, _show, validate=validate)


if __name__ == "__main__":
    study_entry(main)
