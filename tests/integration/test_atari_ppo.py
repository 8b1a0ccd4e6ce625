"""PPO on ALE through the real CLI (issue 4 "must show"): the env's episode bookkeeping, a tiny PPO-Atari run with a
complete history, and the collapse presets compose to the paper's sweeps (Moalla et al. 2024 App. B Tables 2-3)."""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf

from repdyn.config import validate
from repdyn.envs.make import make_env
from repdyn.paths import CONF_DIR
from tests.conftest import history, run_cli, summary

SHORT_EPISODES = "env.atari.max_num_frames_per_episode=600"  # 200 agent steps at frameskip 3: episodes end in a test


def test_atari_env_from_make_env_sums_signed_and_raw_episode_rewards():
    cfg = OmegaConf.load(CONF_DIR / "env" / "atari" / "phoenix.yaml")
    cfg.num_envs, cfg.atari.max_num_frames_per_episode = 2, 600
    env = make_env(cfg, 0)
    try:
        td = env.rollout(420, break_when_any_done=False)
    finally:
        env.close()
    nxt = td["next"]
    for e in range(2):
        ends = nxt["done"][e].squeeze(-1).nonzero().squeeze(-1).tolist()
        assert ends[:2] == [199, 399]  # the 600-frame cap truncates every 200 agent steps
        start = 0
        for t in ends[:2]:
            raw, signed = nxt["reward_raw"][e, start : t + 1].sum(), nxt["reward"][e, start : t + 1].sum()
            assert float(nxt["episode_reward_raw"][e, t]) == float(raw)
            assert float(nxt["episode_reward"][e, t]) == float(signed)
            assert int(nxt["step_count"][e, t]) == t + 1 - start
            start = t + 1
        assert torch.equal(nxt["reward"][e], torch.sign(nxt["reward_raw"][e]))
    assert float(nxt["reward_raw"].sum()) > 0  # random play scores in Phoenix: the sums above are not all zero


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("atari") / "run"
    proc = run_cli(
        "env=atari/phoenix",
        "agent=ppo_atari",
        "model=cnn",
        "logger=none",
        "env.num_envs=2",
        "env.frames_per_env=128",
        SHORT_EPISODES,
        "agent.minibatch_size=64",
        "agent.epochs=1",
        "train.total_frames=512",
        "train.log_every=0.5",
        "metrics.every=0.5",
        "metrics.capacity_every=1.0",
        "metrics.capacity_samples=64",
        "metrics.capacity_epochs=1",
        "env.capacity_num_envs=2",
        f"hydra.run.dir={d}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return d


EXPECTED_KEYS = {
    "env/return",
    "env/return_raw",
    "env/length",
    "loss/policy",
    "loss/value",
    "ppo/clip_fraction",
    "ppo/entropy",
    "trust_region/n_above",
    "opt/actor/grad_norm",
    "batch_start/actor/approx_rank",
    "batch_start/actor/dead_units",
    "batch_end/critic/feature_rank",
    "batch_diff/actor/feature_drift_l2",
    "capacity/actor/loss",
    "capacity/critic/loss",
    "perf/sps",
}


def test_tiny_ppo_atari_run_writes_a_complete_history(tiny_run):
    recs = history(tiny_run)
    assert [r["step"] for r in recs] == [0, 256, 512]
    last = recs[-1]
    assert EXPECTED_KEYS <= set(last), EXPECTED_KEYS - set(last)
    for r in recs:
        for k, v in r.items():
            assert isinstance(v, (int, float)) and math.isfinite(v), (k, v)
    assert last["env/length"] == 200 and last["env/return_raw"] >= last["env/return"] >= 0
    assert 0 <= last["batch_start/actor/approx_rank"] <= 512
    s = summary(tiny_run)
    assert s["status"] == "completed" and s["env_steps"] == 512


def test_collapse_presets_compose_to_the_paper_sweeps(compose):
    atari = compose(["experiment=ppo_collapse_atari", "logger=none"])
    validate(atari)
    assert (atari.env.id, atari.env.num_envs, atari.env.frames_per_env) == ("ALE/Phoenix-v5", 8, 128)
    a = atari.agent
    assert (a.minibatch_size, a.lr, a.clip_eps, a.entropy_coef, a.epochs) == (256, 2.5e-4, 0.1, 0.01, 4)
    assert (atari.model.name, atari.model.activation) == ("cnn", "relu")
    assert atari.env.atari.frameskip == 3 and atari.env.atari.repeat_action_probability == 0.25
    mujoco = compose(["experiment=ppo_collapse_mujoco", "logger=none"])
    validate(mujoco)
    assert (mujoco.agent.minibatch_size, mujoco.agent.lr, mujoco.agent.clip_eps) == (64, 3e-4, 0.2)
    assert mujoco.train.total_frames == 5_000_000 and mujoco.env.obs_norm


@pytest.mark.parametrize(
    ("preset", "expected"),
    [
        (
            "ppo_collapse_atari",
            {
                "env": "atari/phoenix,atari/namethisgame,atari/qbert,atari/battlezone,atari/doubledunk,atari/gravitar",
                "agent.epochs": "4,6,8",
                "seed": "0,1,2,3,4",
            },
        ),
        (
            "ppo_collapse_mujoco",
            {
                "env": "mujoco/hopper,mujoco/halfcheetah,mujoco/ant,mujoco/humanoid",
                "agent.epochs": "10,15,20",
                "model.activation": "tanh,relu",
                "seed": "0,1,2,3,4",
            },
        ),
        ("icm_beta_acrobot", {"intervention.icm.beta": "0,1,4", "seed": "0,1,2,3,4"}),
        ("ntk_eviction_acrobot", {"intervention": "[],[ntk_eviction]", "seed": "0,1,2,3,4"}),
    ],
)
def test_presets_sweep_params(preset, expected):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from repdyn.config import register_configs

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose("train", overrides=[f"experiment={preset}"], return_hydra_config=True)
    GlobalHydra.instance().clear()
    assert {k: str(v) for k, v in cfg.hydra.sweeper.params.items()} == expected
