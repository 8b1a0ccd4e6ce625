"""Episode returns of a policy on fresh envs: the student's and teacher's return, on the training env and on each
held-out variation (:mod:`repdyn.distill.variations`).

Each evaluation builds its own envs seeded from ``seed`` (so evaluating never disturbs the data-collection env, and a
resumed run evaluates the same episodes) and runs them until every env has finished one episode or ``max_steps``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from repdyn.distill.variations import make_varied_env
from repdyn.lean_collector import LeanCollector

ActFn = Callable[[torch.Tensor], dict[str, torch.Tensor]]


def episode_returns(
    env_cfg: Any, act: ActFn, *, episodes: int, seed: int, max_steps: int, variation: Mapping[str, Any] | None = None
) -> list[float]:
    """Undiscounted return of the first episode of each of ``episodes`` envs under ``act`` (an unfinished episode
    counts with its return so far after ``max_steps``); ``variation``: physics attributes (classic control) or a game
    mode/difficulty (ALE), see :mod:`repdyn.distill.variations`. ALE returns are of the reward the teacher was trained
    on (the sign of the score with ``env.atari.reward_sign``)."""
    env = make_varied_env(env_cfg, seed, episodes, variation)
    try:
        collector = LeanCollector(env, act, episodes)  # one step of every env per rollout
        returns = torch.full((episodes,), float("nan"))
        running = torch.zeros(episodes)
        for _ in range(max_steps):
            batch = collector.rollout()
            running = batch["next", "episode_reward"].reshape(episodes)
            ended = batch["next", "done"].reshape(episodes) & returns.isnan()
            returns = torch.where(ended, running, returns)
            if not returns.isnan().any():
                break
        return torch.where(returns.isnan(), running, returns).tolist()
    finally:
        env.close()


def evaluate_returns(
    env_cfg: Any,
    act: ActFn,
    variations: Mapping[str, Mapping[str, Any]],
    *,
    episodes: int,
    seed: int,
    max_steps: int,
    prefix: str,
) -> dict[str, float]:
    """``<prefix>/return`` on the training env, ``<prefix>/<variation>/return`` on each held-out variation, and
    ``<prefix>/generalization_gap`` = train return − mean held-out return (only with variations)."""
    import numpy as np

    rec = {
        f"{prefix}/return": float(
            np.mean(episode_returns(env_cfg, act, episodes=episodes, seed=seed, max_steps=max_steps))
        )
    }
    held = []
    for name, attrs in variations.items():
        r = episode_returns(env_cfg, act, episodes=episodes, seed=seed, max_steps=max_steps, variation=attrs)
        rec[f"{prefix}/{name}/return"] = float(np.mean(r))
        held.append(rec[f"{prefix}/{name}/return"])
    if held:
        rec[f"{prefix}/generalization_gap"] = rec[f"{prefix}/return"] - float(np.mean(held))
    return rec
