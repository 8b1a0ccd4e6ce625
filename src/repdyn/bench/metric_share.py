"""Wall-time share of the metric set in a PPO run at the paper cadence (Moalla App. B; issue 3 goals ≤ 5% default,
≤ 15% with NTK and update rank).

Measured in one run on the real agent and env (MuJoCo Hopper setting by default): the cost of one batch (collection +
update), of the representation metrics of one batch (start + end + diff), of one capacity probe, one eNTK record and one
update-rank record. The share at the paper cadence over a budget of ``--budget`` env steps is then
``Σ_m n_m · t_m / (n_batches · t_batch + Σ_m n_m · t_m)`` with n_rep = 1000 (every 0.1%) and 41 points (every 2.5%)
for capacity, NTK and update rank. Measuring components instead of running 5M steps keeps the benchmark minutes long.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

import torch
from rich.console import Console
from rich.table import Table


def _timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m repdyn.bench metric_share", description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="mujoco/hopper")
    parser.add_argument("--budget", type=int, default=5_000_000, help="paper budget in env steps")
    parser.add_argument("--repeats", type=int, default=3)
    return parser.parse_args(None if argv is None else list(argv))


def measure_components(cfg: Any, repeats: int) -> dict[str, float]:
    """Median seconds of one batch (collect + update), the representation metrics of one batch, one capacity probe,
    one eNTK record and one update-rank record, on the real agent and env of ``cfg``."""
    import tempfile

    from repdyn.bench.ppo import build_pieces
    from repdyn.interventions import Hooks
    from repdyn.metrics import scheduled
    from repdyn.metrics.capacity_probe import CapacityProbe

    m = cfg.metrics
    env, agent, collector = build_pieces(cfg)
    it = iter(collector)
    hooks = Hooks([])
    batch = next(it)
    agent.process_batch(batch)
    agent.update(batch, 0, hooks)  # warm-up (first Adam step in a process is slow)

    def one_batch():
        nonlocal batch
        batch = next(it)
        agent.process_batch(batch)
        agent.update(batch, 0, hooks)

    def ctx() -> scheduled.MetricContext:
        return scheduled.MetricContext(batch, agent, m, gen, 0)

    def representation():
        c = ctx()
        scheduled.representation_start(c)
        scheduled.representation_end(c)

    gen = torch.Generator().manual_seed(0)
    t = {"batch": _timed(one_batch, repeats), "representation": _timed(representation, repeats)}
    with tempfile.TemporaryDirectory() as d:
        probe = CapacityProbe.of_run(cfg, d, env)
        t["capacity"] = _timed(lambda: probe.probe(agent, 0), repeats)
    t["ntk"] = _timed(lambda: scheduled.ntk_record(ctx()), repeats)
    t["update_rank"] = _timed(lambda: scheduled.update_rank_record(ctx()), repeats)
    collector.shutdown()
    return t


def run_counts(m: Any, n_batches: float) -> dict[str, float]:
    """How often each metric runs over the budget at the paper cadence (capacity also at the start)."""
    return {
        "representation": min(n_batches, 1 / m.every),
        "capacity": 1 / m.capacity_every + 1,
        "ntk": 1 / m.ntk_every,
        "update_rank": 1 / m.update_rank_every,
    }


def _print_table(title: str, t: dict[str, float], n: dict[str, float], n_batches: float, res: dict) -> None:
    table = Table(title=title)
    for col in ("component", "seconds each", "times per run", "seconds per run"):
        table.add_column(col, justify="right")
    table.add_row(
        "batch (collect + update)", f"{t['batch']:.3f}", f"{n_batches:,.0f}", f"{n_batches * t['batch']:,.0f}"
    )
    for k in n:
        table.add_row(k, f"{t[k]:.3f}", f"{n[k]:,.0f}", f"{n[k] * t[k]:,.0f}")
    Console(width=120).print(table)
    Console(width=120).print(
        f"share of wall time: default metric set {res['share_default']:.1%} (goal ≤ 5%); "
        f"with NTK + update rank {res['share_full']:.1%} (goal ≤ 15%)"
    )


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    args = _parse_args(argv)
    torch.set_num_threads(1)
    from repdyn.bench import compose_train

    cfg = compose_train([f"env={args.env}", "logger=none", "metrics=full"])
    e = cfg.env
    t = measure_components(cfg, args.repeats)
    n_batches = args.budget / (e.num_envs * e.frames_per_env)
    n = run_counts(cfg.metrics, n_batches)
    base = n_batches * t["batch"]
    cost = {k: n[k] * t[k] for k in n}
    default = cost["representation"] + cost["capacity"]
    full = default + cost["ntk"] + cost["update_rank"]
    res = {
        "share_default": default / (base + default),
        "share_full": full / (base + full),
        **{f"t_{k}": v for k, v in t.items()},
    }
    title = f"metric wall-time share, {e.id}, budget {args.budget:,} env steps ({n_batches:,.0f} batches)"
    _print_table(title, t, n, n_batches, res)
    return res


if __name__ == "__main__":
    main()
