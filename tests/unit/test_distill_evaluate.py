"""Evaluation on the training env and on held-out variations (Lyle et al. 2022b §6.2): a fixed policy's CartPole
return changes when the pole does, the generalization gap is train return − mean held-out return, and ALE game
modes/difficulties are evaluated the same way."""

from __future__ import annotations

import math

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


def fire_and_sway(obs: torch.Tensor) -> dict[str, torch.Tensor]:
    """Space Invaders: always fire (actions 1, 4, 5 = FIRE, RIGHTFIRE, LEFTFIRE), moving by the newest frame's
    brightness: deterministic, and it scores within ~100 steps."""
    frame = obs[:, -1].float()
    sway = (frame.mean((1, 2)) * 10).long() % 2 + (frame[:, 70:80].sum((1, 2)).long() // 7) % 2
    return {"action": torch.tensor([1, 4, 5])[sway]}


def test_an_ale_variation_gives_finite_returns_and_the_default_flavour_reproduces_the_training_return() -> None:
    """One held-out flavour, the game's default one: the flavoured env must then give exactly the training env's
    episodes (another mode changing the game is tested in tests/unit/test_env_ale_flavours.py)."""
    from repdyn.paths import CONF_DIR

    env = OmegaConf.load(CONF_DIR / "env" / "atari" / "phoenix.yaml")  # repdyn's v5 settings, another game
    env.id = "ALE/SpaceInvaders-v5"
    variations = {"default": {"mode": 0, "difficulty": 0}}
    rec = evaluate_returns(env, fire_and_sway, variations, episodes=2, seed=0, max_steps=120, prefix="p")
    assert set(rec) == {"p/return", "p/default/return", "p/generalization_gap"}
    assert all(math.isfinite(v) for v in rec.values())
    assert rec["p/return"] > 0  # the policy scored: the comparison below is not between zeros
    assert rec["p/default/return"] == rec["p/return"] and rec["p/generalization_gap"] == 0.0
