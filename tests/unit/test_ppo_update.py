"""PPO agent pieces against their direct definitions: bootstrap values, and the written-out distributions inside
the update."""

from __future__ import annotations

import torch

from repdyn.agents import build_agent
from repdyn.collection import make_collector
from repdyn.envs.make import make_env


def cartpole_batch(compose, overrides: list[str]):
    """A CartPole PPO agent (seed 0) and the first 512-step batch it collected."""
    cfg = compose(["env=classic/cartpole", *overrides, "logger=none"])
    torch.manual_seed(0)
    env = make_env(cfg.env, 0)
    agent = build_agent(cfg, env)
    collector = make_collector(env, agent, 512)
    batch = next(iter(collector))
    collector.shutdown()
    return agent, batch


def test_next_values_equal_the_critic_on_next_observations(compose) -> None:
    """Stored rollout values stand in for V(s_{t+1}) except at truncations and the last step, where the critic runs on
    the final observation; equal to a full forward on every ("next", "observation") wherever GAE bootstraps."""
    agent, batch = cartpole_batch(compose, ["env.max_episode_steps=30"])
    truncated, terminated = batch["next", "truncated"], batch["next", "terminated"]
    assert truncated.any() and terminated.any()  # both kinds of episode end are in the batch
    agent.evaluate_rollout(batch)  # the rollout's values, one critic pass over the batch
    with torch.no_grad():
        direct = agent.critic(batch["next", "observation"])[0]
    ours = agent.next_values(batch)
    torch.testing.assert_close(ours[~terminated], direct[~terminated], rtol=1e-5, atol=1e-6)


def test_rollout_representations_kept_or_evaluated_when_read(compose) -> None:
    """Without PFO the batch holds no representations and the metrics' view evaluates them on the batch; with PFO
    (``keep_rollout_reps``) the rollout pass keeps them in the batch; both give the networks' forward outputs, next
    to the stored rollout outputs (values, the per-step distribution parameters)."""
    from repdyn.agents.networks import rep_keys

    agent, batch = cartpole_batch(compose, [])
    agent.process_batch(batch)
    assert not any(k in batch.keys(include_nested=True) for k in [*rep_keys("actor"), *rep_keys("critic")])
    kept = batch.clone()
    agent.keep_rollout_reps = True
    agent.evaluate_rollout(kept)
    assert torch.equal(kept["state_value"], batch["state_value"])
    flat, flat_kept = batch.reshape(-1), kept.reshape(-1)
    with torch.no_grad():
        for net, module in agent.networks.items():
            direct = module(flat["observation"])
            lazy, stored = agent.rollout_outputs(flat, net), agent.rollout_outputs(flat_kept, net)
            rollout = (flat["state_value"],) if net == "critic" else (flat["logits"],)
            for a, b, want in zip(lazy, stored, (*rollout, *direct[-3:]), strict=True):
                assert torch.equal(a, want) and torch.equal(b, want)
