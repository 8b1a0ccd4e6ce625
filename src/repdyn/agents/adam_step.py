"""One Adam step for several ``torch.optim.Adam`` optimizers at once, through torch's functional ``adam``.

PPO keeps one optimizer per network (actor, critic; trunk with a shared trunk) because interventions act per network
(``adam_reset``, ``lr_anneal``, ``adam_beta2``) and the metrics read per-network Adam state. Stepping them one by one
pays ``Optimizer.step``'s Python bookkeeping (hooks, grouping, state checks) per optimizer per minibatch: on the 2×64
MLPs that bookkeeping, not the arithmetic, is most of the step (``python -m repdyn.bench throughput`` prints both).
Here the parameters of all groups with equal hyperparameters go to one ``torch.optim.adam.adam`` call, with each
optimizer's own state tensors (``step``, ``exp_avg``, ``exp_avg_sq``), so checkpoints, resets and the update-rank
probe see exactly what ``opt.step()`` would have left (tests/unit/test_adam_step.py checks equality).

Anything else (another optimizer class, amsgrad, tensor learning rates, registered step hooks) falls back to
``opt.step()``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch.optim.adam import adam

_HYPER = ("lr", "betas", "eps", "weight_decay", "maximize", "foreach", "fused", "decoupled_weight_decay")


def _fast_path(opt: torch.optim.Optimizer) -> bool:
    if type(opt) is not torch.optim.Adam or opt._optimizer_step_pre_hooks or opt._optimizer_step_post_hooks:
        return False
    return all(
        not g["amsgrad"] and not g["capturable"] and not g["differentiable"] and not torch.is_tensor(g["lr"])
        for g in opt.param_groups
    )


def adam_state(opt: torch.optim.Adam, p: torch.Tensor, fused: bool) -> dict[str, Any]:
    """The optimizer's state for ``p``, created as ``Adam._init_group`` creates it on the first step."""
    state = opt.state[p]
    if not state:
        state["step"] = (
            torch.zeros((), dtype=torch.float32, device=p.device) if fused else torch.tensor(0.0, dtype=torch.float32)
        )
        state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    return state


def zero_grads(optimizers: Iterable[torch.optim.Optimizer]) -> None:
    """``zero_grad(set_to_none=True)`` without the per-call profiler/hook bookkeeping."""
    for opt in optimizers:
        for group in opt.param_groups:
            for p in group["params"]:
                p.grad = None


def step_all(optimizers: Iterable[torch.optim.Optimizer]) -> None:
    """Step every optimizer once; Adam groups with equal hyperparameters share one functional ``adam`` call."""
    batches: dict[tuple, tuple[list[torch.Tensor], ...]] = {}
    for opt in optimizers:
        if not _fast_path(opt):
            opt.step()
            continue
        for g in opt.param_groups:
            key = tuple(tuple(g[k]) if k == "betas" else g.get(k) for k in _HYPER)
            lists = batches.setdefault(key, ([], [], [], [], []))
            for p in g["params"]:
                if p.grad is None:
                    continue
                s = adam_state(opt, p, bool(g["fused"]))
                for lst, t in zip(lists, (p, p.grad, s["exp_avg"], s["exp_avg_sq"], s["step"]), strict=True):
                    lst.append(t)
    for key, (params, grads, exp_avgs, exp_avg_sqs, steps) in batches.items():
        if not params:
            continue
        h = dict(zip(_HYPER, key, strict=True))
        with torch.no_grad():
            adam(
                params,
                grads,
                exp_avgs,
                exp_avg_sqs,
                [],
                steps,
                foreach=h["foreach"],
                fused=h["fused"],
                decoupled_weight_decay=bool(h["decoupled_weight_decay"]),
                amsgrad=False,
                beta1=h["betas"][0],
                beta2=h["betas"][1],
                lr=h["lr"],
                weight_decay=h["weight_decay"],
                eps=h["eps"],
                maximize=h["maximize"],
            )
