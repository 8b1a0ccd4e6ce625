"""ALE throughput in one run: raw vector env, our torchrl env, GymWrapper, Collector + Nature CNN, bare update.

``python -m repdyn.bench.atari [--game ALE/Phoenix-v5] [--steps 400] [--batches 2]`` prints agent steps/s (8 envs,
Moalla et al. 2024 App. B Table 2 settings) for

1. ``raw``: ale-py ``AtariVectorEnv.step`` with random numpy actions (the ceiling);
2. ``repdyn env``: :func:`repdyn.envs.atari.make_atari_env` stepped by ``EnvBase.rollout`` with random actions;
3. ``GymWrapper``: torchrl's ``GymWrapper`` on the same vector env (``SameStep`` + ``VecGymEnvTransform``), the
   alternative the module docstring of :mod:`repdyn.envs.atari` rejects on this measurement;
4. ``Collector``: ``torchrl.collectors.Collector`` on our env with the PPO collection policy (actor and critic Nature
   CNNs from :mod:`repdyn.agents.networks`, categorical actions), 8 × 128 steps per batch;
5. ``bare update``: a plain PyTorch forward/backward/Adam step of one Nature CNN, and of an actor + critic pair, on a
   256-state uint8 minibatch (the per-minibatch cost the PPO update is compared with);
6. ``PPO agent update`` (``--ppo-epochs``, 0 skips it; :func:`bench_ppo_atari`): the real
   :meth:`repdyn.agents.ppo.PPOAgent.update` per minibatch vs the bare actor + critic step, and its share of the wall
   time of a batch at 4, 6 and 8 epochs.

Rows 4-5 run in child processes twice: with OpenMP's default wait policy and with ``OMP_WAIT_POLICY=PASSIVE``. The
variable is read when libgomp loads (at ``import torch``), so only a fresh process can show its effect. It matters
here: by default torch's idle OpenMP threads spin and starve ale-py's C++ emulator threads on a 2-core machine (we
measured the collector ≈8× slower). Ratios are to the raw rate measured in the same run (the machine is shared, so
absolute numbers drift).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from types import SimpleNamespace

import numpy as np
import torch

from repdyn.bench import compose_train, median_time
from repdyn.envs.atari import ale_vector_env_kwargs, make_atari_env
from repdyn.models.cnn import NatureCNN
from repdyn.progress import progress_bar

NUM_ENVS = 8


def _rate(fn: Callable[[], object], n: int, label: str, warmup: int = 5) -> tuple[float, float]:
    """(calls per wall second, main-thread CPU ms per call) of ``fn`` over ``n`` timed calls.

    The main-thread CPU time excludes ale-py's emulator threads and time spent waiting for them, so it isolates the
    Python-side cost of a wrapper and is far less sensitive to other load on a shared machine than the wall rate.
    """
    for _ in range(warmup):
        fn()
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    for _ in progress_bar(range(n), desc=label, leave=False):
        fn()
    return n / (time.perf_counter() - wall0), (time.thread_time() - cpu0) / n * 1e3


def raw_vector_env(game: str, steps: int) -> tuple[float, float]:
    from ale_py.vector_env import AtariVectorEnv

    vec = AtariVectorEnv(**ale_vector_env_kwargs(game, NUM_ENVS))
    vec.reset(seed=0)
    rng = np.random.default_rng(0)
    n = vec.single_action_space.n
    rate, cpu_ms = _rate(lambda: vec.step(rng.integers(0, n, NUM_ENVS)), steps, "raw AtariVectorEnv")
    vec.close()
    return rate * NUM_ENVS, cpu_ms


def _torchrl_env_rate(env, steps: int, label: str) -> tuple[float, float]:
    """Random-action stepping the way collectors do it (``step_and_maybe_reset``), without storing a rollout."""
    state = {"td": env.reset()}

    def step() -> None:
        td = state["td"].set("action", env.action_spec.rand())
        _, state["td"] = env.step_and_maybe_reset(td)

    rate, cpu_ms = _rate(step, steps, label)
    env.close()
    return rate * NUM_ENVS, cpu_ms


def repdyn_env(game: str, steps: int) -> tuple[float, float]:
    return _torchrl_env_rate(make_atari_env(game, NUM_ENVS, 0), steps, "repdyn env")


def gym_wrapper_env(game: str, steps: int) -> tuple[float, float]:
    from ale_py.vector_env import AtariVectorEnv
    from torchrl.envs import GymWrapper

    torchrl_log = logging.getLogger("torchrl")
    level = torchrl_log.level
    torchrl_log.setLevel(logging.WARNING)  # its info-reader spec inference logs on every construction
    try:
        env = GymWrapper(AtariVectorEnv(**ale_vector_env_kwargs(game, NUM_ENVS)), categorical_action_encoding=True)
    finally:
        torchrl_log.setLevel(level)
    return _torchrl_env_rate(env, steps, "GymWrapper")


def collector_with_cnn_policy(game: str, batches: int, steps_per_env: int = 128) -> float:
    from repdyn.agents.networks import ActorNet, CriticNet, build_collector_policy
    from repdyn.collection import make_collector

    env = make_atari_env(game, NUM_ENVS, 0)
    actor = ActorNet(NatureCNN(4, env.num_actions, "relu", head_gain=0.01), continuous=False)
    critic = CriticNet(NatureCNN(4, 1, "relu"))
    policy = build_collector_policy(actor, critic, env.action_spec)
    frames = NUM_ENVS * steps_per_env
    collector = make_collector(env, SimpleNamespace(policy=policy), frames, "torchrl")
    it = iter(collector)
    next(it)  # warm-up batch (first reset, lazy buffers)
    start = time.perf_counter()
    for _ in progress_bar(range(batches), desc="Collector + Nature-CNN actor/critic", leave=False):
        next(it)
    rate = batches * frames / (time.perf_counter() - start)
    collector.shutdown()
    env.close()
    return rate


def bare_cnn_step(
    nets: Sequence[torch.nn.Module], opts: Sequence[torch.optim.Optimizer], obs: torch.Tensor, target: torch.Tensor
) -> None:
    """One plain gradient step per network (forward, squared error, backward, clip at 0.5, Adam): the floor of a PPO
    minibatch step on Nature CNNs."""
    for net, opt in zip(nets, opts, strict=True):
        out, _, _ = net(obs)
        loss = (out.mean(-1) - target).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 0.5)
        opt.step()


def bare_update(steps: int, pair: bool, minibatch: int = 256, num_actions: int = 8) -> float:
    """Minibatch steps/s of plain PyTorch: uint8 frames → Nature CNN(s) → loss → backward → Adam (lr 2.5e-4)."""
    torch.manual_seed(0)
    nets = [NatureCNN(4, num_actions)] + ([NatureCNN(4, 1)] if pair else [])
    opts = [torch.optim.Adam(net.parameters(), lr=2.5e-4) for net in nets]
    obs = torch.randint(0, 256, (minibatch, 4, 84, 84), dtype=torch.uint8)
    target = torch.randn(minibatch)

    return _rate(
        lambda: bare_cnn_step(nets, opts, obs, target),
        steps,
        "bare update" + (" (actor+critic)" if pair else ""),
        warmup=2,
    )[0]


def bench_ppo_atari(game: str, repeats: int, epochs: int) -> dict[str, float]:
    """The PPO agent's update per minibatch vs a bare actor + critic Nature-CNN step on the same 256 frames, and the
    collection time of one batch (Moalla et al. 2024 App. B Table 2: 8 envs × 128 steps, minibatch 256): medians
    over ``repeats`` batches of ``epochs`` epochs each."""
    from repdyn.agents import build_agent
    from repdyn.collection import make_collector
    from repdyn.envs.make import make_env
    from repdyn.interventions import Hooks
    from repdyn.models.cnn import NatureCNN

    slug = game.split("/")[1].split("-")[0].lower()
    cfg = compose_train([f"env=atari/{slug}", "agent=ppo_atari", "model=cnn", "logger=none", f"agent.epochs={epochs}"])
    env = make_env(cfg.env, 0)
    torch.manual_seed(0)
    agent = build_agent(cfg, env)
    hooks = Hooks([])
    frames = cfg.env.num_envs * cfg.env.frames_per_env
    collector = make_collector(env, agent, frames)
    it = iter(collector)
    next(it)  # first reset, lazy buffers
    collect_times, update_times = [], []
    mb = cfg.agent.minibatch_size
    per_epoch = frames // mb
    n_actions = int(env.action_spec.space.n)
    actor, critic = NatureCNN(4, n_actions), NatureCNN(4, 1)
    opts = [torch.optim.Adam(n.parameters(), lr=2.5e-4, eps=1e-5) for n in (actor, critic)]
    obs = torch.randint(0, 256, (mb, 4, 84, 84), dtype=torch.uint8)
    target = torch.randn(mb)

    def bare() -> None:  # actor + critic: forward, loss, backward, clip, Adam — the floor of one PPO minibatch
        bare_cnn_step((actor, critic), opts, obs, target)

    bare_times = []
    for r in progress_bar(range(repeats), desc="PPO-Atari batch: collect, update, bare", leave=False):
        t = time.perf_counter()
        batch = next(it)
        collect_times.append(time.perf_counter() - t)
        agent.process_batch(batch)
        t = time.perf_counter()
        agent.update(batch, frames * (r + 1), hooks)  # epochs × per_epoch minibatches
        update_times.append((time.perf_counter() - t) / (epochs * per_epoch))
        bare_times.append(median_time(bare, per_epoch, warmup=1 if r == 0 else 0))
    collector.shutdown()
    env.close()
    return {
        "ppo_collect_s_per_batch": statistics.median(collect_times),
        "ppo_update_s_per_minibatch": statistics.median(update_times),
        "bare_s_per_minibatch": statistics.median(bare_times),
        "minibatches_per_epoch": float(per_epoch),
        "frames_per_batch": float(frames),
    }


def _child(omp_passive: bool, args: argparse.Namespace) -> dict[str, float]:
    """Collector and bare-update rates from a fresh interpreter with or without ``OMP_WAIT_POLICY=PASSIVE``."""
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if omp_passive:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    cmd = [sys.executable, "-m", "repdyn.bench.atari", "--child", "--game", args.game, "--batches", str(args.batches)]
    cmd += ["--update-steps", str(args.update_steps), "--threads", str(args.threads)]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _child_main(args: argparse.Namespace) -> None:
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    res = {
        "collector_cnn_sps": collector_with_cnn_policy(args.game, args.batches),
        "bare_update_one_cnn_per_s": bare_update(args.update_steps, pair=False),
        "bare_update_actor_critic_per_s": bare_update(args.update_steps, pair=True),
    }
    print(json.dumps(res))


def run(args: argparse.Namespace) -> dict[str, float]:
    """Medians over ``args.repeats`` interleaved repetitions (the machine is shared; load moves minute to minute).

    Keys: ``<row>_sps`` (agent steps/s), ``<row>_cpu_ms_per_step`` (main-thread CPU), ``collector_cnn_sps_omp_<p>``,
    ``bare_update_{one_cnn,actor_critic}_per_s_omp_<p>`` (minibatch steps/s) for p in {default, passive}.
    """
    samples: dict[str, list[float]] = {}
    for _ in progress_bar(range(args.repeats), desc="repeats", leave=False):
        for key, fn in [("raw_env", raw_vector_env), ("repdyn_env", repdyn_env), ("gym_wrapper", gym_wrapper_env)]:
            sps, cpu_ms = fn(args.game, args.steps)
            samples.setdefault(f"{key}_sps", []).append(sps)
            samples.setdefault(f"{key}_cpu_ms_per_step", []).append(cpu_ms)
        for passive in (False, True):
            suffix = "_omp_passive" if passive else "_omp_default"
            for k, v in _child(passive, args).items():
                samples.setdefault(k + suffix, []).append(v)
    return {k: float(np.median(v)) for k, v in samples.items()}


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(prog="python -m repdyn.bench.atari", description=__doc__.splitlines()[0])
    parser.add_argument("--game", default="ALE/Phoenix-v5")
    parser.add_argument("--steps", type=int, default=300, help="vector steps per env-only measurement")
    parser.add_argument("--batches", type=int, default=2, help="timed collector batches of 8 × 128 steps")
    parser.add_argument("--update-steps", type=int, default=6, help="timed bare minibatch steps")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved repetitions (medians are printed)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads in the children (0: PyTorch's default)")
    parser.add_argument("--ppo-epochs", type=int, default=4, help="epochs of the timed PPO-agent update (0: skip)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("steps", "batches", "update_steps", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.child:
        _child_main(args)
        return {}
    res = run(args)
    raw, raw_cpu = res["raw_env_sps"], res["raw_env_cpu_ms_per_step"]
    threads = args.threads if args.threads > 0 else torch.get_num_threads()
    print(f"ALE throughput, {args.game}, {NUM_ENVS} envs, torch threads {threads}, medians of {args.repeats} repeats")
    rows = [("raw_env", "raw AtariVectorEnv"), ("repdyn_env", "repdyn env (EnvBase)"), ("gym_wrapper", "GymWrapper")]
    for key, label in rows:
        sps, cpu_ms = res[f"{key}_sps"], res[f"{key}_cpu_ms_per_step"]
        print(
            f"  {label + ', random actions':<41}{sps:7.0f} agent steps/s  {sps / raw:.2f}× raw   "
            f"main-thread CPU {cpu_ms:.2f} ms/step ({cpu_ms / raw_cpu:.1f}× raw)"
        )
    for policy in ("default", "passive"):
        sps = res[f"collector_cnn_sps_omp_{policy}"]
        print(f"  {'Collector + CNN actor/critic, OMP ' + policy:<41}{sps:7.0f} agent steps/s  {sps / raw:.2f}× raw")
    for policy in ("default", "passive"):
        one, pair = res[f"bare_update_one_cnn_per_s_omp_{policy}"], res[f"bare_update_actor_critic_per_s_omp_{policy}"]
        print(
            f"  bare Adam step on 256 states, OMP {policy:<7}: 1 Nature CNN {1e3 / one:5.0f} ms, "
            f"actor+critic {1e3 / pair:5.0f} ms ({pair:.2f}/s)"
        )
    for policy in ("default", "passive"):
        sps, pair = res[f"collector_cnn_sps_omp_{policy}"], res[f"bare_update_actor_critic_per_s_omp_{policy}"]
        collect_s, epoch_s = 1024 / sps, 1024 / 256 / pair
        print(
            f"  per 1024-step batch, OMP {policy:<7}: collection {collect_s:5.2f} s, bare-update epoch {epoch_s:5.2f} s"
            f" → with 4 epochs the bare update is {4 * epoch_s / (collect_s + 4 * epoch_s):.0%} of wall time"
        )
    if args.ppo_epochs > 0:  # the real agent: its update per minibatch vs the bare step, and its share of wall time
        ppo = bench_ppo_atari(args.game, args.batches, args.ppo_epochs)
        res.update({f"ppo_{k}": v for k, v in ppo.items()})
        upd, bare, coll = ppo["ppo_update_s_per_minibatch"], ppo["bare_s_per_minibatch"], ppo["ppo_collect_s_per_batch"]
        print(
            f"  PPO agent update per 256-minibatch {upd * 1e3:.0f} ms = {upd / bare:.2f}× the bare actor+critic step "
            f"({bare * 1e3:.0f} ms, same run; target ≤ 1.10×)"
        )
        for epochs in (4, 6, 8):
            u = epochs * ppo["minibatches_per_epoch"] * upd
            print(
                f"  update share of wall time at {epochs} epochs: {u / (u + coll):.0%} (collection {coll:.2f} s/batch)"
            )
    return res


if __name__ == "__main__":
    main()
