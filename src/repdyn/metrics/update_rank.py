"""Update-rank matrix (docs/metrics.md#update-rank; Lyle et al. 2022b, arXiv:2206.02126, §5.1 and App. B.1).

Sample k transitions τ_1..τ_k and n probe inputs x_1..x_n. For each i take ONE optimisation step on the loss of τ_i
alone, from the current parameters θ **and the current optimizer state** (Adam moments and step count included),
giving θ_i; then

    A_ij = V_{θ_i}(x_j) − V_θ(x_j)                               (value / Q reduced per action / any scalar output)
    A_ij = ‖p_{θ_i}(·|x_j) − p_θ(·|x_j)‖₂                          (policies: probability vectors)

and ``update_rank`` = #{σ ∈ SVD(A) : σ > 0.1 σ_max} (App. B.1, after Maddox et al. 2020). A tabular value function
gives a diagonal (full-rank) A, a single shared parameter gives rank 1 (§5.1).

Vectorised: per-sample gradients with ``vmap(grad(loss_fn))``, the optimizer update applied functionally to the whole
stack ``[k, *param.shape]`` (re-implementing ``torch.optim.Adam``/``AdamW``/``SGD`` single-tensor maths exactly), and
``vmap(functional_call)`` over the k parameter sets — no deep copies of the model or the optimizer, which are left
untouched. Chunks over k bound memory (``chunk_size``, ``max_chunk_bytes``).

Degenerate input: zero weights, constant inputs and k = 1 or n = 1 are ordinary: identical transitions give identical
rows and identical probes identical columns, so A has rank ≤ 1; a zero update (zero gradients, e.g. an all-dead
network) gives A = 0 and rank 0. A non-finite A (NaN/±inf inputs or parameters) gives rank NaN instead of LAPACK's
"failed to converge" error. Rank threshold after Maddox, Benton & Wilson 2020, "Rethinking Parameter Counting in Deep
Models: Effective Dimensionality Revisited", arXiv:2003.02139.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap
from torch.utils._pytree import tree_flatten, tree_map

from repdyn.metrics.ntk import default_output_fn, q_reduction

__all__ = ["OUTPUTS", "UpdateRank", "functional_optimizer_step", "update_matrix", "update_rank", "update_rank_metrics"]

OUTPUTS = ("value", "q_max", "q_mean", "q_taken", "policy")
LossFn = Callable[[dict[str, Tensor], dict[str, Tensor], Any], Tensor]


class UpdateRank(NamedTuple):
    matrix: Tensor  # A [k, n]
    rank: int | float  # an int; NaN when A is non-finite


def update_rank(A: Tensor, threshold: float = 0.1) -> int | float:
    """#{σ ∈ SVD(A) : σ > threshold · σ_max} (Lyle et al. 2022b App. B.1, ε = 0.1); 0 for the zero matrix.

    Degenerate input: the zero matrix → 0; a rank-one A (constant, identical rows or columns) → 1; finite A of any
    magnitude is fine (the SVD runs in float64 on A / max|A|; the rank is scale-invariant); a non-finite A → float
    NaN."""
    if A.ndim != 2:
        raise ValueError(f"A must be a matrix [k, n], got shape {tuple(A.shape)}")
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold must be in [0, 1), got {threshold!r}")
    A = A.detach().double()
    if not bool(torch.isfinite(A).all()):
        return float("nan")
    scale = A.abs().max() if A.numel() else A.new_zeros(())
    if scale == 0:
        return 0
    s = torch.linalg.svdvals(A / scale)
    return int((s > threshold * s[0]).sum().item())


# ----------------------------------------------------------------------------------------------------------------------
# functional optimizer steps on stacks of gradients


def _adam(theta: Tensor, g: Tensor, state: dict[str, Any], group: dict[str, Any], decoupled: bool) -> Tensor:
    """torch.optim.Adam / AdamW single-tensor update, applied to a stack of gradients ``g`` ``[c, *theta.shape]``.

    Same operations in the same order as ``torch.optim.adam._single_tensor_adam`` (lerp, mul + addcmul, sqrt / bias
    correction + eps, addcdiv), so each row equals a real ``optimizer.step()``; the state terms (β₂ v, decayed θ) are
    computed once unstacked and broadcast, and ``g`` (ours, fresh from vmap) is reused in place."""
    lr, (b1, b2), eps, wd = float(group["lr"]), group["betas"], group["eps"], group["weight_decay"]
    if group.get("maximize", False):
        g = g.neg_()
    if wd != 0:
        if decoupled:
            theta = theta * (1 - lr * wd)
        else:
            g = g.add_(theta, alpha=wd)
    t = float(state["step"]) + 1 if "step" in state else 1.0
    m_old, v_old = state.get("exp_avg"), state.get("exp_avg_sq")
    m = g * (1 - b1) if m_old is None else torch.lerp(m_old.expand_as(g), g, 1 - b1)
    v = torch.addcmul(torch.zeros_like(theta) if v_old is None else v_old * b2, g, g, value=1 - b2)
    if group.get("amsgrad", False) and state.get("max_exp_avg_sq") is not None:
        v = torch.maximum(state["max_exp_avg_sq"], v)
    step_size = lr / (1 - b1**t)
    denom = v.sqrt_().div_(math.sqrt(1 - b2**t)).add_(eps)
    return torch.addcdiv(theta, m, denom, value=-step_size)


def _sgd(theta: Tensor, g: Tensor, state: dict[str, Any], group: dict[str, Any]) -> Tensor:
    """torch.optim.SGD single-tensor update (momentum, dampening, Nesterov, weight decay) on a stack of gradients."""
    lr, wd, mom = float(group["lr"]), group["weight_decay"], group["momentum"]
    if group.get("maximize", False):
        g = -g
    if wd != 0:
        g = g + wd * theta
    if mom != 0:
        buf = state.get("momentum_buffer")
        buf = g if buf is None else mom * buf + (1 - group["dampening"]) * g
        g = g + mom * buf if group["nesterov"] else buf
    return theta - lr * g


def functional_optimizer_step(
    optimizer: torch.optim.Optimizer, params: dict[str, Tensor], grads: dict[str, Tensor], names: dict[int, str]
) -> dict[str, Tensor]:
    """One step of ``optimizer`` (Adam, AdamW or SGD) from its current state for a stack of gradients per parameter.

    ``params``: name → current value; ``grads``: name → ``[c, *shape]``; ``names``: ``id(param) → name`` for the
    optimizer's parameter objects. Returns name → ``[c, *shape]`` updated values; the optimizer is not modified.

    Degenerate input: zero gradients from a fresh (or zero-moment) optimizer leave the parameters exactly unchanged;
    non-finite gradients propagate into the returned parameters (no error)."""
    if not isinstance(optimizer, torch.optim.Adam | torch.optim.SGD):
        raise ValueError(f"optimizer must be torch.optim.Adam, AdamW or SGD, got {type(optimizer).__name__}")
    out = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            name = names.get(id(p))
            if name is None or name not in grads:
                continue
            state = optimizer.state.get(p, {})
            if isinstance(optimizer, torch.optim.Adam):
                decoupled = bool(group.get("decoupled_weight_decay", isinstance(optimizer, torch.optim.AdamW)))
                out[name] = _adam(params[name], grads[name], state, group, decoupled)
            else:
                out[name] = _sgd(params[name], grads[name], state, group)
    return out


# ----------------------------------------------------------------------------------------------------------------------
# the update matrix


def _output_fn(output: str | Callable[..., Tensor]) -> tuple[Callable[..., Tensor], bool]:
    """(fn(raw[, aux]) -> [n] or [n, m], needs_aux)."""
    if callable(output):
        return output, False
    if output not in OUTPUTS:
        raise ValueError(f"output={output!r}; choose one of {list(OUTPUTS)} or pass a callable")
    if output == "value":
        return default_output_fn, False
    if output == "policy":
        return lambda raw: torch.softmax((raw[0] if isinstance(raw, tuple | list) else raw), dim=-1), False
    return q_reduction(output.removeprefix("q_")), output == "q_taken"


def _batch_size(batch: Any) -> int:
    """The common leading dim k of the tensors in ``batch`` (a tensor or pytree); ValueError if there is none."""
    leaves, _ = tree_flatten(batch)
    if not leaves or not all(isinstance(v, Tensor) for v in leaves):
        raise ValueError("batch must be a tensor or a pytree of tensors with leading dim k")
    k = leaves[0].shape[0]
    if any(v.shape[0] != k for v in leaves) or k == 0:
        raise ValueError("every tensor in batch needs the same non-zero leading dim k")
    return k


def _split_parameters(
    model: nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[dict[int, str], dict[str, Tensor], dict[str, Tensor]]:
    """(id → name, the parameters ``optimizer`` steps, the others), detached: only the stepped ones move."""
    names = {id(p): n for n, p in model.named_parameters()}
    # a frozen parameter (requires_grad off, e.g. plasticity injection's old head) is never stepped by the optimizer
    stepped = {names[id(p)] for g in optimizer.param_groups for p in g["params"] if id(p) in names and p.requires_grad}
    if not stepped:
        raise ValueError("optimizer holds none of model's parameters")
    all_params = {n: p.detach() for n, p in model.named_parameters()}
    diff = {n: v for n, v in all_params.items() if n in stepped}
    const = {n: v for n, v in all_params.items() if n not in stepped}
    return names, diff, const


def update_matrix(
    model: nn.Module,
    loss_fn: LossFn,
    batch: Any,
    optimizer: torch.optim.Optimizer,
    probe_x: Tensor,
    *,
    output: str | Callable[..., Tensor] = "value",
    probe_aux: Tensor | None = None,
    chunk_size: int = 64,
    max_chunk_bytes: int = 2**28,
) -> Tensor:
    """Update matrix A ``[k, n]`` of docs/metrics.md#update-rank (module docstring).

    ``loss_fn(params, buffers, sample) -> scalar`` is the training loss of ONE sample (the leaves of ``sample`` have no
    batch dim; call ``functional_call(model, (params, buffers), (obs.unsqueeze(0),))`` inside). ``batch``: a tensor or
    pytree (dict/tuple) of tensors with leading dim k. ``optimizer``: the live Adam/AdamW/SGD whose parameters are
    (some of) ``model``'s; only those parameters move, from the optimizer's current state.
    ``output``: ``"value"`` (scalar head), ``"q_max"``/``"q_mean"``/``"q_taken"`` (``probe_aux`` = probe actions),
    ``"policy"`` (softmax of the logits, A_ij = L2 norm of the probability change), or a callable mapping the model's
    raw return on the probes to ``[n]`` (difference) or ``[n, m]`` (L2 norm of the difference).

    Degenerate input: k = 1 or n = 1 give a 1-row / 1-column A; NaN/±inf samples, probes or parameters propagate into A
    (no error); see the module docstring.
    """
    out_fn, needs_aux = _output_fn(output)
    if needs_aux and probe_aux is None:
        raise ValueError("output='q_taken' needs probe_aux (the probe transitions' actions)")
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    k = _batch_size(batch)
    names, diff, const = _split_parameters(model, optimizer)
    buffers = {n: b.detach() for n, b in model.named_buffers()}

    def sample_loss(d: dict[str, Tensor], sample: Any) -> Tensor:
        return loss_fn({**const, **d}, buffers, sample)

    def probe_out(d: dict[str, Tensor]) -> Tensor:
        raw = functional_call(model, ({**const, **d}, buffers), (probe_x,))
        return out_fn(raw, probe_aux) if needs_aux else out_fn(raw)

    per_sample_grads = vmap(grad(sample_loss), in_dims=(None, 0))
    outputs = vmap(probe_out)
    with torch.no_grad():
        base = probe_out(diff)
    if base.ndim not in (1, 2) or base.shape[0] != probe_x.shape[0]:
        raise ValueError(f"output must give [n] or [n, m] on the probes, got {tuple(base.shape)}")

    n_params = sum(v.numel() for v in diff.values())
    itemsize = next(iter(diff.values())).element_size()
    # grads, two moments and the new parameters: ~4 stacks of [c, P] alive at once.
    c = max(1, min(chunk_size, max_chunk_bytes // max(1, 4 * n_params * itemsize)))
    rows = []
    for start in range(0, k, c):
        chunk = tree_map(lambda v, s=start: v[s : s + c], batch)
        g = per_sample_grads(diff, chunk)
        new = functional_optimizer_step(optimizer, diff, g, names)
        y = outputs(new).detach()
        rows.append(y - base if base.ndim == 1 else (y - base).norm(dim=-1))
    return torch.cat(rows)


def update_rank_metrics(
    model: nn.Module,
    loss_fn: LossFn,
    batch: Any,
    optimizer: torch.optim.Optimizer,
    probe_x: Tensor,
    *,
    threshold: float = 0.1,
    **kwargs: Any,
) -> UpdateRank:
    """:func:`update_matrix` and its :func:`update_rank`; logged as ``update_rank/<net>/rank``.

    Degenerate input: rank in [0, min(k, n)] for finite A, NaN for a non-finite A (module docstring)."""
    A = update_matrix(model, loss_fn, batch, optimizer, probe_x, **kwargs)
    return UpdateRank(A, update_rank(A, threshold))
