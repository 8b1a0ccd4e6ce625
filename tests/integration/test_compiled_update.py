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


def test_compiled_dqn_step_matches_eager(compose) -> None:
    small = ["agent=dqn", "env=classic/acrobot", "env.frames_per_env=64", "agent.minibatch_size=32", "logger=none"]
    rows = {}
    for mode in ("off", "on"):
        agent, batches = _agent_and_batches(compose([*small, f"train.compile={mode}"]), 2)
        assert (agent.compiled is not None) == (mode == "on")
        for batch in batches:
            agent.process_batch(batch)
        replay = agent.replay_tensors()
        torch.manual_seed(3)
        rows[mode] = (torch.stack([agent.gradient_step(replay)[0] for _ in range(6)]), _params(agent))
    torch.testing.assert_close(rows["on"][0], rows["off"][0], **CLOSE)
    for a, b in zip(rows["on"][1], rows["off"][1], strict=True):
        torch.testing.assert_close(a, b, **CLOSE)
