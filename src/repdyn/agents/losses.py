"""Loss pieces shared by the PPO agent and the theory toy (Moalla et al. 2024 §2, App. C, arXiv:2405.00662)."""

from __future__ import annotations

import torch


def ppo_clip_objective(
    log_prob: torch.Tensor, old_log_prob: torch.Tensor, advantage: torch.Tensor, clip_eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample PPO-Clip surrogate L = min(r·A, clip(r, 1−ε, 1+ε)·A), r = exp(log π_θ − log π_old).

    Returns ``(objective, ratio)``; the loss to minimise is ``-objective.mean()``. ``ratio`` is returned so the
    trust-region statistics (docs/metrics.md#trust-region) see every sample of the optimisation phase.
    """
    ratio = torch.exp(log_prob - old_log_prob)
    clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    return torch.minimum(ratio * advantage, clipped * advantage), ratio
