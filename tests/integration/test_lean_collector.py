"""The lean collector (train.collector=lean, the default) gives torchrl's Collector batches for the same seed.

Compared key by key: integer and boolean keys exactly, float keys to 1e-6 (the TanhNormal log-probability is the
same formula evaluated on a differently shaped call, which rounds differently in the last float32 bit), then the
first update on each batch, then a whole 3-batch CartPole run's history.
"""

from __future__ import annotations

import pytest
import torch

from repdyn.agents import build_agent
from repdyn.collection import make_collector
from repdyn.envs.make import make_env
from repdyn.envs.obs_norm import add_frozen_obs_norm
from repdyn.interventions import Hooks
from tests.conftest import history, run_cli, strip_perf

TOL = {"rtol": 1e-6, "atol": 1e-6}


def _build(cfg, kind: str, reseed: int | None = None):
    torch.manual_seed(cfg.seed)
    env = make_env(cfg.env, cfg.seed)
    if cfg.env.obs_norm:
        add_frozen_obs_norm(env, cfg.env.obs_norm_steps)
    agent = build_agent(cfg, env)
    collector = make_collector(env, agent, cfg.env.num_envs * cfg.env.frames_per_env, kind)
    if reseed is not None:  # torchrl's Collector draws from the global RNG while it probes the policy at build time
        torch.manual_seed(reseed)
    return agent, collector


def _assert_same_batch(a, b) -> None:
    keys = set(a.keys(True, True))
    assert keys == set(b.keys(True, True))
    assert a.batch_size == b.batch_size
    for key in keys:
        x, y = a.get(key), b.get(key)
        assert x.dtype == y.dtype and x.shape == y.shape, key
        if x.is_floating_point():
            torch.testing.assert_close(x, y, **TOL, msg=lambda m, k=key: f"{k}: {m}")
        else:
            assert torch.equal(x, y), key


def _collect(cfg, kind: str, n: int, reseed: int | None = None):
    agent, collector = _build(cfg, kind, reseed)
    it = iter(collector)
    batches = [next(it) for _ in range(n)]
    collector.shutdown()
    return agent, batches


@pytest.mark.parametrize(
    "overrides",
    [
        ["env=classic/cartpole"],
        ["env=mujoco/hopper", "env.frames_per_env=256", "env.obs_norm_steps=512"],
    ],
    ids=["cartpole", "hopper"],
)
def test_first_batches_and_first_update_identical(compose, overrides) -> None:
    cfg = compose([*overrides, "logger=none", "agent.epochs=2"])
    (agent_t, torchrl), (agent_l, lean) = (_collect(cfg, kind, 2) for kind in ("torchrl", "lean"))
    for a, b in zip(torchrl, lean, strict=True):
        _assert_same_batch(a, b)
    assert int(lean[0]["next", "done"].sum()) > 0  # the comparison covers episode ends (reset observations, ids)
    results = []
    for agent, batch in ((agent_t, torchrl[0]), (agent_l, lean[0])):
        torch.manual_seed(123)
        agent.process_batch(batch)
        results.append(agent.update(batch, batch.numel(), Hooks([])))
    (rt, rl) = results
    assert rt.scalars.keys() == rl.scalars.keys()
    for key, value in rt.scalars.items():
        assert rl.scalars[key] == pytest.approx(value, rel=1e-6, abs=1e-6), key
    torch.testing.assert_close(rt.ratios, rl.ratios, **TOL)


def test_dqn_batches_identical(compose) -> None:
    cfg = compose(["env=classic/acrobot", "agent=dqn", "env.frames_per_env=64", "agent.eps_frames=64", "logger=none"])
    (_, torchrl), (agent, lean) = (_collect(cfg, kind, 2, reseed=7) for kind in ("torchrl", "lean"))
    for a, b in zip(torchrl, lean, strict=True):
        _assert_same_batch(a, b)
    explored = lean[0]["action"] != lean[0]["action_value"].argmax(-1)
    assert explored.any()  # ε = 1 at the start: the uniform draws are compared too


def test_atari_batches_identical(compose) -> None:
    cfg = compose(["env=atari/phoenix", "env.num_envs=2", "env.frames_per_env=8", "logger=none"])
    (_, torchrl), (_, lean) = (_collect(cfg, kind, 2) for kind in ("torchrl", "lean"))
    for a, b in zip(torchrl, lean, strict=True):
        _assert_same_batch(a, b)
    assert lean[0]["observation"].dtype == torch.uint8
    assert ("next", "episode_reward_raw") in lean[0].keys(True)


def test_three_batch_history_identical(tmp_path) -> None:
    runs = {}
    for kind in ("torchrl", "lean"):
        args = ["env=classic/cartpole", "train.total_frames=1536", "logger=none", f"train.collector={kind}"]
        proc = run_cli(*args, f"hydra.run.dir={tmp_path / kind}")
        assert proc.returncode == 0, proc.stderr[-2000:]
        runs[kind] = strip_perf(history(tmp_path / kind))
    assert len(runs["lean"]) >= 3
    assert any("batch_end/actor/effective_rank" in r for r in runs["lean"])  # metrics=default ran
    assert runs["lean"] == runs["torchrl"]
