"""Agents (PPO, DQN) built on torchrl components, behind the protocol the training loop relies on.

The protocol is :class:`repdyn.agents.base.Agent` (``act``, ``policy``, ``networks`` / ``optimizers``,
``process_batch``, ``update -> UpdateResult``, the metric views, ``state_dict``), with the optional capabilities
``CapacityProbed``, ``NTKViews`` and ``UpdateRankViews`` beside it; docs/architecture.md#adding-an-agent.
"""

from __future__ import annotations

import importlib
from typing import Any

AGENTS = {"ppo": "repdyn.agents.ppo:PPOAgent", "dqn": "repdyn.agents.dqn:DQNAgent"}


def build_agent(cfg: Any, env: Any) -> Any:
    """Instantiate the agent named by ``cfg.agent.name`` for ``env``, its networks created on ``cfg.device``."""
    import torch

    if cfg.agent.name not in AGENTS:
        raise ValueError(f"agent.name: unknown agent {cfg.agent.name!r}; choose one of {sorted(AGENTS)}")
    module, cls = AGENTS[cfg.agent.name].split(":")
    with torch.device(cfg.device):  # the default device of every tensor the constructor creates
        return getattr(importlib.import_module(module), cls)(cfg, env)
