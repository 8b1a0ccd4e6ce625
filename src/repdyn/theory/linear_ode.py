"""Exact solutions of linear ODEs with constant coefficients, shared by the tabular and linearised TD studies.

For ∂v = A v + c, v(0) = v0:  v(t) = e^{At} v0 + (∫_0^t e^{As} ds) c. Both pieces come from one matrix exponential of
an augmented matrix (Van Loan 1978): exp([[A, B], [0, 0]] t) = [[e^{At}, ∫_0^t e^{As} ds B], [0, I]]. This needs no
inverse of A, so it is exact for singular A (states that are never updated themselves, τ = 0 target networks).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def _times(times: Sequence[float] | torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    t = torch.as_tensor(list(times) if not isinstance(times, torch.Tensor) else times, dtype=dtype).reshape(-1)
    if not torch.isfinite(t).all():
        raise ValueError("times must be finite (use the closed-form t -> infinity limit instead)")
    return t


def integrated_exp(A: torch.Tensor, B: torch.Tensor, times: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """(∫_0^t e^{As} ds) B for each t → [T, n, m] (``A`` [n, n], ``B`` [n, m])."""
    n, m = A.shape[0], B.shape[1]
    M = torch.zeros(n + m, n + m, dtype=A.dtype)
    M[:n, :n] = A
    M[:n, n:] = B
    t = _times(times, A.dtype)
    return torch.linalg.matrix_exp(M[None] * t[:, None, None])[:, :n, n:]


def linear_ode_solution(
    A: torch.Tensor, c: torch.Tensor, v0: torch.Tensor, times: Sequence[float] | torch.Tensor
) -> torch.Tensor:
    """Exact solution of ∂v = A v + c at each time in ``times`` → [T, n]."""
    n = A.shape[0]
    M = torch.zeros(n + 1, n + 1, dtype=A.dtype)
    M[:n, :n] = A
    M[:n, n] = c
    t = _times(times, A.dtype)
    E = torch.linalg.matrix_exp(M[None] * t[:, None, None])
    return E[:, :n, :n] @ v0.to(A.dtype) + E[:, :n, n]
