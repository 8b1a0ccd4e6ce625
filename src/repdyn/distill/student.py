"""The student: a freshly initialised network with the teacher's architecture (or ``model=``) and one output per
action — Q-values for the value objectives, logits for the policy objectives — and its Adam."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from repdyn.agents.networks import build_body
from repdyn.distill.config import Q_OBJECTIVES

# Head gains as the agents use them: 1.0 for Q-networks (agents/dqn.py), 0.01 for policy logits (agents/ppo.py), so a
# fresh policy student starts near uniform.
HEAD_GAIN = {"q": 1.0, "policy": 0.01}


def student_kind(objective: str) -> str:
    """``q`` (evaluated ε-greedily) for value objectives, ``policy`` (sampled from softmax) otherwise."""
    return "q" if objective in Q_OBJECTIVES else "policy"


def build_student(model_cfg: Any, obs_shape: tuple[int, ...], n_actions: int, kind: str, seed: int) -> nn.Module:
    """A fresh MLP/CNN body ``obs → (outputs [N, n_actions], features, preacts)``, initialised from ``seed``."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build_body(model_cfg, obs_shape, n_actions, HEAD_GAIN[kind])


def build_optimizer(student: nn.Module, lr: float) -> torch.optim.Adam:
    # fused: one kernel per step, as the agents' Adams (agents/ppo.py measured it fastest for small MLPs)
    return torch.optim.Adam(student.parameters(), lr=lr, fused=True)
