"""Auto MPG data and the de-correlated splits of Jansson 2025 §3.2, §3.4.1 (docs/references.md#jansson-2025).

``vega_datasets.local_data.cars()`` (406 cars); rows with a missing value in a used column are dropped (392 remain).
Features: displacement, cylinders, horsepower, weight, acceleration, model year (calendar year), origin (UCI coding:
1 USA, 2 Europe, 3 Japan); target: miles per gallon. Features and target are standardised with the statistics of the
whole cleaned dataset (our choice: the selection studies change the training set, and per-training-set statistics
would change the inputs a model sees between arms of a comparison).

Splits (§3.4.1): test = 1/3 of the data, a training *pool* = the other 2/3 from which a training set of 1/3 of the data
is drawn (randomly, or by selection); the remaining third is unused (it is where a validation split for early stopping
comes from). Train and test are disjoint and re-drawn per trial.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

FEATURES = ("Displacement", "Cylinders", "Horsepower", "Weight_in_lbs", "Acceleration", "Year", "Origin")
TARGET = "Miles_per_Gallon"
_ORIGIN = {"USA": 1.0, "Europe": 2.0, "Japan": 3.0}


@dataclass(frozen=True)
class Dataset:
    x: torch.Tensor  # [N, 7] standardised
    y: torch.Tensor  # [N] standardised mpg
    y_mean: float
    y_std: float


def load_auto_mpg(dtype: torch.dtype = torch.float32) -> Dataset:
    """The cleaned, standardised Auto MPG dataset (module docstring)."""
    from vega_datasets import local_data

    df = local_data.cars()
    df = df.dropna(subset=[*FEATURES, TARGET]).reset_index(drop=True)
    feats = df[list(FEATURES)].copy()
    feats["Year"] = df["Year"].dt.year.astype(float)
    feats["Origin"] = df["Origin"].map(_ORIGIN).astype(float)
    x = feats.to_numpy(dtype=np.float64)
    y = df[TARGET].to_numpy(dtype=np.float64)
    x = (x - x.mean(0)) / x.std(0)
    y_mean, y_std = float(y.mean()), float(y.std())
    return Dataset(torch.as_tensor(x, dtype=dtype), torch.as_tensor((y - y_mean) / y_std, dtype=dtype), y_mean, y_std)


@dataclass(frozen=True)
class Split:
    test: torch.Tensor  # indices into the dataset
    pool: torch.Tensor  # candidates for the training set (the other 2/3)
    train: torch.Tensor  # a random training set drawn from the pool (1/3 of the data)

    @property
    def unused(self) -> torch.Tensor:
        """Pool points not in ``train`` (validation candidates)."""
        return self.pool[~torch.isin(self.pool, self.train)]


def random_split(n: int, gen: torch.Generator) -> Split:
    """Test 1/3, pool 2/3, random training set of n // 3 from the pool (Jansson 2025 §3.4.1)."""
    if n < 6:
        raise ValueError(f"need at least 6 data points, got {n}")
    perm = torch.randperm(n, generator=gen)
    n_third = n // 3
    test, pool = perm[:n_third], perm[n_third:]
    train = pool[torch.randperm(len(pool), generator=gen)[:n_third]]
    return Split(test=test, pool=pool, train=train)
