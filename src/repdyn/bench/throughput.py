"""repdyn vs a single-file plain-PyTorch script, in one process and sitting: collection, update, end to end.

``python -m repdyn.bench throughput [--quick] [--json PATH] [--only ppo dqn atari]`` measures, alternating ours and
the reference so that machine load hits both alike (figures: medians over the repeats; ratios: medians of the
per-repeat ratios, each pair measured back to back):

- PPO-MuJoCo (Hopper, 2 envs × 1024, minibatch 64, 10 epochs, 1 torch thread):
  (a) the raw gymnasium vector env (random actions); (b) our lean collection (:mod:`repdyn.lean_collector`);
  (c) the torchrl ``Collector`` path (``train.collector=torchrl``); (d) our update, compiled
  (``train.compile=on``, :mod:`repdyn.agents.compiled_step`) and eager (``off``), vs the reference's
  (:mod:`repdyn.bench.reference_ppo`, grad steps/s over its steady window); (e) end to end: a real run
  (``metrics=default``, ``logger=none``), compiled and eager, vs the reference on the same number of batches.
- DQN on Acrobot (2×64 ReLU, one gradient step per env step, minibatch 64; 1 env, 4 steps per batch) end to end,
  compiled and eager, vs :mod:`repdyn.bench.reference_dqn`, over the env steps after ``learning_starts``.
- PPO-Atari (Phoenix, 8 envs × 128, two Nature CNNs, ``agent=ppo_atari``, 2 torch threads on both sides) end to end
  vs the reference with the same two-CNN layout.

"End to end" is steady state on both sides: env steps per second between the first batch's end and the last, so the
obs-norm warm-up, the first capacity probe and the first batch (with the compilation of the compiled step: 20-60 s
with a cold inductor cache, ~8 s with a warm one) are excluded (ours: from the ``perf/wall_time`` of the
history records; the reference times the same window). Our runs use the metric cadences of a full-length run
(``train.total_frames`` of the paper budget, stopped after the measured batches with ``debug.stop_after_batches``),
so metrics cost what they cost in a real run, not what a 10-batch budget would squeeze in.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from repdyn.bench import compose_train

PPO_MUJOCO = ["env=mujoco/hopper"]
DQN_ACROBOT = [
    "agent=dqn",
    "env=classic/acrobot",
    "env.num_envs=1",
    "env.frames_per_env=4",
    "model.activation=relu",
    "agent.minibatch_size=64",
]
PPO_ATARI = ["env=atari/phoenix"]


def steady_rate(records: list[dict], from_step: int) -> float:
    """Env steps/s between the first record at or past ``from_step`` and the last record (``perf/wall_time``)."""
    window = [r for r in records if r["step"] >= from_step and "perf/wall_time" in r]
    if len(window) < 2:
        raise ValueError(f"need two timed records from step {from_step}; got {len(window)} (run more batches)")
    first, last = window[0], window[-1]
    return (last["step"] - first["step"]) / (last["perf/wall_time"] - first["perf/wall_time"])


def repdyn_e2e(overrides: list[str], batches: int, budget: int, threads: int, from_step: int) -> float:
    """Steady env steps/s of a real ``repdyn.train`` run of ``batches`` batches (cadences of a ``budget`` run)."""
    from repdyn.loggers.history import read_history
    from repdyn.train import run

    cfg = compose_train(
        [
            *overrides,
            "logger=none",
            "metrics=default",
            "train.progress=false",
            f"train.total_frames={budget}",
            f"train.threads={threads}",
            f"debug.stop_after_batches={batches}",
        ]
    )
    batch = cfg.env.num_envs * cfg.env.frames_per_env
    # a record (with its wall time) at every batch end, but not more often than every 512 env steps: a record is
    # fsync'ed (~3 ms), which a real run pays every 0.1% of its budget, not every 4-step DQN batch
    cfg.train.log_every = max(batch, 512) / budget
    with tempfile.TemporaryDirectory() as d:
        run(cfg, d)
        return steady_rate(read_history(Path(d) / "history.jsonl"), max(from_step, batch))


def collection_rates(batches: int) -> tuple[dict[str, float], Any, Any]:
    """Frames/s of the raw env, the lean collector and torchrl's Collector on Hopper, alternating batches (after a
    warm-up batch each); also an agent and the last batch it collected (for the update measurement)."""
    from repdyn.bench.ppo import build_pieces, raw_env_rate, step_tensors_rate

    cfg = compose_train([*PPO_MUJOCO, "logger=none"])
    e = cfg.env
    out = {"raw": [], "stepped": [], "lean": [], "torchrl": []}
    pieces = {kind: build_pieces(cfg, kind=kind) for kind in ("lean", "torchrl")}
    iters = {kind: iter(p[2]) for kind, p in pieces.items()}
    for it in iters.values():
        next(it)
    for _ in range(batches):
        out["raw"].append(raw_env_rate(e.id, e.num_envs, e.frames_per_env))
        out["stepped"].append(step_tensors_rate(e.id, e.num_envs, e.frames_per_env))
        for kind, it in iters.items():
            t = time.perf_counter()
            batch = next(it)
            out[kind].append(batch.numel() / (time.perf_counter() - t))
    for env, _, collector in pieces.values():
        collector.shutdown()
        if not env.is_closed:
            env.close()
    rates = {k: statistics.median(v) for k, v in out.items()}
    rates["lean_vs_raw"] = paired_ratio(out["lean"], out["raw"])
    rates["stepped_vs_raw"] = paired_ratio(out["stepped"], out["raw"])
    rates["lean_vs_torchrl"] = paired_ratio(out["lean"], out["torchrl"])
    return rates, pieces["torchrl"][1], batch


def our_update_rates(agent: Any, batch: Any, repeats: int) -> tuple[float, float]:
    """Grad steps/s of :meth:`PPOAgent.update` on a real Hopper batch, compiled (``train.compile=on``; after one
    compiling update) and eager, alternating (medians of ``repeats``)."""
    from repdyn.agents.compiled_step import CompiledStep
    from repdyn.interventions import Hooks

    agent.process_batch(batch)
    n = agent.acfg.epochs * agent.minibatches_per_epoch
    compiled = CompiledStep(agent._compiled_loss, agent.acfg.max_grad_norm)
    agent.compiled = compiled
    agent.update(batch.clone(), 0, Hooks([]))  # compiles
    rates: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(repeats):
        for on in (True, False):
            agent.compiled = compiled if on else None
            t = time.perf_counter()
            agent.update(batch.clone(), 0, Hooks([]))
            rates[on].append(n / (time.perf_counter() - t))
    return statistics.median(rates[True]), statistics.median(rates[False])


def _alternate(repeats: int, ours: Callable[[], float], theirs: Callable[[], dict]) -> tuple[list[float], list[dict]]:
    a, b = [], []
    for _ in range(repeats):
        a.append(ours())
        b.append(theirs())
    return a, b


def _e2e_pair(overrides: list[str], batches: int, budget: int, threads: int, from_step: int) -> tuple[float, float]:
    """Steady env steps/s of the same real run with the compiled step (``train.compile=on``) and without."""
    on = repdyn_e2e([*overrides, "train.compile=on"], batches, budget, threads, from_step)
    return on, repdyn_e2e([*overrides, "train.compile=off"], batches, budget, threads, from_step)


def _medians(pairs: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)


def paired_ratio(ours: Sequence[float], theirs: Sequence[float]) -> float:
    """Median over repeats of ours_i / theirs_i, each pair measured back to back: the machine's speed drifts by up
    to 1.5x over minutes, which a ratio of the two medians (taken at different times) would carry into the ratio."""
    return statistics.median(a / b for a, b in zip(ours, theirs, strict=True))


def measure_ppo(quick: bool, repeats: int) -> dict[str, float]:
    """PPO-MuJoCo: collection (raw / lean / torchrl), update (compiled / eager / reference), end to end."""
    from repdyn.bench import reference_ppo

    col, agent, batch = collection_rates(2 if quick else 5)
    compiled, eager = our_update_rates(agent, batch, 1 if quick else 3)
    n = 4 if quick else 8
    ours, ref = _alternate(
        repeats,
        lambda: _e2e_pair(PPO_MUJOCO, n, 5_000_000, 1, 0),
        lambda: reference_ppo.run("Hopper-v5", total_frames=n * 2048, num_envs=2, frames_per_env=1024),
    )
    e2e, e2e_eager = _medians(ours)
    ref_sps = [x["steady_sps"] for x in ref]
    return {
        "ppo_e2e_vs_reference": paired_ratio([p[0] for p in ours], ref_sps),
        "ppo_e2e_eager_vs_reference": paired_ratio([p[1] for p in ours], ref_sps),
        "ppo_collect_vs_raw": col["lean_vs_raw"],
        "ppo_env_step_vs_sync": col["stepped_vs_raw"],
        "ppo_env_step_fps": col["stepped"],
        "ppo_collect_vs_torchrl": col["lean_vs_torchrl"],
        "ppo_raw_fps": col["raw"],
        "ppo_collect_fps": col["lean"],
        "ppo_collect_torchrl_fps": col["torchrl"],
        "ppo_update_grad_steps_per_s": compiled,
        "ppo_update_eager_grad_steps_per_s": eager,
        "ppo_e2e_sps": e2e,
        "ppo_e2e_eager_sps": e2e_eager,
        "ppo_reference_sps": statistics.median(x["steady_sps"] for x in ref),
        "ppo_reference_update_grad_steps_per_s": statistics.median(
            x["grad_steps"] * (x["batches"] - 1) / x["batches"] / x["update_wall"] for x in ref
        ),
    }


def measure_dqn(quick: bool, repeats: int) -> dict[str, float]:
    """DQN Acrobot end to end (compiled / eager) vs the reference, over the steps after ``learning_starts``."""
    from repdyn.bench import reference_dqn

    starts = 1000
    n = (starts + (2000 if quick else 6000)) // 4
    ours, ref = _alternate(
        repeats,
        lambda: _e2e_pair(DQN_ACROBOT, n, 100_000, 1, starts + 4),
        lambda: reference_dqn.run("Acrobot-v1", total_frames=n * 4, minibatch_size=64, learning_starts=starts),
    )
    e2e, e2e_eager = _medians(ours)
    ref_sps = [x["steady_sps"] for x in ref]
    return {
        "dqn_e2e_sps": e2e,
        "dqn_e2e_eager_sps": e2e_eager,
        "dqn_reference_sps": statistics.median(ref_sps),
        "dqn_e2e_vs_reference": paired_ratio([p[0] for p in ours], ref_sps),
        "dqn_e2e_eager_vs_reference": paired_ratio([p[1] for p in ours], ref_sps),
    }


def measure_atari(quick: bool, repeats: int) -> dict[str, float]:
    """PPO-Atari (two Nature CNNs, 2 torch threads on both sides) end to end vs the reference."""
    from repdyn.bench import reference_ppo

    n = 3 if quick else 6
    ours, ref = _alternate(
        repeats,
        lambda: repdyn_e2e(PPO_ATARI, n, 10_000_000, 2, 0),
        lambda: reference_ppo.run(
            "ALE/Phoenix-v5", total_frames=n * 1024, num_envs=8, frames_per_env=128, cnn=True, threads=2
        ),
    )
    ref_sps = [x["steady_sps"] for x in ref]
    return {
        "atari_e2e_sps": statistics.median(ours),
        "atari_reference_sps": statistics.median(ref_sps),
        "atari_e2e_vs_reference": paired_ratio(ours, ref_sps),
    }


RATIOS = {  # ratio key: (ours, theirs) -- the rows measured back to back hold their paired ratios already
    "ppo_update_vs_reference": ("ppo_update_grad_steps_per_s", "ppo_reference_update_grad_steps_per_s"),
    "ppo_update_eager_vs_reference": ("ppo_update_eager_grad_steps_per_s", "ppo_reference_update_grad_steps_per_s"),
}
ROW_FIGURES = {  # ratio key: (our figure, their figure) for each table row
    "ppo_collect_vs_raw": ("ppo_collect_fps", "ppo_raw_fps"),
    "ppo_env_step_vs_sync": ("ppo_env_step_fps", "ppo_raw_fps"),
    "ppo_collect_vs_torchrl": ("ppo_collect_fps", "ppo_collect_torchrl_fps"),
    **RATIOS,
    "ppo_e2e_vs_reference": ("ppo_e2e_sps", "ppo_reference_sps"),
    "ppo_e2e_eager_vs_reference": ("ppo_e2e_eager_sps", "ppo_reference_sps"),
    "dqn_e2e_vs_reference": ("dqn_e2e_sps", "dqn_reference_sps"),
    "dqn_e2e_eager_vs_reference": ("dqn_e2e_eager_sps", "dqn_reference_sps"),
    "atari_e2e_vs_reference": ("atari_e2e_sps", "atari_reference_sps"),
}
ROW_LABELS = {  # ratio key: (setting, measure), in table order
    "ppo_collect_vs_raw": ("PPO Hopper", "collection vs raw SyncVectorEnv (frames/s)"),
    "ppo_env_step_vs_sync": ("PPO Hopper", "env stepping (step_tensors) vs SyncVectorEnv.step"),
    "ppo_collect_vs_torchrl": ("PPO Hopper", "lean collector vs torchrl Collector"),
    "ppo_update_vs_reference": ("PPO Hopper", "update, compiled (grad steps/s)"),
    "ppo_update_eager_vs_reference": ("PPO Hopper", "update, train.compile=off"),
    "ppo_e2e_vs_reference": ("PPO Hopper", "end to end (env steps/s)"),
    "ppo_e2e_eager_vs_reference": ("PPO Hopper", "end to end, train.compile=off"),
    "dqn_e2e_vs_reference": ("DQN Acrobot", "end to end (env steps/s)"),
    "dqn_e2e_eager_vs_reference": ("DQN Acrobot", "end to end, train.compile=off"),
    "atari_e2e_vs_reference": ("PPO Phoenix", "end to end (env steps/s)"),
}


SETTINGS = {"ppo": measure_ppo, "dqn": measure_dqn, "atari": measure_atari}


def measure(quick: bool, only: Sequence[str] = tuple(SETTINGS)) -> dict[str, float]:
    """Every figure of the table (or of the settings in ``only``), in one process (1 torch thread except the CNN
    runs), and their ratios."""
    r = 1 if quick else 5
    torch.set_num_threads(1)
    res: dict[str, float] = {}
    for name in only:
        res.update(SETTINGS[name](quick, r))
    for key, (ours, theirs) in RATIOS.items():
        if ours in res:
            res[key] = res[ours] / res[theirs]
    return res


def print_table(res: dict[str, float], quick: bool) -> None:
    kind = "quick" if quick else "full"
    table = Table(title=f"repdyn vs single-file PyTorch ({kind}; medians; ratios of back-to-back pairs)")
    for col in ("setting", "measure", "repdyn", "reference", "ratio"):
        table.add_column(col)
    for key, (setting, what) in ROW_LABELS.items():
        ours, theirs = ROW_FIGURES[key]
        if key not in res:  # a setting left out with --only
            continue
        table.add_row(setting, what, f"{res[ours]:,.0f}", f"{res[theirs]:,.0f}", f"{res[key]:.2f}×")
    Console().print(table)


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(prog="python -m repdyn.bench throughput", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one repeat, fewer batches (under 10 minutes)")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure and ratio to this file")
    parser.add_argument(
        "--only", nargs="+", choices=list(SETTINGS), default=list(SETTINGS), help="measure only these settings"
    )
    args = parser.parse_args(None if argv is None else list(argv))
    res = measure(args.quick, args.only)
    print_table(res, args.quick)
    if args.json is not None:
        args.json.write_text(json.dumps(res, indent=2, sort_keys=True))
    return res


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
