"""Evaluation on the training env and on held-out variations (Lyle et al. 2022b §6.2): a fixed policy's CartPole
return changes when the pole does, and the generalization gap is train return − mean held-out return."""

from __future__ import annotations

import torch
from omegaconf import OmegaConf

from repdyn.distill.evaluate import evaluate_returns

CARTPOLE = OmegaConf.create({"family": "classic", "id": "CartPole-v1", "max_episode_steps": None})


def push_towards_the_fall(obs: torch.Tensor) -> dict[str, torch.Tensor]:
    """Push the cart the way the pole leans: a deterministic, decent CartPole policy."""
    return {"action": (obs[:, 2] > 0).long()}


def test_variations_change_the_return_and_give_the_gap() -> None:
    variations = {"heavy_short": {"length": 0.1, "masspole": 1.0}}
    rec = evaluate_returns(CARTPOLE, push_towards_the_fall, variations, episodes=3, seed=0, max_steps=100, prefix="p")
    assert set(rec) == {"p/return", "p/heavy_short/return", "p/generalization_gap"}
    assert rec["p/return"] != rec["p/heavy_short/return"]
    assert rec["p/generalization_gap"] == rec["p/return"] - rec["p/heavy_short/return"]
    again = evaluate_returns(CARTPOLE, push_towards_the_fall, variations, episodes=3, seed=0, max_steps=100, prefix="p")
    assert again == rec  # same seeds, same episodes
