"""GymVectorEnv (src/repdyn/envs/gym_vector.py): every recorded transition is one step of one episode of the
underlying gymnasium env — checked step by step against a reference ``gym.make`` env driven with the same actions."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from torchrl.envs.utils import check_env_specs

from repdyn.envs.gym_vector import make_gym_vector_env


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Hopper-v5"])
def test_transitions_match_a_reference_env_across_episode_ends(env_id):
    seed, n, steps = 3, 2, 400
    env = make_gym_vector_env(env_id, n, seed)
    check_env_specs(env)  # steps the env: seed again, as a user (or a resume) does
    env.set_seed(seed)
    td = env.rollout(steps, break_when_any_done=False)  # [n, steps]
    done = td["next", "done"].squeeze(-1)
    assert done.any(dim=1).all(), "every sub-env should finish an episode in 400 random steps"
    for i in range(n):
        ref = gym.make(env_id)
        obs, _ = ref.reset(seed=seed + i)  # gymnasium's vector convention: sub-env i gets seed + i
        ret = 0.0
        for t in range(steps):
            np.testing.assert_allclose(td["observation"][i, t].numpy(), obs.astype(np.float32), rtol=0, atol=0)
            action = td["action"][i, t].numpy()
            obs, reward, term, trunc, _ = ref.step(action if env_id != "CartPole-v1" else int(action))
            ret += reward
            # the recorded next observation is the step's own (terminal) one, never the next episode's first
            np.testing.assert_allclose(td["next", "observation"][i, t].numpy(), obs.astype(np.float32), atol=0)
            assert td["next", "reward"][i, t].item() == pytest.approx(reward, rel=1e-6)
            assert td["next", "terminated"][i, t].item() == term
            assert td["next", "truncated"][i, t].item() == (trunc and not term)
            if term or trunc:
                assert td["next", "episode_reward"][i, t].item() == pytest.approx(ret, rel=1e-5)
                obs, _ = ref.reset()
                ret = 0.0
    env.close()


def test_specs_and_dtypes():
    env = make_gym_vector_env("Hopper-v5", 2, 0)
    assert env.observation_spec["observation"].dtype == torch.float32  # MuJoCo's float64 cast once, in the env
    assert env.action_spec.shape == (2, 3) and env.action_spec.space.low.min() == -1
    cart = make_gym_vector_env("CartPole-v1", 2, 0)
    assert cart.action_spec.dtype == torch.int64 and cart.action_spec.space.n == 2 and cart.action_spec.shape == (2,)
    env.close()
    cart.close()


@pytest.mark.parametrize("env_id", ["Hopper-v5", "CartPole-v1"])
def test_saved_simulator_state_replays_the_same_future(env_id):
    """repdyn.envs.state (the requeue path): MuJoCo physics via mj_getState, classic control pickled, TimeLimit
    counters and autoreset flags included — after a restore, the same actions give the same observations, rewards
    and episode ends, bit for bit, across episode boundaries."""
    from repdyn.envs.state import get_env_state, set_env_state

    env = make_gym_vector_env(env_id, 2, 5)
    td = env.reset()
    gen = torch.Generator().manual_seed(0)

    def rand_action():
        spec = env.action_spec
        if spec.dtype == torch.int64:
            return torch.randint(0, int(spec.space.n), spec.shape, generator=gen)
        return torch.rand(spec.shape, generator=gen) * 2 - 1

    for _ in range(37):
        td.set("action", rand_action())
        _, td = env.step_and_maybe_reset(td)
    blob, carried = get_env_state(env), td.clone()
    actions = [rand_action() for _ in range(300)]

    def future(start):
        out, cur = [], start.clone()
        for a in actions:
            cur.set("action", a)
            step, cur = env.step_and_maybe_reset(cur)
            out.append(step["next"].select("observation", "reward", "done").clone())
        return torch.stack(out)

    first = future(carried)
    assert first["done"].any(), "the replayed stretch should cross an episode end"
    assert set_env_state(env, blob)
    second = future(carried)
    assert (first == second).all()
    env.close()


def test_step_matches_sync_vector_env_step_including_its_autoreset_state():
    """step_tensors steps the sub-envs itself: outputs and the vector env's carried state (post-reset observations,
    autoreset flags, which partial resets and saved states read) equal SyncVectorEnv.step's, through terminations
    and truncations of single sub-envs."""
    from repdyn.envs.gym_vector import GymVectorEnv, sync_vector_env

    n, seed = 3, 5
    ours = GymVectorEnv(sync_vector_env("CartPole-v1", n, max_episode_steps=15), seed)
    theirs = sync_vector_env("CartPole-v1", n, max_episode_steps=15)
    ours.reset_tensors()
    theirs.reset(seed=seed)
    actions = torch.randint(0, 2, (200, n), generator=torch.Generator().manual_seed(0))
    terminations = truncations = mixed = 0
    for a in actions:
        out = ours.step_tensors(a)
        obs, reward, term, trunc, info = theirs.step(a.numpy())
        final = obs.copy()
        for i in np.flatnonzero(info.get("_final_obs", [])):
            final[i] = info["final_obs"][i]
        np.testing.assert_array_equal(out["observation"].numpy(), final.astype(np.float32))
        np.testing.assert_array_equal(out["reward"].squeeze(-1).numpy(), reward.astype(np.float32))
        np.testing.assert_array_equal(out["terminated"].squeeze(-1).numpy(), term)
        np.testing.assert_array_equal(out["truncated"].squeeze(-1).numpy(), trunc & ~term)
        np.testing.assert_array_equal(np.stack(ours._env._env_obs), np.stack(theirs._env_obs))
        np.testing.assert_array_equal(ours._env._autoreset_envs, theirs._autoreset_envs)
        terminations += int(term.sum())
        truncations += int((trunc & ~term).sum())
        mixed += int((term | trunc).any() and not (term | trunc).all())  # some sub-envs end, others go on
    assert terminations >= 5 and truncations >= 5 and mixed >= 5, (terminations, truncations, mixed)
    ours.close()
    theirs.close()
