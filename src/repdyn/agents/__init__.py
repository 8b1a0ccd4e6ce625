"""Agents (PPO, DQN) built on torchrl components, behind the protocol the training loop relies on.

The protocol is :class:`repdyn.agents.base.Agent` (``act``, ``policy``, ``networks`` / ``optimizers``,
``process_batch``, ``update -> UpdateResult``, the metric views, ``state_dict``), with the optional capabilities
``CapacityProbed``, ``NTKViews`` and ``UpdateRankViews`` beside it; docs/architecture.md#adding-an-agent.
"""

from __future__ import annotations

import importlib
from typing import Any

AGENTS = {"ppo": "repdyn.agents.ppo:PPOAgent", "dqn": "repdyn.agents.dqn:DQNAgent"}


def agent_arguments(cfg: Any) -> dict[str, Any]:
    """The run config's values an agent is built from, beyond its own ``agent`` and ``model`` sections: the one place
    that maps the root config to an agent's explicit keyword arguments."""
    from repdyn.agents.compiled_step import use_compile

    frames = int(cfg.train.total_frames)
    if cfg.agent.name == "ppo":
        batch = int(cfg.env.num_envs) * int(cfg.env.frames_per_env)
        grad_steps = frames // batch * int(cfg.agent.epochs) * (batch // int(cfg.agent.minibatch_size))
        return {"batch_size": batch, "compile_step": use_compile(cfg.train.compile, grad_steps, cfg.model.name)}
    grad_steps = int(max(0, frames - int(cfg.agent.learning_starts)) * float(cfg.agent.replay_ratio))
    return {
        "ntk_q_reduction": cfg.metrics.ntk_q_reduction,
        "update_rank_q_reduction": cfg.metrics.update_rank_q_reduction,
        "compile_step": use_compile(cfg.train.compile, grad_steps, cfg.model.name),
    }


def build_agent(cfg: Any, env: Any) -> Any:
    """Instantiate the agent named by ``cfg.agent.name`` for ``env``, its networks created on ``cfg.device``."""
    import torch

    if cfg.agent.name not in AGENTS:
        raise ValueError(f"agent.name: unknown agent {cfg.agent.name!r}; choose one of {sorted(AGENTS)}")
    module, cls = AGENTS[cfg.agent.name].split(":")
    kwargs = {**agent_arguments(cfg), "nan_at_step": cfg.debug.inject_nan_at_step}
    with torch.device(cfg.device):  # the default device of every tensor the constructor creates
        return getattr(importlib.import_module(module), cls)(cfg.agent, cfg.model, env, **kwargs)
