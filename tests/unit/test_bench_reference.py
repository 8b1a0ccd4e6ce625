"""The plain-PyTorch reference PPO / DQN used by the throughput benchmark: tiny runs count frames and time the steady
state, and their GAE / TD target / TanhNormal log-probability give hand-computed answers."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest
import torch

from repdyn.bench import reference_dqn, reference_ppo


@pytest.mark.parametrize("module", [reference_ppo, reference_dqn])
def test_reference_imports_neither_torchrl_nor_tensordict_nor_repdyn(module):
    tree = ast.parse(Path(module.__file__).read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
    assert not [n for n in names if n.split(".")[0] in ("torchrl", "tensordict", "repdyn")]


def test_gae_three_step_toy():
    # env 0: truncated at t=1 (bootstraps from V(final obs) = 4.0, stops the recursion), terminated at t=2
    # env 1: no episode end, all deltas 1, so A = 1 + γλ A_next
    gamma, lam = 0.9, 0.5
    rewards = torch.tensor([[1.0, 1.0], [2.0, 1.0], [3.0, 1.0]])
    values = torch.tensor([[0.5, 0.0], [1.0, 0.0], [1.5, 0.0]])
    next_values = torch.tensor([[1.0, 0.0], [4.0, 0.0], [2.0, 0.0]])
    terminated = torch.tensor([[False, False], [False, False], [True, False]])
    done = torch.tensor([[False, False], [True, False], [True, False]])
    adv, target = reference_ppo.gae(rewards, values, next_values, terminated, done, gamma, lam)
    # δ = (1.4, 4.6, 1.5); A2 = 1.5, A1 = 4.6 (cut by done), A0 = 1.4 + 0.45·4.6 = 3.47
    expected = torch.tensor([[3.47, 1.6525], [4.6, 1.45], [1.5, 1.0]])
    torch.testing.assert_close(adv, expected)
    torch.testing.assert_close(target, expected + values)


def test_tanh_normal_log_prob_at_the_centre():
    # loc 0, scale 1, action at the centre of [-2, 2]: log N(0; 0, 1) − log|da/du| = −½ log 2π − log 2 per dimension
    policy = reference_ppo.TanhNormalPolicy(torch.full((3,), -2.0).numpy(), torch.full((3,), 2.0).numpy(), 1e-4)
    raw = math.log(math.expm1(1.0 - 1e-4))  # softplus(raw) + min_scale = 1
    out = torch.tensor([[0.0, 0.0, 0.0, raw, raw, raw]])
    logp = policy.log_prob(out, torch.zeros(1, 3))
    torch.testing.assert_close(logp, torch.tensor([3 * (-0.5 * math.log(2 * math.pi) - math.log(2.0))]))


def test_td_target_known_case():
    reward = torch.tensor([1.0, -1.0])
    terminated = torch.tensor([False, True])
    next_q = torch.tensor([[0.5, 2.0, -1.0], [10.0, 20.0, 30.0]])
    torch.testing.assert_close(reference_dqn.td_target(reward, terminated, next_q, 0.9), torch.tensor([2.8, -1.0]))


def test_ppo_reference_tiny_run_counts_frames_and_truncations():
    # 8-step episodes: every CartPole episode of the random-ish policy is truncated or ends sooner (final-obs path)
    res = reference_ppo.run(
        "CartPole-v1", total_frames=256, num_envs=2, frames_per_env=64, epochs=1, max_episode_steps=8
    )
    assert res["frames"] == 256 and res["batches"] == 2 and res["steady_frames"] == 128
    assert res["grad_steps"] == 2 * 1 * (128 // 64)
    assert math.isfinite(res["steady_sps"]) and res["steady_sps"] > 0
    assert res["episodes"] >= (256 - 2 * 7) // 8 and 1.0 <= res["mean_return"] <= 8.0
    assert res["wall"] >= res["steady_wall"] > 0


def test_dqn_reference_tiny_run_counts_frames_and_gradient_steps():
    res = reference_dqn.run("Acrobot-v1", total_frames=300, num_envs=1, minibatch_size=64, learning_starts=100)
    assert res["frames"] == 300
    # training starts on the step that brings the replay to 100 transitions: 201 steps, one gradient step each
    assert res["frames_after_learning_starts"] == 201 and res["grad_steps"] == 201
    assert res["steady_sps"] == res["sps_after_learning_starts"]
    assert math.isfinite(res["steady_sps"]) and res["steady_sps"] > 0
    assert math.isfinite(res["sps_before_learning_starts"]) and res["sps_before_learning_starts"] > 0


@pytest.mark.parametrize("module", [reference_ppo, reference_dqn])
def test_cli_help_exits_zero(module, capsys):
    with pytest.raises(SystemExit) as exc:
        module.main(["--help"])
    assert exc.value.code == 0
    assert "steps/s" in capsys.readouterr().out
