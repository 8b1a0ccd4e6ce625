"""NTK metrics of training subsets and the selection rules of Jansson 2025 §3.6 (docs/references.md#jansson-2025).

All metrics of a subset A come from ONE empirical-NTK Gram matrix K over the whole dataset (computed once per model with
:func:`repdyn.metrics.ntk.ntk_gram`): K(A, A) and K(B, A) are sub-matrices, so a swap search costs no network
evaluations. The formulas are the metrics package's (docs/metrics.md#empirical-ntk): ``trace`` = Tr K(A, A)/|A|,
``entropy`` (von Neumann entropy of the normalised eigenvalues), ``kernel_alignment`` = yᵀKy/(‖K‖_F‖y‖²),
``kernel_test_alignment`` = y_Bᵀ K(B, A) y_A/(‖K(B, A)‖_F ‖y_A‖ ‖y_B‖) for a reference set B.

* :func:`swap_search` (§3.6.2): from a random set, try ``n_tries`` swaps of a random member for a random outside
  candidate and keep a swap only when the metric rises — the metric never decreases along the search.
* :func:`top_n_by_diag` (§3.6.1): the trace is a sum of independent per-point terms K(x, x), so the n points with the
  largest K(x, x) maximise it exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from repdyn.metrics.ntk import kernel_test_alignment, ntk_metrics

METRICS = ("trace", "entropy", "kernel_alignment", "kernel_test_alignment")


def subset_metric(K: torch.Tensor, y: torch.Tensor, idx: torch.Tensor, name: str, ref: torch.Tensor | None) -> float:
    """One NTK metric of the subset ``idx`` (``ref`` = the reference set B, for ``kernel_test_alignment`` only)."""
    if name not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {name!r}")
    if name == "kernel_test_alignment":
        if ref is None or ref.numel() == 0:
            raise ValueError("kernel_test_alignment needs a non-empty reference set")
        return kernel_test_alignment(K[ref][:, idx], y[idx], y[ref])
    out = ntk_metrics(K[idx][:, idx], y[idx] if name == "kernel_alignment" else None)
    return float(out[name])


def all_subset_metrics(K: torch.Tensor, y: torch.Tensor, idx: torch.Tensor, ref: torch.Tensor) -> dict[str, float]:
    """Every metric of :data:`METRICS` for ``idx`` (kernel test alignment against ``ref``)."""
    out = ntk_metrics(K[idx][:, idx], y[idx])
    out["kernel_test_alignment"] = kernel_test_alignment(K[ref][:, idx], y[idx], y[ref])
    return {k: float(out[k]) for k in METRICS}


def swap_search(
    metric_fn: Callable[[torch.Tensor], float],
    init: torch.Tensor,
    candidates: torch.Tensor,
    n_tries: int,
    gen: torch.Generator,
) -> tuple[torch.Tensor, list[float]]:
    """Greedy random swap search (Jansson §3.6.2). ``init`` ⊂ ``candidates`` (indices); returns the final subset and
    the metric after every try (``n_tries + 1`` values, non-decreasing)."""
    if n_tries < 0:
        raise ValueError(f"n_tries must be >= 0, got {n_tries}")
    if not bool(torch.isin(init, candidates).all()):
        raise ValueError("init must be a subset of candidates")
    current = init.clone()
    outside = candidates[~torch.isin(candidates, current)]
    if outside.numel() == 0 and n_tries > 0:
        raise ValueError("no candidate outside the initial set to swap in")
    value = metric_fn(current)
    values = [value]
    for _ in range(n_tries):
        i = int(torch.randint(current.numel(), (1,), generator=gen))
        j = int(torch.randint(outside.numel(), (1,), generator=gen))
        trial = current.clone()
        trial[i] = outside[j]
        v = metric_fn(trial)
        if v > value:  # strict: ties and NaN keep the current set
            outside[j] = current[i]
            current, value = trial, v
        values.append(value)
    return current, values


def top_n_by_diag(diag: torch.Tensor, candidates: torch.Tensor, n: int) -> torch.Tensor:
    """The ``n`` candidates with the largest K(x, x) (``diag`` is indexed by dataset index): the exact maximiser of
    Tr K(A, A) over |A| = n (Jansson 2025 §3.6.1)."""
    if not (1 <= n <= candidates.numel()):
        raise ValueError(f"n must be in [1, {candidates.numel()}], got {n}")
    order = torch.argsort(diag[candidates], descending=True, stable=True)
    return candidates[order[:n]]
