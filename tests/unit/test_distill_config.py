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
    with pytest.raises(ConfigError, match=r"env.variations"):
        check_variations(OmegaConf.create({"family": "atari", "id": "ALE/Pong-v5"}), {"hard": {"difficulty": 1}})


def test_teacher_presets_are_valid_training_runs(compose) -> None:
    from repdyn.config import validate

    for preset, expected in (("distill_acrobot_teacher", "dqn"), ("distill_cartpole_ppo_teacher", "ppo")):
        cfg = compose([f"experiment={preset}"])
        validate(cfg)
        assert cfg.agent.name == expected
