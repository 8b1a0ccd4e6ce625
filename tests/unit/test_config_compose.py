"""Which agent and model an env option brings (conf/env/atari/*.yaml override them; the command line still wins)."""

from __future__ import annotations

import pytest

CASES = [
    ([], ("Hopper-v5", "ppo", 3e-4, "mlp")),
    (["env=classic/cartpole"], ("CartPole-v1", "ppo", 3e-4, "mlp")),
    (["env=atari/phoenix"], ("ALE/Phoenix-v5", "ppo", 2.5e-4, "cnn")),  # the paper's Atari PPO, not MuJoCo's
    (["env=atari/qbert", "agent=dqn_atari"], ("ALE/Qbert-v5", "dqn", 6.25e-5, "cnn")),
    (["env=atari/phoenix", "agent=ppo"], ("ALE/Phoenix-v5", "ppo", 3e-4, "cnn")),  # asked for explicitly
    (["experiment=ppo_collapse_atari"], ("ALE/Phoenix-v5", "ppo", 2.5e-4, "cnn")),
    (
        ["experiment=ppo_interventions", "agent=ppo", "model=mlp", "env=mujoco/hopper"],
        ("Hopper-v5", "ppo", 3e-4, "mlp"),
    ),
    (["experiment=icm_beta_acrobot"], ("Acrobot-v1", "dqn", 6.3e-4, "mlp")),
]


@pytest.mark.parametrize(("overrides", "expected"), CASES, ids=[" ".join(o) or "defaults" for o, _ in CASES])
def test_env_option_brings_its_family_agent_and_model(compose, overrides, expected):
    cfg = compose(overrides)
    assert (cfg.env.id, cfg.agent.name, cfg.agent.lr, cfg.model.name) == pytest.approx(expected)


def test_atari_env_with_an_mlp_is_still_refused(compose):
    from repdyn.config import ConfigError, validate

    with pytest.raises(ConfigError, match="model=cnn"):
        validate(compose(["env=atari/phoenix", "model=mlp"]))
