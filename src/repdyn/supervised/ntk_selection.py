"""Study C: select the training set to raise an NTK metric, then train (Jansson 2025 §3.6, Tables
4.2-4.6).

Per repetition: a random split (test 1/3, pool 2/3), a model θ and a second, independent initialisation θ'. The
baseline is a random training set A_0 of 1/3 of the data from the pool, trained from θ. Each selection method starts
from A_0 (so the comparison is paired) and picks A_sel ⊂ pool with θ's empirical NTK:

* ``swap:<metric>`` for each metric in ``selection.swap_metrics`` (NTK trace, kernel alignment, kernel test alignment,
  NTK entropy): ``selection.n_tries`` random swaps, a swap kept only when the metric rises (§3.6.2);
* ``top_n:trace``: the n pool points with the largest K(x, x), the exact trace maximiser (§3.6.1).

Kernel test alignment needs a reference set B while selecting. ``selection.test_alignment_ref: heldout`` (default)
uses the pool points outside the candidate set, so selection never sees the test labels; ``test`` uses the test set,
which leaks test labels into the selection (the thesis does not say which it used). The reported *initial* kernel test
alignment is always measured against the test set.

Arms trained per method: baseline (A_0, θ), selected (A_sel, θ), selected + switched model (A_sel, θ'). Initial metrics
are those of the arm's own (data, initialisation). The tables follow the thesis layout (rows = metrics, columns =
baseline / selected / selected + switched model) with mean ± std over repetitions, plus the paired difference to the
baseline in standard errors, Δ/SE(Δ) with SE = std(Δ)/√reps, so a reader sees whether an effect is real.

Run: ``python -m repdyn.supervised.ntk_selection`` (config ``conf/supervised/ntk_selection.yaml``). Writes
``ntk_selection_<method>.csv/.md`` per method, ``ntk_selection.csv/.md`` (test loss of every method at a glance),
``ntk_selection_arms.csv`` (every trained arm), ``ntk_selection_search.csv`` (metric along each swap search) and
``ntk_selection.png``.
"""

from __future__ import annotations

import math
from pathlib import Path

import hydra
import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig

from repdyn.paths import CONF_DIR
from repdyn.supervised.auto_mpg import Dataset, load_auto_mpg, random_split
from repdyn.supervised.regressor import validate_train_cfg
from repdyn.supervised.selection import METRICS, subset_metric, swap_search, top_n_by_diag
from repdyn.supervised.trials import Arm, gram_for, run_arms, validation_from
from repdyn.theory.report import (
    mean_std_str,
    run_study,
    study_entry,
    write_table,
)

ROWS = {
    "final_test_loss": "Final test loss",
    "final_train_loss": "Final training loss",
    "init_trace": "Initial NTK trace",
    "init_kernel_alignment": "Initial kernel alignment",
    "init_kernel_test_alignment": "Initial kernel test alignment",
    "init_entropy": "Initial NTK entropy",
}
ARMS = ("baseline", "selected", "switched")
ARM_TITLES = {"baseline": "Baseline", "selected": "Selected data", "switched": "Selected data and switched model"}


def validate(cfg: DictConfig) -> None:
    bad = [m for m in cfg.selection.swap_metrics if m not in METRICS]
    if bad:
        raise ValueError(f"selection.swap_metrics must be a subset of {list(METRICS)}, got {bad}")
    if not cfg.selection.swap_metrics and not cfg.selection.top_n_trace:
        raise ValueError("select at least one method: selection.swap_metrics or selection.top_n_trace")
    if cfg.selection.test_alignment_ref not in ("heldout", "test"):
        raise ValueError(
            f"selection.test_alignment_ref must be 'heldout' or 'test', got {cfg.selection.test_alignment_ref!r}"
        )
    if int(cfg.reps) < 2:
        raise ValueError(f"reps must be >= 2 (standard errors need two repetitions), got {cfg.reps}")
    if int(cfg.selection.n_tries) < 0:
        raise ValueError(f"selection.n_tries must be >= 0, got {cfg.selection.n_tries}")
    validate_train_cfg(cfg.train)


def methods_of(cfg: DictConfig) -> list[str]:
    return [f"swap:{m}" for m in cfg.selection.swap_metrics] + (["top_n:trace"] if cfg.selection.top_n_trace else [])


def select(
    method: str, K: torch.Tensor, data: Dataset, init: torch.Tensor, pool: torch.Tensor, test: torch.Tensor,
    cfg: DictConfig, gen: torch.Generator,
) -> tuple[torch.Tensor, list[float]]:  # fmt: skip
    """The training set a method picks (and the search trajectory of the metric it raises)."""
    kind, metric = method.split(":")
    if kind == "top_n":
        idx = top_n_by_diag(torch.diagonal(K), pool, init.numel())
        return idx, [subset_metric(K, data.y, init, "trace", None), subset_metric(K, data.y, idx, "trace", None)]

    def fn(idx: torch.Tensor) -> float:
        ref = None
        if metric == "kernel_test_alignment":
            ref = test if cfg.selection.test_alignment_ref == "test" else pool[~torch.isin(pool, idx)]
        return subset_metric(K, data.y, idx, metric, ref)

    return swap_search(fn, init, pool, int(cfg.selection.n_tries), gen)


def build_arms(cfg: DictConfig, data: Dataset, cache: dict) -> tuple[list[Arm], pd.DataFrame]:
    rng = np.random.default_rng(int(cfg.seed))
    arms, searches = [], []
    es = cfg.train.early_stopping
    for rep in range(int(cfg.reps)):
        split_seed, model_seed, switched_seed, search_seed = (int(s) for s in rng.integers(0, 2**31 - 1, 4))
        gen = torch.Generator().manual_seed(split_seed)
        split = random_split(len(data.y), gen)
        K = gram_for(model_seed, data, cfg.model, cache)

        def val_for(
            train: torch.Tensor, pool: torch.Tensor = split.pool, vseed: int = split_seed + 1
        ) -> torch.Tensor | None:
            if not es.enabled:
                return None
            unused = pool[~torch.isin(pool, train)]
            return validation_from(unused, int(es.val_size), torch.Generator().manual_seed(vseed))

        base = {"rep": rep}
        arms.append(
            Arm(split.train, split.test, model_seed, {**base, "method": "-", "arm": "baseline"}, val_for(split.train))
        )
        for method in methods_of(cfg):
            idx, values = select(
                method, K, data, split.train, split.pool, split.test, cfg, torch.Generator().manual_seed(search_seed)
            )
            searches.append(
                {
                    "rep": rep,
                    "method": method,
                    "start": values[0],
                    "end": values[-1],
                    "n_accepted": int(np.sum(np.diff(values) > 0)),
                    "overlap_with_baseline": int(torch.isin(idx, split.train).sum()),
                }
            )
            labels = {**base, "method": method}
            arms.append(Arm(idx, split.test, model_seed, {**labels, "arm": "selected"}, val_for(idx)))
            arms.append(Arm(idx, split.test, switched_seed, {**labels, "arm": "switched"}, val_for(idx)))
    return arms, pd.DataFrame(searches)


def method_table(arms: pd.DataFrame, method: str) -> pd.DataFrame:
    """Thesis layout for one method: rows = metrics; mean ± std per arm; paired Δ to baseline in standard errors."""
    base = arms[arms.arm == "baseline"].set_index("rep")
    out = pd.DataFrame(index=pd.Index(list(ROWS.values()), name=method))
    for arm in ARMS:
        sub = base if arm == "baseline" else arms[(arms.method == method) & (arms.arm == arm)].set_index("rep")
        out[ARM_TITLES[arm]] = [mean_std_str(sub[c].to_numpy()) for c in ROWS]
        out[f"{arm}_mean"] = [float(sub[c].mean()) for c in ROWS]
        out[f"{arm}_std"] = [float(sub[c].std(ddof=1)) for c in ROWS]
        if arm != "baseline":
            d = (sub[list(ROWS)] - base.loc[sub.index, list(ROWS)]).astype(float)
            se = d.std(ddof=1) / math.sqrt(len(d))
            z = d.mean() / se.replace(0.0, np.nan)
            out[f"Δ {arm} (SE)"] = [f"{d[c].mean():+.3g} ({z[c]:+.1f} SE)" for c in ROWS]
            out[f"{arm}_diff_mean"] = [float(d[c].mean()) for c in ROWS]
            out[f"{arm}_diff_se"] = [float(se[c]) for c in ROWS]
            out[f"{arm}_diff_z"] = [float(z[c]) for c in ROWS]
    return out


def _markdown_view(t: pd.DataFrame) -> pd.DataFrame:
    return t[[c for c in t.columns if not c.endswith(("_mean", "_std", "_se", "_z"))]]


def _plot(arms: pd.DataFrame, methods: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base = arms[arms.arm == "baseline"].set_index("rep")["final_test_loss"]
    fig, ax = plt.subplots(figsize=(1.8 * len(methods) + 2, 4))
    data, labels = [], []
    for m in methods:
        for arm in ("selected", "switched"):
            sub = arms[(arms.method == m) & (arms.arm == arm)].set_index("rep")["final_test_loss"]
            data.append((sub - base.loc[sub.index]).to_numpy())
            labels.append(f"{m}\n{arm}")
    ax.boxplot(data, tick_labels=labels)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_ylabel("test MSE − baseline test MSE (paired)")
    ax.tick_params(axis="x", labelsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(cfg: DictConfig, run_dir: Path) -> dict[str, pd.DataFrame]:
    data = load_auto_mpg()
    cache: dict = {}
    arm_list, searches = build_arms(cfg, data, cache)
    arms = run_arms(arm_list, data, cfg.model, cfg.train, int(cfg.seed), cache)
    arms.to_csv(run_dir / "ntk_selection_arms.csv", index=False)
    searches.to_csv(run_dir / "ntk_selection_search.csv", index=False)
    out: dict[str, pd.DataFrame] = {"arms": arms, "search": searches}
    overview = []
    for method in methods_of(cfg):
        t = method_table(arms, method)
        out[method] = t
        name = "ntk_selection_" + method.replace(":", "_")
        title = f"Training set selected by {method} ({cfg.reps} repetitions)"
        write_table(t, run_dir, name, title=title, md_df=_markdown_view(t))
        row = t.loc["Final test loss"]
        overview.append(
            {
                "method": method,
                "baseline": row["Baseline"],
                "selected": row["Selected data"],
                "Δ selected (SE)": row["Δ selected (SE)"],
                "switched": row["Selected data and switched model"],
                "Δ switched (SE)": row["Δ switched (SE)"],
            }
        )
    overview = pd.DataFrame(overview).set_index("method")
    out["overview"] = overview
    write_table(overview, run_dir, "ntk_selection", title="Final test loss per selection method")
    _plot(arms, methods_of(cfg), run_dir / "ntk_selection.png")
    return out


@hydra.main(config_path=str(CONF_DIR), config_name="supervised/ntk_selection", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run_study(
        cfg,
        run,
        lambda out: {"overview": out["overview"].reset_index().to_dict(orient="records")},
        lambda out: out["overview"].to_string(),
        validate=validate,
    )


if __name__ == "__main__":
    study_entry(main)
