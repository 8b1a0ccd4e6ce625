"""``train.compile=on`` gives the eager update's numbers (to float32 rounding: the fused kernels sum in another order),
consumes the same random stream, and ends a non-finite step like the eager one, parameters untouched.

Each test compiles once (~20-60 s on 2 cores without a warm inductor cache)."""

from __future__ import annotations

import pytest
import torch

from repdyn.agents import build_agent
from repdyn.agents.base import Diverged
from repdyn.collection import make_collector
from repdyn.envs.make import make_env
from repdyn.envs.obs_norm import add_frozen_obs_norm
from repdyn.interventions import Hooks

CLOSE = {"rtol": 1e-4, "atol": 1e-5}


def _agent_and_batches(cfg, n: int):
    torch.manual_seed(cfg.seed)
    env = make_env(cfg.env, cfg.seed)
    if cfg.env.obs_norm:
        add_frozen_obs_norm(env, cfg.env.obs_norm_steps)
    agent = build_agent(cfg, env)
    collector = make_collector(env, agent, cfg.env.num_envs * cfg.env.frames_per_env)
    it = iter(collector)
    batches = [next(it) for _ in range(n)]
    collector.shutdown()
    return agent, batches


def _params(agent) -> list[torch.Tensor]:
    return [p.detach().clone() for net in agent.networks.values() for p in net.parameters()]


def test_compiled_ppo_update_matches_eager(compose) -> None:
    small = ["env=mujoco/hopper", "env.frames_per_env=128", "env.obs_norm_steps=256", "agent.epochs=2", "logger=none"]
    agents = {}
    for mode in ("off", "on"):
        agent, (batch,) = _agent_and_batches(compose([*small, f"train.compile={mode}"]), 1)
        assert (agent.compiled is not None) == (mode == "on")
        agent.process_batch(batch)
        torch.manual_seed(7)
        result = agent.update(batch, batch.numel(), Hooks([]))
        after_rng = torch.rand(1)  # the same random stream was consumed (permutations, entropy samples)
        agents[mode] = (agent, batch, result, after_rng)
    (eager, _, r_eager, rng_eager), (comp, batch, r_comp, rng_comp) = agents["off"], agents["on"]
    assert torch.equal(rng_eager, rng_comp)
    for key, value in r_eager.scalars.items():
        assert r_comp.scalars[key] == pytest.approx(value, rel=1e-4, abs=1e-5), key
    torch.testing.assert_close(r_comp.ratios, r_eager.ratios, **CLOSE)
    for a, b in zip(_params(comp), _params(eager), strict=True):
        torch.testing.assert_close(a, b, **CLOSE)
    for name, opt in comp.optimizers.items():  # the optimizers' own state advanced: checkpoints see it
        state = opt.state[opt.param_groups[0]["params"][0]]
        assert float(state["step"]) == 2 * comp.minibatches_per_epoch, name
    # a non-finite loss: Diverged naming it, every parameter as it was
    before = _params(comp)
    batch.set("observation", torch.full_like(batch["observation"], float("nan")))
    with pytest.raises(Diverged, match="loss/total"):
        comp.update(batch, batch.numel(), Hooks([]))
    assert all(torch.equal(a, b) for a, b in zip(_params(comp), before, strict=True))


@pytest.mark.parametrize("target", ["hard", "soft"])
def test_compiled_dqn_update_matches_eager(compose, target: str) -> None:
    """Two 4-env-step batches → two calls of 4 fused steps each; the hard target copy every 3 steps falls inside
    both calls (after steps 3 and 6), the soft update after every step."""
    small = [
        "agent=dqn",
        "env=classic/acrobot",
        "env.num_envs=1",
        "env.frames_per_env=4",
        "agent.minibatch_size=16",
        "agent.learning_starts=16",
        f"agent.target_update={target}",
        "agent.target_update_interval=3",
        "agent.tau=0.3",
        "logger=none",
    ]
    runs = {}
    for mode in ("off", "on"):
        agent, batches = _agent_and_batches(compose([*small, f"train.compile={mode}"]), 6)
        assert (agent.compiled is not None) == (mode == "on")
        for batch in batches[:4]:
            agent.process_batch(batch)
        torch.manual_seed(3)
        results = []
        for batch in batches[4:]:
            agent.process_batch(batch)
            results.append(agent.update(batch, 100, Hooks([])).scalars)
        after_rng = torch.rand(1)  # the fused calls drew the same minibatch indices as the eager steps
        targets = [p.detach().clone() for p in agent.target_qnet.parameters()]
        runs[mode] = (results, _params(agent), targets, agent.target_steps, after_rng)
    # a non-finite loss in the fused call: Diverged naming it, nothing changed by that call
    before = _params(agent)
    agent.replay_tensors().observation.fill_(float("nan"))
    with pytest.raises(Diverged, match="loss/td"):
        agent.update(batches[-1], 100, Hooks([]))
    assert agent.target_steps == 8 and all(torch.equal(a, b) for a, b in zip(_params(agent), before, strict=True))
    (r_off, p_off, t_off, n_off, rng_off), (r_on, p_on, t_on, n_on, rng_on) = runs["off"], runs["on"]
    assert n_on == n_off == 8 and torch.equal(rng_on, rng_off)
    for s_on, s_off in zip(r_on, r_off, strict=True):
        for key in ("loss/td", "opt/qnet/grad_norm", "dqn/gradient_steps"):
            assert s_on[key] == pytest.approx(s_off[key], rel=1e-4, abs=1e-5), key
    for a, b in zip([*p_on, *t_on], [*p_off, *t_off], strict=True):
        torch.testing.assert_close(a, b, **CLOSE)
    if target == "hard":  # the last copy was after step 6: the target is not the online network
        assert not all(torch.equal(a, b) for a, b in zip(t_on, p_on, strict=True))
