"""TD-NTK study data: toy values, Monte-Carlo returns, the cart-pole dataset, the checkpoint policy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from repdyn.theory.td_envs import (
    cartpole_dataset,
    load_checkpoint_policy,
    mc_returns,
    rollout_episode,
    toy_dataset,
    toy_returns,
)


def _lean_right(states: np.ndarray) -> np.ndarray:  # a simple deterministic policy: push towards the pole's lean
    return (np.atleast_2d(states)[:, 2] > 0).astype(int)


def test_toy_dataset_matches_appendix_d1() -> None:
    ds = toy_dataset(1.0)
    s = ds.x[:, 0]
    assert torch.allclose(ds.xp[:, 0] - s, torch.full_like(s, 0.25))
    assert torch.equal(ds.r.nonzero().flatten(), torch.tensor([12, 13, 14, 15]))  # s ∈ [0.75, 1): s' ∈ [1, 1.25)
    assert torch.equal((ds.g == 0).nonzero().flatten(), torch.arange(16, 21))  # s ≥ 1: s' ≥ 1.25 terminates
    assert torch.equal(ds.ys[:21], (s < 1).double())  # γ = 1: V = 1 below 1, else 0
    # γ = 0.5: reward after k = ceil((1 − s)/0.25) steps, V = 0.5^(k − 1).
    assert toy_returns(np.array([0.0, 0.5, 0.8]), 0.5).tolist() == pytest.approx([0.125, 0.5, 1.0])


def test_mc_return_is_the_discounted_episode_length() -> None:
    states, actions, terms = rollout_episode(_lean_right, seed=3, max_steps=500)
    assert terms[-1] and len(actions) < 500  # this policy fails eventually
    gamma, T = 0.9, len(actions)
    got = mc_returns(_lean_right, states[:1], gamma, horizon=500)[0]
    assert got == pytest.approx((1 - gamma**T) / (1 - gamma))
    # From the k-th state of the same (deterministic) episode the return is that of the remaining T − k steps.
    k = T // 2
    assert mc_returns(_lean_right, states[k : k + 1], 1.0, horizon=500)[0] == pytest.approx(T - k)


def test_cartpole_dataset_layout() -> None:
    ds = cartpole_dataset(_lean_right, 0.99, 40, 5, 5, horizon=100, seed=0)
    assert ds.x.shape == (40, 6) and ds.xs.shape == (10, 6) and ds.split == ["train"] * 5 + ["test"] * 5
    assert torch.allclose(ds.x[:, 4:].sum(1), torch.ones(40, dtype=torch.float64))  # one-hot actions
    assert set(ds.g.unique().tolist()) <= {0.0, 0.99} and ds.info["n_terminal"] == int((ds.g == 0).sum())
    assert bool((ds.ys >= 1).all()) and bool((ds.ys <= 100).all())


def test_checkpoint_policy_from_a_repdyn_run_dir(tmp_path: Path) -> None:
    from repdyn.agents.networks import ActorNet, build_body

    model_cfg = OmegaConf.create({"name": "mlp", "hidden": [8, 8], "activation": "tanh", "min_scale": 1e-4})
    torch.manual_seed(0)
    actor = ActorNet(build_body(model_cfg, (4,), 2, 0.01), False)
    (tmp_path / "checkpoints").mkdir()
    torch.save({"agent": {"actor": actor.state_dict()}}, tmp_path / "checkpoints" / "last.pt")
    cfg = {"env": {"id": "CartPole-v1", "obs_norm": False}, "model": OmegaConf.to_container(model_cfg)}
    OmegaConf.save(OmegaConf.create(cfg), tmp_path / "config.yaml")
    policy, info = load_checkpoint_policy(tmp_path)
    s = np.random.default_rng(0).normal(size=(16, 4))
    with torch.no_grad():
        want = actor(torch.as_tensor(s, dtype=torch.float32))[0].argmax(-1).numpy()
    assert (policy(s) == want).all() and info["policy_source"].startswith("checkpoint")
    with pytest.raises(ValueError, match="must hold"):
        load_checkpoint_policy(tmp_path / "missing")
