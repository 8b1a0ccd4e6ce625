"""Agents (PPO, DQN) built on torchrl components, behind one small protocol the training loop relies on.

An agent exposes: ``policy`` (the collector's TensorDict policy), ``networks`` / ``optimizers`` (dicts by name:
actor/critic, qnet, trunk), ``continuous``, ``process_batch(batch)`` (advantages or replay insertion, after the
``on_batch_collected`` hooks), ``update(batch, env_steps, hooks) -> UpdateResult``, ``rollout_outputs(flat, net)`` and
``metric_kwargs(net, outs)`` (views for :mod:`repdyn.monitor`), ``state_dict()`` / ``load_state_dict()``.
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
