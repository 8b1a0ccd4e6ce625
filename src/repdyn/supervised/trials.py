"""One "trial" = (training subset, model initialisation) → initial NTK metrics, then training → final losses.

Both studies describe their trials as :class:`Arm` records and hand them to :func:`run_arms`, which computes one NTK
Gram matrix per distinct initialisation (over the whole dataset, :func:`repdyn.metrics.ntk.ntk_gram`), the initial
metrics of every arm from it (kernel test alignment against the arm's test set, Jansson 2025 eq. 2.12), and trains all
arms at once (:func:`repdyn.supervised.regressor.train_regressors`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import torch
from omegaconf import DictConfig

from repdyn.metrics.ntk import ntk_gram
from repdyn.progress import progress_bar
from repdyn.supervised.auto_mpg import Dataset
from repdyn.supervised.regressor import make_regressor, train_regressors
from repdyn.supervised.selection import all_subset_metrics


@dataclass
class Arm:
    train: torch.Tensor  # dataset indices
    test: torch.Tensor
    model_seed: int
    labels: dict = field(default_factory=dict)
    val: torch.Tensor | None = None


def gram_for(model_seed: int, data: Dataset, mcfg: DictConfig, cache: dict[int, torch.Tensor]) -> torch.Tensor:
    """The eNTK Gram matrix of initialisation ``model_seed`` over the whole dataset (cached)."""
    if model_seed not in cache:
        cache[model_seed] = ntk_gram(make_regressor(data.x.shape[1], mcfg, model_seed), data.x)
    return cache[model_seed]


def run_arms(
    arms: list[Arm], data: Dataset, mcfg: DictConfig, tcfg: DictConfig, seed: int, cache: dict | None = None
) -> pd.DataFrame:
    """Initial metrics and final train/test MSE of every arm; one row per arm (its labels first)."""
    if not arms:
        raise ValueError("run_arms needs at least one arm")
    if len({a.train.numel() for a in arms}) != 1 or len({a.test.numel() for a in arms}) != 1:
        raise ValueError("every arm must have the same training-set size and test-set size (they train as one batch)")
    cache = {} if cache is None else cache
    rows = []
    for arm in progress_bar(arms, desc="initial NTK metrics", leave=False, mininterval=5):
        K = gram_for(arm.model_seed, data, mcfg, cache)
        rows.append(
            {**arm.labels, **{f"init_{k}": v for k, v in all_subset_metrics(K, data.y, arm.train, arm.test).items()}}
        )
    models = [make_regressor(data.x.shape[1], mcfg, a.model_seed) for a in arms]
    x_tr = torch.stack([data.x[a.train] for a in arms])
    y_tr = torch.stack([data.y[a.train] for a in arms])
    x_te = torch.stack([data.x[a.test] for a in arms])
    y_te = torch.stack([data.y[a.test] for a in arms])
    x_val = y_val = None
    if tcfg.early_stopping.enabled:
        if any(a.val is None for a in arms):
            raise ValueError("early stopping needs a validation set for every arm")
        x_val = torch.stack([data.x[a.val] for a in arms])
        y_val = torch.stack([data.y[a.val] for a in arms])
    res = train_regressors(models, x_tr, y_tr, x_te, y_te, tcfg, x_val=x_val, y_val=y_val, seed=seed)
    for i, row in enumerate(rows):
        row["final_train_loss"] = float(res.train_loss[i])
        row["final_test_loss"] = float(res.test_loss[i])
        row["stop_step"] = int(res.stop_step[i])
    return pd.DataFrame(rows)


def validation_from(unused: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    """A random validation split of ``size`` points from the unused third."""
    if size > unused.numel():
        raise ValueError(f"early_stopping.val_size={size} exceeds the {unused.numel()} unused points")
    return unused[torch.randperm(unused.numel(), generator=gen)[:size]]
