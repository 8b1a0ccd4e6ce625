"""How well structural features transfer along a value-improvement path (Lyle et al. 2021, "On the Effect of Auxiliary
Tasks on Representation Dynamics", AISTATS 2021, arXiv:2102.13089, §5 and the value-improvement-path figure).

Policy iteration gives π_0, π_1, …, π_n. For each step k, features built from π_k — K EBFs of P^{π_k}, K RSBFs of
(I − γP^{π_k})^{-1}, or K Gaussian random features — are asked to explain the *next* value V^{π_{k+1}}, optionally
with the current value V^{π_k} as an extra column. The score is the fraction of ‖V‖² explained by the least-squares
fit, R² = ‖Π_Φ V‖² / ‖V‖² (uncentred: no intercept is added, so every feature set has exactly its K (+1) columns; the
constant function is the top EBF of every stochastic P, which is the EBFs' own business).
"""

from __future__ import annotations

import torch

from repdyn.theory.subspaces import eigen_basis_functions, orthonormal_basis, resolvent_singular_basis
from repdyn.theory.tabular_mdps import TabularMDP, policy_transition, policy_value

FEATURE_SETS = ("ebf", "rsbf", "random")


def explained_fraction(features: torch.Tensor, v: torch.Tensor) -> float:
    """R² = ‖Π_Φ v‖² / ‖v‖², Π_Φ the orthogonal projection on span(features) [S, k]."""
    Q = orthonormal_basis(features)
    return float((Q.T @ v).pow(2).sum() / v.pow(2).sum())


def _features(kind: str, P: torch.Tensor, gamma: float, k: int, gen: torch.Generator) -> torch.Tensor:
    if kind == "ebf":
        return eigen_basis_functions(P, k)
    if kind == "rsbf":
        return resolvent_singular_basis(P, gamma, k)
    return torch.randn(P.shape[0], k, generator=gen, dtype=P.dtype)


def path_transfer(
    mdp: TabularMDP, path: list[torch.Tensor], gamma: float, k: int, n_random: int, seed: int
) -> list[dict]:
    """Rows {step, feature_set, with_value, r2} for each step k → k + 1 of ``path``: R² of V^{π_{k+1}} by features
    of π_k. Random features average ``n_random`` seeded draws."""
    gen = torch.Generator().manual_seed(seed)
    values = [policy_value(mdp, pi, gamma) for pi in path]
    rows = []
    for step in range(len(path) - 1):
        P = policy_transition(mdp, path[step])
        target, current = values[step + 1], values[step][:, None]
        for kind in FEATURE_SETS:
            draws = n_random if kind == "random" else 1
            r2 = {False: 0.0, True: 0.0}
            for _ in range(draws):  # the same random draws with and without the value column
                F = _features(kind, P, gamma, k, gen)
                r2[False] += explained_fraction(F, target) / draws
                r2[True] += explained_fraction(torch.cat([F, current], 1), target) / draws
            rows += [{"step": step, "feature_set": kind, "with_value": wv, "r2": r2[wv]} for wv in (False, True)]
    return rows
