"""ALE env family (Moalla et al. 2024 App. B Table 2): settings are checked against the emulator.

The reference is a bare ``ale_py.ALEInterface`` configured by hand (its ``getFloat("repeat_action_probability")`` and
``getInt("frame_skip")`` are read back) and stepped frame by frame; our env must reproduce its screens, rewards and
game-over step exactly. ALE with sticky actions off is deterministic, so a match at p = 0.25 that fails at p = 0 and
p = 0.5 pins the sticky probability, and a match with 3 ``act`` calls per step and the last screen pins frameskip 3
without max-pooling.
"""

from __future__ import annotations

import ale_py
import numpy as np
import pytest
import torch
from ale_py import roms
from ale_py.vector_env import AtariVectorEnv
from omegaconf import OmegaConf

from repdyn.envs.atari import ale_vector_env_kwargs, make_atari_env, rom_name
from repdyn.paths import CONF_DIR
from tests.atari_envs import make_atari_env_from_config

GAMES = ["phoenix", "namethisgame", "qbert", "battlezone", "doubledunk", "gravitar"]


def preset(name: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(CONF_DIR / "env" / "atari" / f"{name}.yaml"))


class ReferenceALE:
    """A single emulator stepped by hand: ``frameskip`` act() calls per agent step, last screen only (no pooling)."""

    def __init__(self, game: str, seed: int, sticky: float, frameskip: int) -> None:
        self.ale = ale_py.ALEInterface()
        self.ale.setLoggerMode(ale_py.LoggerMode.Error)
        self.ale.setInt("random_seed", seed)
        self.ale.setFloat("repeat_action_probability", sticky)
        self.ale.loadROM(roms.get_rom_path(game))
        self.ale.reset_game()
        self.actions = self.ale.getMinimalActionSet()
        self.frameskip = frameskip

    def step(self, action: int) -> tuple[np.ndarray, int, bool]:
        reward = 0
        for _ in range(self.frameskip):
            reward += self.ale.act(self.actions[action])
            if self.ale.game_over():
                break
        return self.ale.getScreenGrayscale().copy(), reward, self.ale.game_over()


def area_resize(n_src: int, n_dst: int) -> np.ndarray:
    """Row-stochastic area-averaging matrix (what OpenCV's INTER_AREA computes for a shrink)."""
    scale = n_src / n_dst
    w = np.zeros((n_dst, n_src))
    for d in range(n_dst):
        lo, hi = d * scale, (d + 1) * scale
        for s in range(int(np.floor(lo)), int(np.ceil(hi))):
            w[d, s] = max(0.0, min(hi, s + 1) - max(lo, s))
    return w / scale


def test_all_presets_build_v5_settings() -> None:
    for name in GAMES:
        cfg = preset(name)
        assert cfg["family"] == "atari" and cfg["num_envs"] == 8 and cfg["frames_per_env"] == 128
        assert cfg["atari"]["frameskip"] == 3 and cfg["atari"]["repeat_action_probability"] == 0.25
        kwargs = ale_vector_env_kwargs(
            cfg["id"],
            cfg["num_envs"],
            **{k: v for k, v in cfg["atari"].items() if k not in ("reward_sign", "terminal_on_life_loss")},
        )
        assert kwargs["maxpool"] is False and kwargs["noop_max"] == 0 and kwargs["use_fire_reset"] is False
        assert kwargs["episodic_life"] is False and kwargs["reward_clipping"] is False
        assert kwargs["max_num_frames_per_episode"] == 108_000 and kwargs["autoreset_mode"] == "SameStep"
    assert [rom_name(preset(n)["id"]) for n in GAMES] == [
        "phoenix",
        "name_this_game",
        "qbert",
        "battle_zone",
        "double_dunk",
        "gravitar",
    ]


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"env_id": "Phoenix-v5"}, "env_id"),
        ({"env_id": "ALE/Phoenix-v4"}, "env_id"),
        ({"env_id": "ALE/NotAGame-v5"}, "env_id"),
        ({"num_envs": 0}, "num_envs"),
        ({"frameskip": 0}, "frameskip"),
        ({"repeat_action_probability": 1.5}, "repeat_action_probability"),
        ({"size": 0}, "size"),
        ({"noop_max": -1}, "noop_max"),
        ({"seed": 1.5}, "seed"),
    ],
)
def test_bad_input_fails_with_named_argument(kwargs: dict, argument: str) -> None:
    args = {"env_id": "ALE/Phoenix-v5", "num_envs": 2, "seed": 0} | kwargs
    with pytest.raises(ValueError, match=argument):
        make_atari_env(**args)


def test_preset_emulator_is_sticky_025_frameskip_3_without_pooling() -> None:
    """Native-resolution run of the Phoenix preset's emulator configuration vs hand-stepped reference emulators."""
    cfg = preset("phoenix")
    atari = {k: v for k, v in cfg["atari"].items() if k not in ("reward_sign", "terminal_on_life_loss")}
    kwargs = ale_vector_env_kwargs(cfg["id"], 1, **atari) | {"img_height": 210, "img_width": 160}
    vec = AtariVectorEnv(**kwargs)
    obs, _ = vec.reset(seed=7)
    rng = np.random.default_rng(0)
    actions = rng.integers(0, vec.single_action_space.n, 150)
    frames, rewards, stack_ok = [obs[0, -1]], [], True
    for a in actions:
        prev = obs
        obs, reward, terminated, truncated, _ = vec.step(np.array([a]))
        assert not (terminated | truncated).any()
        stack_ok &= bool((obs[0, :-1] == prev[0, 1:]).all())
        frames.append(obs[0, -1])
        rewards.append(int(reward[0]))
    vec.close()
    assert stack_ok  # frame stack of 4 shifts by one frame per agent step

    def reference_run(sticky: float, frameskip: int) -> tuple[np.ndarray, list[int]]:
        ref = ReferenceALE("phoenix", 7, sticky, frameskip)
        assert ref.ale.getFloat("repeat_action_probability") == pytest.approx(sticky)
        assert ref.ale.getInt("frame_skip") == 1  # frameskip is done by act() calls, as in v5
        out, rew = [ref.ale.getScreenGrayscale().copy()], []
        for a in actions:
            f, r, _ = ref.step(int(a))
            out.append(f)
            rew.append(r)
        return np.stack(out), rew

    ours = np.stack(frames)
    ref_frames, ref_rewards = reference_run(0.25, 3)
    assert (ours == ref_frames).all() and rewards == ref_rewards and sum(rewards) > 0
    for sticky, frameskip in [(0.0, 3), (0.5, 3), (0.25, 4)]:
        other, _ = reference_run(sticky, frameskip)
        assert not (ours == other).all(), (sticky, frameskip)


def test_preset_env_observations_follow_the_reference_emulator() -> None:
    """Preset env: uint8 [8, 4, 84, 84]; sub-env i is seeded seed + i; each 84×84 frame is the area-resized screen."""
    env = make_atari_env_from_config(OmegaConf.create(preset("phoenix")), seed=3)
    assert env.batch_size == torch.Size([8]) and env.num_actions == 8
    td = env.reset()
    obs = td["observation"]
    assert obs.dtype == torch.uint8 and obs.shape == (8, 4, 84, 84)
    assert (obs[:, :3] == 0).all() and (obs[:, 3] > 0).any()  # fresh stack: only the newest slot is filled
    wh, ww = area_resize(210, 84), area_resize(160, 84)
    refs = {i: ReferenceALE("phoenix", 3 + i, 0.25, 3) for i in (0, 5)}
    plain = ReferenceALE("phoenix", 3, 0.0, 3)
    rng = np.random.default_rng(1)
    worst, worst_plain = 0.0, 0.0
    for _ in range(80):
        action = torch.as_tensor(rng.integers(0, 8, 8))
        td = env.step(td.set("action", action))["next"]
        assert td["observation"].shape == (8, 4, 84, 84) and td["observation"].dtype == torch.uint8
        for i, ref in refs.items():
            screen, _, _ = ref.step(int(action[i]))
            expected = np.rint(wh @ screen.astype(np.float64) @ ww.T)
            worst = max(worst, float(np.abs(expected - td["observation"][i, -1].numpy()).max()))
        screen, _, _ = plain.step(int(action[0]))
        expected = np.rint(wh @ screen.astype(np.float64) @ ww.T)
        worst_plain = max(worst_plain, float(np.abs(expected - td["observation"][0, -1].numpy()).max()))
    env.close()
    assert worst <= 1.0  # OpenCV's fixed-point rounding
    assert worst_plain > 10.0  # a non-sticky emulator drifts away: the env really is sticky


def test_frame_counter_cap_and_truncation() -> None:
    """Frameskip read from the emulator's frame counter; the cap counts frames and truncates (not terminates)."""
    env = make_atari_env("ALE/Gravitar-v5", 2, 0, max_num_frames_per_episode=30)
    td = env.reset()
    rollout = env.rollout(25, break_when_any_done=False, tensordict=td, auto_reset=False)
    frames = rollout["next", "episode_frame_number"][0, :9, 0]
    assert frames.tolist() == [3, 6, 9, 12, 15, 18, 21, 24, 27]
    truncated = rollout["next", "truncated"][..., 0]
    assert truncated[:, 9].all() and truncated.sum() == 4  # steps 10 and 20 of each sub-env: 30 frames / 3
    assert not rollout["next", "terminated"].any()
    assert (rollout["next", "done"] == rollout["next", "truncated"]).all()
    # The terminal transition keeps the final frame stack; the next root obs is the new episode's.
    assert (rollout["next", "observation"][:, 9, :3] == rollout["observation"][:, 9, 1:]).all()
    assert (rollout["observation"][:, 10, :3] == 0).all() and rollout["episode_frame_number"][:, 10].eq(0).all()
    env.close()
    four = make_atari_env("ALE/Gravitar-v5", 1, 0, frameskip=4)
    out = four.rollout(3, break_when_any_done=False)
    assert out["next", "episode_frame_number"][0, :, 0].tolist() == [4, 8, 12]
    four.close()


def test_reward_sign_and_raw_and_seeding() -> None:
    """reward = sign(reward_raw) (or raw when reward_sign=False); same seed + actions → same game; seeds differ."""
    actions = torch.randint(0, 8, (120, 4), generator=torch.Generator().manual_seed(0))

    def run(seed: int, **kwargs) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        env = make_atari_env("ALE/Phoenix-v5", 4, seed, **kwargs)
        td = env.reset()
        rew, raw, obs = [], [], []
        for a in actions:
            td = env.step(td.set("action", a))["next"]
            rew.append(td["reward"])
            raw.append(td["reward_raw"])
            obs.append(td["observation"])
        env.close()
        return torch.stack(rew), torch.stack(raw), torch.stack(obs)

    rew, raw, obs = run(11)
    assert rew.dtype == torch.float32 and rew.shape == (120, 4, 1) and raw.shape == (120, 4, 1)
    assert raw.max() >= 20  # Phoenix scores in multiples of 20: the raw score is unsigned and kept
    assert torch.equal(rew, torch.sign(raw)) and set(rew.unique().tolist()) <= {0.0, 1.0}
    rew2, raw2, obs2 = run(11, reward_sign=False)
    assert torch.equal(raw2, raw) and torch.equal(rew2, raw2) and torch.equal(obs2, obs)
    _, _, obs3 = run(12)
    assert not torch.equal(obs3, obs)  # sub-env seeds differ → different sticky-action draws
    _, _, plain_a = run(11, repeat_action_probability=0.0)
    _, _, plain_b = run(12, repeat_action_probability=0.0)
    assert torch.equal(plain_a, plain_b)  # without sticky actions ALE is deterministic: seeds only drive stickiness


def test_game_over_step_and_terminal_reward_match_reference() -> None:
    """SameStep autoreset keeps the terminal step's reward and final frame (Breakout ends fast under random play)."""
    env = make_atari_env("ALE/Breakout-v5", 1, 5, size=84)
    ref = ReferenceALE("breakout", 5, 0.25, 3)
    wh, ww = area_resize(210, 84), area_resize(160, 84)
    td = env.reset()
    rng = np.random.default_rng(2)
    steps = 0
    for _ in range(2000):
        steps += 1
        a = int(rng.integers(0, env.num_actions))
        td = env.step(td.set("action", torch.tensor([a])))
        nxt = td["next"]
        screen, reward, over = ref.step(a)
        assert nxt["reward_raw"].item() == reward
        assert nxt["terminated"].item() == over and not nxt["truncated"].item()
        if over:
            # The terminal transition's next obs is the final stack (not the reset one), consistent with its root obs.
            assert (nxt["observation"][0, :3] == td["observation"][0, 1:]).all()
            break
        expected = np.rint(wh @ screen.astype(np.float64) @ ww.T)
        assert np.abs(expected - nxt["observation"][0, -1].numpy()).max() <= 1.0
        td = env.step_mdp(td)
    else:
        pytest.fail("Breakout did not end in 2000 random steps")
    assert steps > 50
    reset_td = env.reset(env.step_mdp(td).set("_reset", torch.ones(1, 1, dtype=torch.bool)))
    assert (reset_td["observation"][0, :3] == 0).all() and reset_td["episode_frame_number"].item() == 0
    env.close()


def test_terminal_on_life_loss_signals_without_resetting_the_game() -> None:
    env = make_atari_env("ALE/Breakout-v5", 1, 5, terminal_on_life_loss=True)
    td = env.reset()
    rng = np.random.default_rng(2)
    frames_at_life_loss = []
    for _ in range(400):
        td = env.step(td.set("action", torch.tensor([int(rng.integers(0, env.num_actions))])))
        if td["next", "terminated"].item():
            frames_at_life_loss.append(td["next", "episode_frame_number"].item())
            td = env.reset(env.step_mdp(td).set("_reset", torch.ones(1, 1, dtype=torch.bool)))
            if len(frames_at_life_loss) == 2:
                break
        else:
            td = env.step_mdp(td)
    assert len(frames_at_life_loss) == 2
    # The second "termination" comes later in the same game: the frame counter was not reset by the life loss.
    assert 0 < frames_at_life_loss[0] < frames_at_life_loss[1]
    assert td["episode_frame_number"].item() == frames_at_life_loss[1]
    env.close()
