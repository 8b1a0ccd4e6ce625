"""Speed of the vectorised metrics against the naive loops they replace, measured in one run.

``python -m repdyn.bench.metrics [--n 1000] [--k 256] [--probe 256] [--repeats 3] [--threads 1] [--cnn]`` prints

1. eNTK Gram of ``n`` Hopper-sized states (input 11) for a 2×64 tanh MLP critic: :func:`repdyn.metrics.ntk.ntk_gram`
   (``auto`` = structured rule for the Linear layers, and ``jacobian`` = ``vmap(grad)`` per-sample gradients) vs a
   per-sample autograd loop (one ``autograd.grad`` per state, stack the rows, J Jᵀ); goal ≥ 20×.
2. Update-rank matrix with ``k`` one-step updates and ``probe`` probe states with a live Adam (state from earlier
   steps), for the same tanh critic and for a 2×64 ReLU Q-network (3 actions, max over actions, the DQN setting of
   Lyle 2022b): :func:`repdyn.metrics.update_rank.update_matrix` vs a deep-copy loop (copy the model and the Adam state,
   one step on one sample, evaluate the probes); goal ≥ 10×. Both sides evaluate the same k × probe forward passes,
   so the ratio is bounded by how much of the loop is per-copy overhead: torch's float32 ``tanh`` costs ~2.6 ns per
   element on this CPU (6× its ``sigmoid``), which makes the tanh critic's bound lower than the ReLU net's.
3. ``--cnn``: eNTK of ``n`` Atari frames for the Nature CNN (1.7M parameters), our chunked Gram only (the loop would
   take minutes), with the process's peak RSS, to show 1000 inputs fit in memory.

Each row reports the median wall time over ``repeats`` (after one warm-up call), the speed-up and the largest
difference between the two results (they compute the same matrix). The machine is shared, so absolute times drift;
ratios are taken within this run.
"""

from __future__ import annotations

import argparse
import copy
import resource
import statistics
import time
from collections.abc import Callable, Sequence

import torch
from rich.console import Console
from rich.table import Table
from torch import nn
from torch.func import functional_call

from repdyn.metrics.ntk import ntk_gram
from repdyn.metrics.update_rank import update_matrix
from repdyn.models.cnn import NatureCNN
from repdyn.models.mlp import MLP

HOPPER_OBS = 11


def _median_time(fn: Callable[[], torch.Tensor], repeats: int) -> tuple[float, torch.Tensor]:
    out = fn()  # warm-up: first-call costs (torch.func, optimizer imports) are not what we compare
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def loop_ntk(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The baseline: one autograd call per sample."""
    params = [p for p in model.parameters() if p.requires_grad]
    rows = []
    for i in range(x.shape[0]):
        y = model(x[i : i + 1])[0].sum()
        rows.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(y, params)]))
    J = torch.stack(rows)
    return J @ J.T


def _net_with_adam(seed: int, activation: str, n_out: int) -> tuple[nn.Module, torch.optim.Adam]:
    torch.manual_seed(seed)
    net = MLP(HOPPER_OBS, (64, 64), n_out, activation=activation)
    opt = torch.optim.Adam(net.parameters(), lr=3e-4, eps=1e-5)
    x, y = torch.randn(64, HOPPER_OBS), torch.randn(64, n_out)
    for _ in range(5):  # a live optimizer: moments and step count as mid-training
        opt.zero_grad()
        (net(x)[0] - y).square().mean().backward()
        opt.step()
    return net, opt


def _sample_loss(out: torch.Tensor, sample: dict[str, torch.Tensor]) -> torch.Tensor:
    """Squared error of V(x) (one output) or of Q(x, a) (several: the TD loss on the taken action)."""
    pred = out[0].gather(0, sample["a"].reshape(1))[0] if out.shape[-1] > 1 else out.reshape(())
    return (pred - sample["y"]).square()


def _probe_values(out: torch.Tensor) -> torch.Tensor:
    return out.max(-1).values if out.shape[-1] > 1 else out.squeeze(-1)


def loop_update_matrix(
    model: nn.Module, opt: torch.optim.Adam, batch: dict[str, torch.Tensor], probes: torch.Tensor
) -> torch.Tensor:
    """The baseline: deep-copy model and Adam state, one step on sample i, evaluate the probes."""
    with torch.no_grad():
        base = _probe_values(model(probes)[0])
    rows = []
    for i in range(batch["x"].shape[0]):
        net = copy.deepcopy(model)
        o = torch.optim.Adam(net.parameters(), **{k: v for k, v in opt.defaults.items() if k != "params"})
        o.load_state_dict(copy.deepcopy(opt.state_dict()))  # without the deepcopy the step counters are shared
        o.zero_grad()
        _sample_loss(net(batch["x"][i : i + 1])[0], {k: v[i] for k, v in batch.items()}).backward()
        o.step()
        with torch.no_grad():
            rows.append(_probe_values(net(probes)[0]) - base)
    return torch.stack(rows)


def bench_ntk(n: int, repeats: int) -> list[tuple[str, float, float | None, float | None]]:
    torch.manual_seed(0)
    critic = MLP(HOPPER_OBS, (64, 64), 1)
    x = torch.randn(n, HOPPER_OBS)
    t_loop, K_loop = _median_time(lambda: loop_ntk(critic, x), repeats)
    rows = [("eNTK per-sample loop", t_loop, None, None)]
    for method in ("auto", "jacobian"):
        t, K = _median_time(lambda m=method: ntk_gram(critic, x, method=m), repeats)
        err = ((K - K_loop).abs().max() / K_loop.abs().max()).item()
        rows.append((f"eNTK ntk_gram(method={method!r})", t, t_loop / t, err))
    return rows


# (label, activation, outputs): the PPO MuJoCo critic, and the DQN Q-network (Acrobot 2×64 ReLU, 3 actions,
# max over actions) — Lyle et al. 2022b (arXiv:2206.02126) measure update rank on value-based agents.
UPDATE_RANK_NETS = (("tanh critic V", "tanh", 1), ("ReLU Q-net, q_max", "relu", 3))


def _bench_update_rank_net(
    label: str, activation: str, n_out: int, k: int, probe: int, repeats: int
) -> list[tuple[str, float, float | None, float | None]]:
    net, opt = _net_with_adam(1, activation, n_out)
    g = torch.Generator().manual_seed(2)
    batch = {
        "x": torch.randn(k, HOPPER_OBS, generator=g),
        "a": torch.randint(0, n_out, (k,), generator=g),
        "y": torch.randn(k, generator=g),
    }
    probes = torch.randn(probe, HOPPER_OBS, generator=g)

    def loss_fn(params, buffers, sample):
        return _sample_loss(functional_call(net, (params, buffers), (sample["x"].unsqueeze(0),))[0], sample)

    output = "value" if n_out == 1 else "q_max"
    t_loop, A_loop = _median_time(lambda: loop_update_matrix(net, opt, batch, probes), repeats)
    t, A = _median_time(lambda: update_matrix(net, loss_fn, batch, opt, probes, output=output), repeats)
    err = ((A - A_loop).abs().max() / A_loop.abs().max()).item()
    return [
        (f"update matrix, {label}: deep-copy loop", t_loop, None, None),
        (f"update matrix, {label}: update_matrix()", t, t_loop / t, err),
    ]


def bench_update_rank(k: int, probe: int, repeats: int) -> list[tuple[str, float, float | None, float | None]]:
    return [row for net in UPDATE_RANK_NETS for row in _bench_update_rank_net(*net, k, probe, repeats)]


def bench_cnn(n: int) -> list[tuple[str, float, float | None, float | None]]:
    torch.manual_seed(2)
    cnn = NatureCNN(4, 1)
    x = torch.randint(0, 256, (n, 4, 84, 84), dtype=torch.uint8)
    start = time.perf_counter()
    K = ntk_gram(cnn, x)
    elapsed = time.perf_counter() - start
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return [(f"eNTK Nature CNN, {tuple(K.shape)}, peak RSS {peak_gb:.2f} GB", elapsed, None, None)]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m repdyn.bench.metrics", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="eNTK states")
    parser.add_argument("--k", type=int, default=256, help="update-rank one-step updates")
    parser.add_argument("--probe", type=int, default=256, help="update-rank probe states")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per row (median)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1, as train.threads)")
    parser.add_argument("--cnn", action="store_true", help="also time the Nature-CNN eNTK of --n frames")
    args = parser.parse_args(argv)
    for name in ("n", "k", "probe", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")
    if args.threads < 1:
        parser.error("--threads must be >= 1")
    torch.set_num_threads(args.threads)

    console = Console()
    if not console.is_terminal:  # piped output: do not squeeze the table into 80 columns
        console = Console(width=120)
    console.print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); median of {args.repeats}")
    rows = bench_ntk(args.n, args.repeats)
    rows += bench_update_rank(args.k, args.probe, args.repeats)
    if args.cnn:
        rows += bench_cnn(args.n)

    table = Table(title=f"metrics speed (eNTK n={args.n}; update rank k={args.k}, probes={args.probe})")
    for col in ("what", "seconds", "speed-up vs loop", "max rel. diff"):
        table.add_column(col, justify="left" if col == "what" else "right", no_wrap=True)
    for what, seconds, ratio, err in rows:
        table.add_row(
            what, f"{seconds:.4f}", "" if ratio is None else f"{ratio:.1f}×", "" if err is None else f"{err:.1e}"
        )
    console.print(table)
    console.print("goals: eNTK ≥ 20× (auto), update matrix ≥ 10×")


if __name__ == "__main__":
    main()
