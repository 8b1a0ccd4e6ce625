"""PPO throughput on the paper's MuJoCo setting (Hopper, 2 envs × 1024, minibatch 64, 10 epochs; docs/experiments.md).

Measured in one run and printed with ratios:
- raw env rate: gymnasium ``SyncVectorEnv`` stepping pre-sampled random actions (the physical limit);
- collection: ``torchrl.collectors.Collector`` with our actor+critic policy (frames/s, and its ratio to raw), as the
  training loop builds it, and with torchrl's ``GymWrapper`` env in place of
  :class:`repdyn.envs.gym_vector.GymVectorEnv` (the reason that class exists);
- update: our minibatch loop (:meth:`repdyn.agents.ppo.PPOAgent.update`) vs ``torchrl.objectives.ClipPPOLoss`` driven
  the same way (grad steps/s; the reason ``agents/ppo.py`` writes its loop is per-sample ratios, not speed — this
  shows what it costs or saves);
- end to end: a real run (collection + update + default metrics + logging), frames/s and ratio to raw.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from repdyn.bench import compose_train


def gym_wrapper_env(env_cfg, seed: int):
    """The reference: torchrl's ``GymWrapper`` on the same gymnasium vector env, with the transforms it needs to give
    the same keys (``DoubleToFloat`` for MuJoCo's float64 observations, ``StepCounter``, ``RewardSum``)."""
    from torchrl.envs import Compose, DoubleToFloat, GymWrapper, RewardSum, StepCounter, TransformedEnv

    from repdyn.envs.gym_vector import sync_vector_env

    vec = sync_vector_env(env_cfg.id, env_cfg.num_envs, env_cfg.max_episode_steps)
    env = TransformedEnv(
        GymWrapper(vec, categorical_action_encoding=True), Compose(DoubleToFloat(), StepCounter(), RewardSum())
    )
    env.set_seed(seed)
    return env


def build_pieces(cfg, reference_env: bool = False, kind: str = "torchrl"):
    """(env with frozen obs-norm, agent, collector of ``kind``) as ``repdyn.train`` builds them, seeded 0; with
    torchrl's ``GymWrapper`` env instead when ``reference_env`` (torchrl collector only)."""
    from repdyn.agents import build_agent
    from repdyn.collection import make_collector
    from repdyn.envs.make import make_env
    from repdyn.envs.obs_norm import add_frozen_obs_norm

    e = cfg.env
    torch.manual_seed(0)
    env = gym_wrapper_env(e, 0) if reference_env else make_env(e, 0)
    if e.obs_norm:
        add_frozen_obs_norm(env, e.obs_norm_steps)
    agent = build_agent(cfg, env)
    collector = make_collector(env, agent, e.num_envs * e.frames_per_env, kind)
    return env, agent, collector


def collection_rate(cfg, batches: int, **kwargs) -> tuple[float, object, object]:
    """Frames/s of ``batches`` collector batches after one warm-up batch; also (agent, last batch)."""
    env, agent, collector = build_pieces(cfg, **kwargs)
    it = iter(collector)
    batch = next(it)  # warm-up: first reset, lazy buffers
    t = time.perf_counter()
    for _ in range(batches):
        batch = next(it)
    fps = batches * batch.numel() / (time.perf_counter() - t)
    collector.shutdown()
    env.close()
    return fps, agent, batch


def _frames_per_s(step: Callable[[Any], object], actions: list[Any], num_envs: int) -> float:
    t = time.perf_counter()
    for a in actions:
        step(a)
    return len(actions) * num_envs / (time.perf_counter() - t)


def raw_env_rate(env_id: str, num_envs: int, steps: int) -> float:
    """Frames/s of gymnasium's ``SyncVectorEnv.step`` (same-step autoreset) under uniform random actions."""
    from repdyn.envs.gym_vector import sync_vector_env

    vec = sync_vector_env(env_id, num_envs)
    vec.reset(seed=0)
    vec.action_space.seed(0)
    rate = _frames_per_s(vec.step, [vec.action_space.sample() for _ in range(steps)], num_envs)
    vec.close()
    return rate


def step_tensors_rate(env_id: str, num_envs: int, steps: int) -> float:
    """Frames/s of :meth:`GymVectorEnv.step_tensors` (it steps the sub-envs itself) on the actions and seed of
    :func:`raw_env_rate`."""
    from repdyn.envs.gym_vector import GymVectorEnv, sync_vector_env

    env = GymVectorEnv(sync_vector_env(env_id, num_envs), seed=0)
    env.reset_tensors()
    space = env._env.action_space
    space.seed(0)
    rate = _frames_per_s(env.step_tensors, [torch.as_tensor(space.sample()) for _ in range(steps)], num_envs)
    env.close()
    return rate


def _clip_ppo_update(agent, batch, cfg) -> float:
    """Grad steps/s of torchrl's ClipPPOLoss on the same batch, sampler and optimizers as our update."""
    from tensordict.nn import TensorDictModule
    from torchrl.objectives import ClipPPOLoss

    from repdyn.agents.networks import rep_keys

    a = cfg.agent
    critic = TensorDictModule(agent.critic, in_keys=["observation"], out_keys=["state_value", *rep_keys("critic")])
    loss = ClipPPOLoss(
        agent.policy,
        critic,
        clip_epsilon=a.clip_eps,
        entropy_bonus=False,
        critic_coeff=a.value_coef,
        loss_critic_type="l2",
        normalize_advantage=a.normalize_advantage,
    )
    loss.set_keys(sample_log_prob="action_log_prob")
    flat = batch.select("observation", "action", "action_log_prob", "advantage", "value_target").reshape(-1)
    n = a.epochs * agent.minibatches_per_epoch
    t = time.perf_counter()
    for i in range(n):
        if i % agent.minibatches_per_epoch == 0:
            perm = torch.randperm(flat.shape[0])
        j = i % agent.minibatches_per_epoch
        mb = flat[perm[j * a.minibatch_size : (j + 1) * a.minibatch_size]]
        out = loss(mb)
        total = out["loss_objective"] + out["loss_critic"]
        for o in agent.optimizers.values():
            o.zero_grad(set_to_none=True)
        total.backward()
        for net in agent.networks.values():
            torch.nn.utils.clip_grad_norm_(net.parameters(), a.max_grad_norm)
        for o in agent.optimizers.values():
            o.step()
    return n / (time.perf_counter() - t)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m repdyn.bench ppo", description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="mujoco/hopper", help="env config option")
    parser.add_argument("--batches", type=int, default=3, help="timed collector batches")
    parser.add_argument("--e2e-frames", type=int, default=2048 * 4, help="frames of the end-to-end run")
    return parser.parse_args(None if argv is None else list(argv))


def update_rates(agent: Any, batch: Any, cfg: Any) -> dict[str, float]:
    """Our update (grad steps/s and frames/s) on ``batch``, then torchrl's ClipPPOLoss on the same batch."""
    from repdyn.interventions import Hooks

    agent.process_batch(batch)
    n_steps = cfg.agent.epochs * agent.minibatches_per_epoch
    t = time.perf_counter()
    agent.update(batch, 0, Hooks([]))
    dt = time.perf_counter() - t
    return {
        "update_grad_steps_per_s": n_steps / dt,
        "update_fps": cfg.env.num_envs * cfg.env.frames_per_env / dt,
        "clipppoloss_grad_steps_per_s": _clip_ppo_update(agent, batch, cfg),
    }


def end_to_end_fps(env_option: str, frames: int) -> float:
    """Frames/s of a real ``repdyn.train`` run of ``frames`` env steps (collection, update, default metrics, logs)."""
    from repdyn.train import run

    with tempfile.TemporaryDirectory() as d:
        cfg = compose_train(
            [f"env={env_option}", "logger=none", "train.progress=false", f"train.total_frames={frames}"]
        )
        t = time.perf_counter()
        run(cfg, d)
        return frames / (time.perf_counter() - t)


def _print_table(res: dict[str, float], cfg: Any) -> None:
    e = cfg.env
    table = Table(
        title=f"PPO throughput — {e.id}, {e.num_envs} envs × {e.frames_per_env}, "
        f"minibatch {cfg.agent.minibatch_size}, {cfg.agent.epochs} epochs (1 torch thread)"
    )
    for col in ("measure", "value", "ratio"):
        table.add_column(col)
    raw = res["raw_env_fps"]
    table.add_row("raw env (gymnasium SyncVectorEnv)", f"{raw:,.0f} frames/s", "1.00 (limit)")
    table.add_row(
        "collection: ours (GymVectorEnv + LeanCollector)",
        f"{res['collect_fps']:,.0f} frames/s",
        f"{res['collect_fps'] / raw:.2f} of raw",
    )
    table.add_row(
        "collection: torchrl GymWrapper env instead",
        f"{res['collect_gym_wrapper_fps']:,.0f} frames/s",
        f"ours = {res['collect_fps'] / res['collect_gym_wrapper_fps']:.2f}×",
    )
    table.add_row(
        "update: ours", f"{res['update_grad_steps_per_s']:,.0f} grad steps/s ({res['update_fps']:,.0f} frames/s)", ""
    )
    table.add_row(
        "update: torchrl ClipPPOLoss",
        f"{res['clipppoloss_grad_steps_per_s']:,.0f} grad steps/s",
        f"ours/ClipPPOLoss = {res['update_grad_steps_per_s'] / res['clipppoloss_grad_steps_per_s']:.2f}×",
    )
    table.add_row(
        "end to end (incl. obs-norm init, metrics)",
        f"{res['e2e_fps']:,.0f} frames/s",
        f"{res['e2e_fps'] / raw:.2f} of raw",
    )
    Console().print(table)


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    args = _parse_args(argv)
    torch.set_num_threads(1)
    cfg = compose_train([f"env={args.env}", "logger=none", "train.progress=false"])
    e = cfg.env
    res: dict[str, float] = {}
    res["raw_env_fps"] = raw_env_rate(e.id, e.num_envs, 3000)
    res["collect_gym_wrapper_fps"], _, _ = collection_rate(cfg, args.batches, reference_env=True)
    res["collect_fps"], agent, batch = collection_rate(cfg, args.batches, kind="lean")
    res.update(update_rates(agent, batch, cfg))
    res["e2e_fps"] = end_to_end_fps(args.env, args.e2e_frames)
    _print_table(res, cfg)
    return res


if __name__ == "__main__":
    main()
