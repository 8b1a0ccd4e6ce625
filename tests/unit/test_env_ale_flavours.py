"""ALE game modes/difficulties (repdyn.envs.ale_flavours): in the game's default flavour the Python-stepped env
reproduces repdyn's C++ Atari env bit for bit (observations, rewards, episode ends, frame counters) for the same seed
and actions, and another flavour really changes the game."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from repdyn.envs.ale_flavours import FlavouredAtariVectorEnv, available_flavours
from repdyn.envs.atari import ale_vector_env_kwargs, make_atari_env, rom_name

KEYS = ("observation", "reward", "reward_raw", "terminated", "truncated", "episode_frame_number")


def rollout(env_id: str, flavour: dict | None, num_envs: int, steps: int, **kwargs) -> dict[str, torch.Tensor]:
    """``steps`` steps of fixed random actions (partial resets after episode ends, as the collectors do): the root
    observations and the ``next`` keys, stacked over time."""
    env = make_atari_env(env_id, num_envs, 5, flavour=flavour, **kwargs)
    actions = torch.randint(0, env.num_actions, (steps, num_envs), generator=torch.Generator().manual_seed(0))
    td = env.reset()
    out: dict[str, list[torch.Tensor]] = {"root": [td["observation"].clone()], **{k: [] for k in KEYS}}
    for a in actions:
        td = env.step(td.set("action", a))
        nxt = td["next"]
        for k in KEYS:
            out[k].append(nxt[k].clone())
        td = env.step_mdp(td)
        if nxt["done"].any():
            td = env.reset(td.set("_reset", nxt["done"].clone()))
        out["root"].append(td["observation"].clone())
    env.close()
    return {k: torch.stack(v) for k, v in out.items()}


CASES = [  # (env id, envs, steps, extra make_atari_env kwargs, keys that must be non-zero at some step)
    ("ALE/Breakout-v5", 1, 300, {}, ("terminated", "reward_raw")),  # scores, game over at step 252, autoreset
    ("ALE/Phoenix-v5", 2, 25, {"max_num_frames_per_episode": 31}, ("truncated",)),  # the frame cap inside a frameskip
    ("ALE/NameThisGame-v5", 2, 40, {}, ()),  # a game whose default mode is not 0 but 8
]


@pytest.mark.parametrize(("env_id", "num_envs", "steps", "kwargs", "must_see"), CASES, ids=[c[0][4:-3] for c in CASES])
def test_default_flavour_reproduces_the_training_env_bit_for_bit(env_id, num_envs, steps, kwargs, must_see) -> None:
    _, _, mode, difficulty = available_flavours(rom_name(env_id))
    ours = rollout(env_id, {"mode": mode, "difficulty": difficulty}, num_envs, steps, **kwargs)
    training = rollout(env_id, None, num_envs, steps, **kwargs)
    assert ours["root"].shape == (steps + 1, num_envs, 4, 84, 84) and ours["root"].dtype == torch.uint8
    for key, value in training.items():
        assert torch.equal(ours[key], value), key
    for key in must_see:
        assert training[key].any(), key  # the case really reaches what it is meant to exercise


def test_other_flavours_change_the_game() -> None:
    """The emulators report the flavour asked for (NameThisGame's default mode is 8, not 0), and in Space Invaders
    another mode or difficulty changes the frames from the first step on, for the same seed and actions."""
    assert available_flavours("name_this_game") == ((8, 24, 40), (0, 1), 8, 0)
    kwargs = ale_vector_env_kwargs("ALE/NameThisGame-v5", 1)
    for flavour, expected in (({"mode": 24, "difficulty": 1}, (24, 1)), ({}, (8, 0)), ({"difficulty": 1}, (8, 1))):
        vec = FlavouredAtariVectorEnv(**flavour, **kwargs)
        vec.reset(seed=0)
        assert vec.current_flavours() == [expected], flavour
        vec.close()
    training = rollout("ALE/SpaceInvaders-v5", None, 1, 5)
    for flavour in ({"mode": 1}, {"difficulty": 1}):
        other = rollout("ALE/SpaceInvaders-v5", flavour, 1, 5)
        assert torch.equal(other["root"][0], training["root"][0])  # the same reset screen
        assert not torch.equal(other["root"][1], training["root"][1]), flavour


def test_unavailable_flavours_and_unreproducible_settings_are_refused() -> None:
    kwargs = ale_vector_env_kwargs("ALE/Phoenix-v5", 1)
    with pytest.raises(ValueError, match=r"mode: phoenix has modes \[0\], got 7"):
        FlavouredAtariVectorEnv(mode=7, **kwargs)
    with pytest.raises(ValueError, match=r"difficulty: phoenix has difficulties \[0\], got 1"):
        FlavouredAtariVectorEnv(difficulty=1, **kwargs)
    with pytest.raises(ValueError, match=r"noop_max: only 0"):  # the C++ no-op draws cannot be replayed
        FlavouredAtariVectorEnv(mode=0, **ale_vector_env_kwargs("ALE/Phoenix-v5", 1, noop_max=30))
    with pytest.raises(ValueError, match=r"partial resets"):
        FlavouredAtariVectorEnv(mode=0, **kwargs).reset(seed=0, options={"reset_mask": np.ones(1, dtype=bool)})
    from repdyn.envs.make import make_env

    cartpole = OmegaConf.create({"family": "classic", "id": "CartPole-v1", "max_episode_steps": None})
    with pytest.raises(ValueError, match=r"needs an atari env"):
        make_env(cartpole, 0, 1, flavour={"mode": 1})
