"""Robustness probes on a fixed batch of teacher states, for teacher and student alike (Lyle et al. 2022b §6,
"Learning Dynamics and Generalization in Reinforcement Learning", ICML, arXiv:2206.02126: networks trained by TD
generalize less smoothly between nearby states than distilled ones). docs/distillation.md#robustness-probes.

``fn`` maps observations ``[N, D]`` to outputs ``[N, A]`` (Q-values or logits); the greedy action is their argmax and
the output distribution is softmax(outputs). Pure functions: the noise comes from the ``generator`` passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

OutputFn = Callable[[Tensor], Tensor]


def feature_std(states: Tensor) -> Tensor:
    """Per-feature standard deviation of ``states`` ``[N, D]`` (0 for N < 2): the unit of the perturbation scale."""
    if states.shape[0] < 2:
        return torch.zeros(states.shape[-1:])
    return states.float().std(0)  # float: ALE frames are uint8


@torch.no_grad()
def perturbation_probe(
    fn: OutputFn, states: Tensor, scales: Sequence[float], std: Tensor, generator: torch.Generator
) -> dict[float, tuple[float, float]]:
    """For each noise scale σ: o' = o + σ · std ⊙ ε, ε ~ N(0, I) (one draw per state and scale), and

        agree(σ) = mean_i 1[argmax f(o'_i) = argmax f(o_i)]
        l1(σ)    = mean_i ‖softmax f(o'_i) − softmax f(o_i)‖₁

    so agree(0) = 1 and l1(0) = 0 exactly. Degenerate input: no states → (1.0, 0.0) at every scale; a zero ``std``
    (constant features) leaves the states unperturbed at every scale."""
    if states.shape[0] == 0:
        return {float(s): (1.0, 0.0) for s in scales}
    clean = fn(states)
    action, probs = clean.argmax(-1), clean.softmax(-1)
    out = {}
    for s in scales:
        noise = torch.randn(states.shape, generator=generator) * std * float(s)
        noisy = fn(states + noise)
        agree = (noisy.argmax(-1) == action).float().mean().item()
        l1 = (noisy.softmax(-1) - probs).abs().sum(-1).mean().item()
        out[float(s)] = (agree, l1)
    return out


def interpolation_pairs(n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Indices (i, j) of ⌊n/2⌋ disjoint random pairs of the ``n`` probe states."""
    perm = torch.randperm(n, generator=generator)
    half = n // 2
    return perm[:half], perm[half : 2 * half]


@torch.no_grad()
def interpolation_probe(fn: OutputFn, first: Tensor, second: Tensor, ts: Sequence[float]) -> dict[float, float]:
    """For pairs (o1, o2) and each t: o = (1 − t) o1 + t o2 and

        consistent(t) = mean_pairs 1[a(o) = a(o1) or a(o) = a(o2)],   a = argmax f

    i.e. how often an intermediate state takes one of its end points' actions (1.0 for a constant-action network).
    Degenerate input: no pairs → 1.0; identical end points → 1.0 (the interpolant is the end point)."""
    if first.shape[0] == 0:
        return {float(t): 1.0 for t in ts}
    a1, a2 = fn(first).argmax(-1), fn(second).argmax(-1)
    out = {}
    for t in ts:
        a = fn((1.0 - t) * first + t * second).argmax(-1)
        out[float(t)] = ((a == a1) | (a == a2)).float().mean().item()
    return out


def probe_record(
    prefix: str,
    fn: OutputFn,
    states: Tensor,
    std: Tensor,
    pairs: tuple[Tensor, Tensor],
    scales: Sequence[float],
    ts: Sequence[float],
    generator: torch.Generator,
) -> dict[str, float]:
    """Both probes as log keys: ``<prefix>/perturb_agree/noise_<σ>``, ``<prefix>/perturb_l1/noise_<σ>``,
    ``<prefix>/interp_consistent/t_<t>``."""
    rec = {}
    for s, (agree, l1) in perturbation_probe(fn, states, scales, std, generator).items():
        rec[f"{prefix}/perturb_agree/noise_{s:g}"] = agree
        rec[f"{prefix}/perturb_l1/noise_{s:g}"] = l1
    first, second = states[pairs[0]], states[pairs[1]]
    for t, v in interpolation_probe(fn, first, second, ts).items():
        rec[f"{prefix}/interp_consistent/t_{t:g}"] = v
    return rec
