"""ICM (src/repdyn/interventions/icm.py): r_int formula, running-std normalisation, β = 0 is a no-op, and the bonus
reaches PPO's advantages and DQN's TD targets (it is added before ``process_batch``)."""

from __future__ import annotations

import copy

import pytest
import torch
from omegaconf import OmegaConf
from torchrl.objectives.value.functional import vec_generalized_advantage_estimate

from repdyn.agents import build_agent
from repdyn.envs.make import make_env
from repdyn.interventions.icm import ICM, RunningMoments


@pytest.fixture
def setup(compose):
    made = []

    def _make(agent: str, *overrides: str):
        cfg = compose(["env=classic/acrobot", f"agent={agent}", "model=mlp", "logger=none", *overrides])
        env = make_env(cfg.env, cfg.seed)
        made.append(env)
        torch.manual_seed(0)
        ag = build_agent(cfg, env)
        with torch.no_grad():
            batch = env.rollout(24, policy=ag.policy, break_when_any_done=False)  # [num_envs, T]
        return cfg, ag, batch

    yield _make
    for e in made:
        e.close()


def _icm(cfg, agent, **fields) -> ICM:
    icm = ICM(ICM.Config(**fields), cfg)
    icm.on_agent_built(agent)
    return icm


def test_running_moments_match_the_variance_of_everything_seen():
    g = torch.Generator().manual_seed(0)
    chunks = [torch.randn(n, generator=g) * 3 + 1 for n in (5, 1, 17, 8)]
    m = RunningMoments()
    for c in chunks:
        m.update(c)
    allx = torch.cat(chunks).double()
    assert m.count == 31
    assert m.mean == pytest.approx(float(allx.mean()))
    assert m.std == pytest.approx(float(allx.std(unbiased=False)))


def test_intrinsic_reward_formula_and_normalised_bonus(setup):
    cfg, agent, batch = setup("dqn")
    icm = _icm(cfg, agent, beta=2.0)
    r_ext = batch["next", "reward"].clone()
    icm.on_batch_collected(batch.clone(), agent)  # builds the nets (and trains them once)
    nets = copy.deepcopy(icm.nets)  # the module state before the second batch
    moments = copy.deepcopy(icm.moments)
    b = batch.clone()
    out = icm.on_batch_collected(b, agent)
    obs, nxt = batch["observation"].reshape(-1, 6), batch["next", "observation"].reshape(-1, 6)
    act = batch["action"].reshape(-1)
    with torch.no_grad():
        phi_next = nets.encode(nxt)
        pred = nets.forward_model(
            torch.cat([nets.encode(obs), torch.nn.functional.one_hot(act, agent.n_actions).float()], -1)
        )
        r_int = 0.5 * (pred - phi_next).square().sum(-1)
    moments.update(r_int)
    expected = r_ext + 2.0 * (r_int / (moments.std + 1e-8)).reshape(r_ext.shape)
    torch.testing.assert_close(b["next", "reward"], expected)
    assert out["icm/intrinsic_reward"] == pytest.approx(float(r_int.mean()), rel=1e-5)
    assert out["icm/extrinsic_reward"] == pytest.approx(float(r_ext.mean()))


def test_beta_zero_leaves_rewards_and_the_global_rng_untouched(setup):
    cfg, agent, batch = setup("dqn")
    icm = _icm(cfg, agent, beta=0.0)
    b = batch.clone()
    rng = torch.get_rng_state()
    out = icm.on_batch_collected(b, agent)
    assert torch.equal(torch.get_rng_state(), rng)  # own generator and forked init: actions unaffected
    assert torch.equal(b["next", "reward"], batch["next", "reward"])
    assert out["icm/intrinsic_reward"] > 0


def test_bonus_reaches_ppo_advantages(setup):
    cfg, agent, batch = setup("ppo")
    b0, b1 = batch.clone(), batch.clone()
    _icm(cfg, agent, beta=0.0).on_batch_collected(b0, agent)
    _icm(cfg, agent, beta=3.0).on_batch_collected(b1, agent)  # same seed → same nets → same r_int
    bonus = b1["next", "reward"] - b0["next", "reward"]
    assert bonus.abs().min() > 0
    agent.process_batch(b0)
    agent.process_batch(b1)
    # GAE is linear in the rewards: the advantage change is the GAE of the bonus alone (values cancel).
    zeros = torch.zeros_like(b0["state_value"])
    gae_of_bonus, _ = vec_generalized_advantage_estimate(
        cfg.agent.gamma, cfg.agent.gae_lambda, zeros, zeros, bonus, b0["next", "done"], b0["next", "terminated"]
    )
    torch.testing.assert_close(b1["advantage"] - b0["advantage"], gae_of_bonus, rtol=1e-4, atol=1e-4)
    assert (b1["advantage"] - b0["advantage"]).abs().max() > 0.1


def test_bonus_reaches_dqn_td_targets(setup):
    cfg, agent, batch = setup("dqn")
    b0, b1 = batch.clone(), batch.clone()
    _icm(cfg, agent, beta=0.0).on_batch_collected(b0, agent)
    _icm(cfg, agent, beta=1.0).on_batch_collected(b1, agent)
    agent.process_batch(b1)  # replay insertion happens after the hooks
    n = b1.numel()
    stored = agent.buffer.storage.get(torch.arange(n))
    y_with = agent.td_targets(stored)
    y_without = agent.td_targets(b0.reshape(-1))
    torch.testing.assert_close(y_with - y_without, (b1["next", "reward"] - b0["next", "reward"]).reshape(-1))


def test_episode_intrinsic_return_and_state_round_trip(setup):
    cfg, agent, batch = setup("dqn", "env.num_envs=2")
    icm = _icm(cfg, agent, beta=1.0)
    batch["next", "done"][:] = False
    batch["next", "done"][0, 9] = True  # env 0 ends an episode at t = 9, env 1 none
    b = batch.clone()
    out = icm.on_batch_collected(b, agent)
    bonus = (b["next", "reward"] - batch["next", "reward"]).squeeze(-1)
    assert out["icm/intrinsic_return"] == pytest.approx(float(bonus[0, :10].sum()), rel=1e-5)
    torch.testing.assert_close(icm.episode_int.float(), torch.stack([bonus[0, 10:].sum(), bonus[1].sum()]))
    clone = ICM(ICM.Config(beta=1.0), cfg)
    clone.on_agent_built(agent)
    clone.load_state_dict(copy.deepcopy(icm.state_dict()))  # nets are built lazily: applied at the first batch
    b2, b3 = batch.clone(), batch.clone()
    icm.on_batch_collected(b2, agent)
    clone.on_batch_collected(b3, agent)
    torch.testing.assert_close(b2["next", "reward"], b3["next", "reward"])


def test_check_rejects_bad_fields():
    cfg = OmegaConf.create({"seed": 0})
    assert "beta" in ICM.check(ICM.Config(beta=-1), cfg)
    assert "forward_weight" in ICM.check(ICM.Config(forward_weight=2), cfg)
    assert "minibatch_size" in ICM.check(ICM.Config(minibatch_size=0), cfg)
    assert ICM.check(ICM.Config(), cfg) is None
