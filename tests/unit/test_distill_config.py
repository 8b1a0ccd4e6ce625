"""The distill config tree composes (presets included) and env variations reach the simulator."""

from __future__ import annotations

import gymnasium as gym
import pytest
from omegaconf import OmegaConf

from repdyn.distill.variations import apply_variation, check_variations
from repdyn.errors import ConfigError


@pytest.fixture
def compose_distill():
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from repdyn.distill.config import register_distill_configs
    from repdyn.paths import CONF_DIR

    register_distill_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        yield lambda overrides: compose("distill", overrides=overrides)
    GlobalHydra.instance().clear()


def test_presets_and_groups_compose(compose_distill) -> None:
    cfg = compose_distill(["experiment=distill_acrobot"])
    assert (cfg.name, cfg.teacher, cfg.model) == ("distill_acrobot", "outputs/distill_acrobot_teacher/s0", None)
    assert set(cfg.env.variations) == {"heavy_links", "long_link"}
    cfg = compose_distill(["experiment=distill_cartpole_ppo", "model=mlp", "model.hidden=[16]", "logger=none"])
    assert (cfg.objective, list(cfg.model.hidden), cfg.logger.backend) == ("policy_kl", [16], "none")


def test_variations_change_the_cartpole_dynamics_and_bad_ones_are_refused() -> None:
    raw = gym.make("CartPole-v1").unwrapped
    apply_variation(raw, {"length": 1.0, "masspole": 0.5})
    assert raw.polemass_length == pytest.approx(0.5) and raw.total_mass == pytest.approx(1.5)
    env = OmegaConf.create({"family": "classic", "id": "CartPole-v1"})
    check_variations(env, {"long_pole": {"length": 1.0}})
    with pytest.raises(ConfigError, match=r"env.variations.bad.lenght"):
        check_variations(env, {"bad": {"lenght": 1.0}})
    with pytest.raises(ConfigError, match=r"env.variations: only classic-control and ALE"):
        check_variations(OmegaConf.create({"family": "mujoco", "id": "Hopper-v5"}), {"heavy": {"mass": 1.0}})


def atari_env(game: str, **atari) -> OmegaConf:
    """The ``env`` section of an ``env=atari/<game>`` teacher run, with ``atari`` overrides."""
    from repdyn.paths import CONF_DIR

    env = OmegaConf.load(CONF_DIR / "env" / "atari" / f"{game}.yaml")
    del env["defaults"]
    env.atari.update(atari)
    return env


ALE_REFUSED = {  # case: (game, variations, the message's start)
    "mode_not_in_game": ("phoenix", {"hard": {"mode": 7}}, r"env.variations.hard.mode: Phoenix has modes \[0\], got 7"),
    "difficulty_not_in_game": (
        "namethisgame",
        {"x": {"difficulty": 2}},
        r"env.variations.x.difficulty: NameThisGame has difficulties \[0, 1\], got 2",
    ),
    "unknown_key": ("namethisgame", {"x": {"mode": 24, "speed": 2}}, r"env.variations.x.speed: an ALE variation sets"),
    "string": ("namethisgame", {"x": {"mode": "24"}}, r"env.variations.x.mode: must be an integer, got '24'"),
    "bool": ("namethisgame", {"x": {"difficulty": True}}, r"env.variations.x.difficulty: must be an integer, got True"),
    "empty": ("namethisgame", {"x": {}}, r"env.variations.x: an ALE variation sets mode and/or difficulty"),
    "not_a_mapping": ("namethisgame", {"x": 24}, r"env.variations.x: an ALE variation sets mode and/or difficulty"),
}


@pytest.mark.parametrize(("game", "variations", "message"), ALE_REFUSED.values(), ids=ALE_REFUSED.keys())
def test_ale_variations_are_checked_against_the_game(game, variations, message) -> None:
    with pytest.raises(ConfigError, match=message):
        check_variations(atari_env(game), variations)


def test_ale_variations_within_the_game_pass_and_unreproducible_teachers_are_refused() -> None:
    check_variations(atari_env("namethisgame"), {"other_mode": {"mode": 24}, "hard": {"difficulty": 1, "mode": 40}})
    with pytest.raises(ConfigError, match=r"env.variations: the teacher's env.atari.noop_max: only 0"):
        check_variations(atari_env("namethisgame", noop_max=30), {"hard": {"difficulty": 1}})


def test_teacher_presets_are_valid_training_runs(compose) -> None:
    from repdyn.config import validate

    for preset, expected in (("distill_acrobot_teacher", "dqn"), ("distill_cartpole_ppo_teacher", "ppo")):
        cfg = compose([f"experiment={preset}"])
        validate(cfg)
        assert cfg.agent.name == expected
