"""DQN / ICM / eviction costs and the PPO-Atari update, measured in one run with ratios (issue 4).

``python -m repdyn.bench dqn [--capacity 4000] [--steps 200] [--atari-game ALE/Phoenix-v5] [--no-atari]`` prints

1. NTK eviction cost per env step (Jansson 2025 §3.7: capacity 4000, Acrobot 2×64 Q-network): the eviction writer
   inserting one transition into a full buffer (one vectorised ``ntk_diag`` over 4001 transitions + the argmin), and
   a 4-step batch (one ``ntk_diag`` per batch: exact, the network only changes between batches), vs
   torchrl's FIFO ``RoundRobinWriter``, next to the collector's own cost per env step (1 env, DQN policy), so the
   overhead reads as a fraction of an env step; plus the vectorised K(x, x) vs a per-sample autograd loop (the
   brute-force reference) on the same 4001 transitions.
2. DQN gradient step (``--dqn-minibatch``, default 64; 2×64 ReLU Q-network): torchrl's ``ReplayBuffer.sample`` +
   ``DQNLoss`` + Adam + ``HardUpdate`` (built here, on a copy of the agent's network: what the agent used to run) vs
   :meth:`repdyn.agents.dqn.DQNAgent.gradient_step`, the step ``DQNAgent.update`` takes (written-out TD(0) loss,
   direct replay indexing, fused Adam; see ``agents/dqn.py``); and inserting a 4-transition batch into the replay
   with torchrl's ``LazyTensorStorage`` vs the agent's :class:`repdyn.agents.replay_memory.KeywiseTensorStorage`.
3. PPO on ALE (Moalla et al. 2024 App. B Table 2: 8 envs × 128 steps, minibatch 256, ``--ppo-epochs`` 4): the real
   :meth:`repdyn.agents.ppo.PPOAgent.update` per minibatch vs a bare PyTorch actor + critic Nature-CNN
   forward/backward/Adam step on the same 256 frames (target ≤ 1.1×), and the update's share of the wall time of one
   batch (collection with the Collector + update). Measured by :func:`repdyn.bench.atari.bench_ppo_atari`, with the
   other Atari benches.

The machine is shared: absolute numbers drift, ratios are taken between timings of the same run (medians of
interleaved repeats).
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable, Sequence

import torch
from rich.console import Console
from rich.table import Table
from tensordict import TensorDict

from repdyn.bench import compose_train, median_time
from repdyn.progress import progress_bar


def _interleaved(fns: dict[str, Callable[[], object]], n: int, repeats: int, desc: str) -> dict[str, float]:
    """Median seconds per call of each function, timed in alternating rounds so load drift hits all alike."""
    out: dict[str, list[float]] = {k: [] for k in fns}
    for _ in progress_bar(range(repeats), desc=desc, leave=False):
        for k, fn in fns.items():
            out[k].append(median_time(fn, n, warmup=1))
    return {k: statistics.median(v) for k, v in out.items()}


# ----------------------------------------------------------------------------------------------------------------------
# 1-2: eviction and DQN step on Acrobot


def _acrobot_agent(capacity: int, minibatch: int | None = None):
    from repdyn.agents import build_agent
    from repdyn.envs.make import make_env

    cfg = compose_train(
        [
            "env=classic/acrobot",
            "agent=dqn",
            "model=mlp",
            "model.activation=relu",
            "logger=none",
            "env.num_envs=1",
            "env.frames_per_env=1",
            f"agent.buffer_size={capacity}",
            *([f"agent.minibatch_size={minibatch}"] if minibatch is not None else []),
        ]
    )
    env = make_env(cfg.env, 0)
    torch.manual_seed(0)
    return cfg, env, build_agent(cfg, env)


def _random_transitions(n: int, seed: int) -> TensorDict:
    g = torch.Generator().manual_seed(seed)
    term = torch.rand(n, 1, generator=g) < 0.01
    return TensorDict(
        {
            "observation": torch.randn(n, 6, generator=g),
            "action": torch.randint(0, 3, (n,), generator=g),
            "next": {
                "observation": torch.randn(n, 6, generator=g),
                "reward": -torch.ones(n, 1),
                "done": term.clone(),
                "terminated": term,
            },
        },
        [n],
    )


def _k_diag_timings(qnet: torch.nn.Module, score: Callable, td: TensorDict) -> dict[str, float]:
    """Seconds for the vectorised K(x, x) of ``td`` vs the per-sample autograd loop (the brute-force reference)."""
    params = list(qnet.parameters())

    def loop() -> None:
        for i in range(td.shape[0]):
            q = qnet(td["observation"][i : i + 1])[0][0, td["action"][i]]
            grads = torch.autograd.grad(q, params)
            sum(g.square().sum() for g in grads)

    vec_s = median_time(lambda: score(td), 5)
    loop_s = median_time(loop, 1, warmup=0)
    return {"k_diag_vectorised_s": vec_s, "k_diag_loop_s": loop_s}


def bench_eviction(capacity: int, steps: int, repeats: int) -> dict[str, float]:
    """Seconds per env step of inserting into a full NTK-eviction buffer (alone and in batches of 4), a FIFO insert
    and one collector env step, interleaved; then the K(x, x) timings on the full buffer."""
    from torchrl.data import LazyTensorStorage, ReplayBuffer

    from repdyn.agents.dqn import REPLAY_KEYS
    from repdyn.collection import make_collector
    from repdyn.interventions.ntk_eviction import NTKEvictionWriter, qnet_ntk_diag_fn

    cfg, env, agent = _acrobot_agent(capacity)
    fill = _random_transitions(capacity, 0)
    score = qnet_ntk_diag_fn(agent.qnet, "taken")
    ntk_rb = ReplayBuffer(storage=LazyTensorStorage(capacity), writer=NTKEvictionWriter(score))
    fifo_rb = agent.make_replay(capacity)
    for rb in (ntk_rb, fifo_rb):
        rb.extend(fill)
    stream = _random_transitions(10 * steps + 100, 1)
    cursor = {"ntk": 0, "fifo": 0}

    def insert(rb: ReplayBuffer, key: str, m: int = 1) -> Callable[[], None]:
        def f() -> None:
            i = cursor[key] = (cursor[key] + m) % (stream.shape[0] - m)
            rb.extend(stream[i : i + m])

        return f

    collector = make_collector(env, agent, 1)
    it = iter(collector)
    fns = {"evict": insert(ntk_rb, "ntk"), "evict4": insert(ntk_rb, "ntk", 4), "fifo": insert(fifo_rb, "fifo")}
    t = _interleaved({**fns, "env_step": lambda: next(it)}, steps, repeats, "eviction vs FIFO vs env step")
    collector.shutdown()
    k_diag = _k_diag_timings(agent.qnet, score, ntk_rb.storage.get(torch.arange(capacity)).select(*REPLAY_KEYS))
    env.close()
    return {
        "evict_s_per_step": t["evict"],
        "evict4_s_per_step": t["evict4"] / 4,
        "fifo_s_per_step": t["fifo"],
        "env_step_s": t["env_step"],
        **k_diag,
    }


def bench_dqn_step(steps: int, repeats: int, minibatch: int = 64) -> dict[str, float]:
    """One gradient step on a 5,000-transition replay: torchrl's parts vs the agent's own step, interleaved."""
    import copy

    from torch import nn
    from torchrl.objectives import DQNLoss, HardUpdate

    cfg, env, agent = _acrobot_agent(50_000, minibatch)
    a = cfg.agent
    agent.buffer.extend(_random_transitions(5000, 2))

    # torchrl: sampler + DQNLoss (target parameters inside the loss) + torch's default Adam + HardUpdate, on a copy
    ref_actor = copy.deepcopy(agent.actor)
    ref_loss = DQNLoss(
        ref_actor, loss_function="smooth_l1", delay_value=True, double_dqn=a.double_dqn, action_space="categorical"
    )
    ref_loss.make_value_estimator(gamma=a.gamma)
    ref_updater = HardUpdate(ref_loss, value_network_update_interval=a.target_update_interval - 1)
    ref_params = list(ref_actor.parameters())
    ref_opt = torch.optim.Adam(ref_params, lr=a.lr, betas=tuple(a.betas), eps=a.adam_eps)

    def torchrl_step() -> None:
        mb = agent.buffer.sample()
        loss = ref_loss(mb)["loss"]
        ref_opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(ref_params, a.max_grad_norm)
        ref_opt.step()
        ref_updater.step()

    replay = agent.replay_tensors()

    def agent_step() -> None:  # what DQNAgent.update runs per gradient step
        agent.gradient_step(replay)

    t = _interleaved({"torchrl": torchrl_step, "manual": agent_step}, steps, repeats, "DQN gradient step")
    env.close()
    return {"dqn_step_torchrl_s": t["torchrl"], "dqn_step_manual_s": t["manual"]}


def bench_replay_insert(steps: int, repeats: int) -> dict[str, float]:
    """Inserting one 4-transition Acrobot batch (the presets' DQN batch) into a FIFO replay holding 5,000: torchrl's
    ``LazyTensorStorage`` vs :class:`repdyn.agents.replay_memory.KeywiseTensorStorage`, same writer, interleaved."""
    from torchrl.data import LazyTensorStorage, ReplayBuffer

    from repdyn.agents.replay_memory import KeywiseTensorStorage

    batch = _random_transitions(4, 3)
    buffers = {
        "torchrl": ReplayBuffer(storage=LazyTensorStorage(50_000)),
        "keywise": ReplayBuffer(storage=KeywiseTensorStorage(50_000)),
    }
    for buf in buffers.values():
        buf.extend(_random_transitions(5000, 2))
    t = _interleaved({k: (lambda b=b: b.extend(batch)) for k, b in buffers.items()}, steps, repeats, "replay insert")
    return {"insert_torchrl_s": t["torchrl"], "insert_keywise_s": t["keywise"]}


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m repdyn.bench dqn", description=__doc__.split("\n\n")[0])
    parser.add_argument("--capacity", type=int, default=4000, help="eviction buffer capacity (Jansson 2025: 4000)")
    parser.add_argument("--steps", type=int, default=50, help="timed calls per round")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds (medians)")
    parser.add_argument("--atari-game", default="ALE/Phoenix-v5")
    parser.add_argument("--atari-batches", type=int, default=2, help="PPO-Atari batches timed")
    parser.add_argument("--ppo-epochs", type=int, default=4, help="PPO epochs per timed batch (paper: 4, 6, 8)")
    parser.add_argument("--dqn-minibatch", type=int, default=64, help="minibatch of the timed DQN gradient step")
    parser.add_argument("--no-atari", action="store_true", help="skip the PPO-Atari part")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (the runs' default: 1)")
    args = parser.parse_args(list(argv) if argv is not None else None)
    for name in ("capacity", "steps", "repeats", "atari_batches", "ppo_epochs", "threads", "dqn_minibatch"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be ≥ 1, got {getattr(args, name)}")
    return args


_MS = 1e3


def _eviction_rows(table: Table, res: dict[str, float], capacity: int) -> None:
    env_step = res["env_step_s"]
    table.add_row("env step (Collector, 1 Acrobot env, DQN policy)", f"{env_step * _MS:.3f} ms", "1")
    table.add_row(
        f"insert + NTK eviction, full buffer of {capacity}",
        f"{res['evict_s_per_step'] * _MS:.3f} ms",
        f"{res['evict_s_per_step'] / env_step:.2f}× env step",
    )
    table.add_row(
        "  same, batches of 4 env steps (the presets), per step",
        f"{res['evict4_s_per_step'] * _MS:.3f} ms",
        f"{res['evict4_s_per_step'] / env_step:.2f}× env step",
    )
    table.add_row(
        "insert, FIFO (RoundRobinWriter)",
        f"{res['fifo_s_per_step'] * _MS:.3f} ms",
        f"eviction = {res['evict_s_per_step'] / res['fifo_s_per_step']:.0f}× FIFO",
    )
    table.add_row(
        f"K(x,x) of {capacity} transitions: vectorised ntk_diag",
        f"{res['k_diag_vectorised_s'] * _MS:.2f} ms",
        f"{res['k_diag_loop_s'] / res['k_diag_vectorised_s']:.0f}× faster than the loop",
    )
    table.add_row("K(x,x): per-sample autograd loop", f"{res['k_diag_loop_s'] * _MS:.1f} ms", "")


def _dqn_step_rows(table: Table, res: dict[str, float], minibatch: int) -> None:
    table.add_row(
        f"DQN step: ReplayBuffer.sample + DQNLoss + Adam + HardUpdate (minibatch {minibatch})",
        f"{res['dqn_step_torchrl_s'] * _MS:.3f} ms",
        "",
    )
    table.add_row(
        "DQN step: DQNAgent.gradient_step (written-out TD(0), fused Adam)",
        f"{res['dqn_step_manual_s'] * _MS:.3f} ms",
        f"torchrl = {res['dqn_step_torchrl_s'] / res['dqn_step_manual_s']:.2f}×",
    )


def _insert_rows(table: Table, res: dict[str, float]) -> None:
    table.add_row("replay insert, 4 transitions: LazyTensorStorage", f"{res['insert_torchrl_s'] * _MS:.3f} ms", "")
    table.add_row(
        "replay insert, 4 transitions: KeywiseTensorStorage (the agent's)",
        f"{res['insert_keywise_s'] * _MS:.3f} ms",
        f"torchrl = {res['insert_torchrl_s'] / res['insert_keywise_s']:.2f}×",
    )


def _ppo_atari_rows(table: Table, res: dict[str, float]) -> None:
    upd, bare = res["ppo_update_s_per_minibatch"], res["bare_s_per_minibatch"]
    coll = res["ppo_collect_s_per_batch"]
    n_mb = res["minibatches_per_epoch"]
    table.add_row(f"PPO-Atari collection, {int(res['frames_per_batch'])} frames", f"{coll:.2f} s", "")
    table.add_row(
        "PPO-Atari update per minibatch (256)",
        f"{upd * _MS:.1f} ms",
        f"{upd / bare:.2f}× bare (target ≤ 1.10×)",
    )
    table.add_row("bare actor+critic Nature-CNN step (256)", f"{bare * _MS:.1f} ms", "1")
    for epochs in (4, 6, 8):
        u = epochs * n_mb * upd
        table.add_row(f"update share of wall time, {epochs} epochs", f"{u:.2f} s / batch", f"{u / (u + coll):.0%}")


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    args = _parse_args(argv)
    torch.set_num_threads(args.threads)
    res = bench_eviction(args.capacity, args.steps, args.repeats)
    res.update(bench_dqn_step(args.steps, args.repeats, args.dqn_minibatch))
    res.update(bench_replay_insert(args.steps, args.repeats))
    if not args.no_atari:
        from repdyn.bench.atari import bench_ppo_atari  # ale-py only when the Atari part runs

        res.update(bench_ppo_atari(args.atari_game, args.atari_batches, args.ppo_epochs))

    table = Table(title=f"DQN / eviction / PPO-Atari (torch threads {args.threads})")
    for col in ("measurement", "time", "ratio"):
        table.add_column(col)
    _eviction_rows(table, res, args.capacity)
    _dqn_step_rows(table, res, args.dqn_minibatch)
    _insert_rows(table, res)
    if not args.no_atari:
        _ppo_atari_rows(table, res)
    Console(width=140).print(table)
    return res


if __name__ == "__main__":
    main()
