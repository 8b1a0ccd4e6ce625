"""Capacity loss, the fitting part (docs/metrics.md#capacity-loss; Lyle et al. 2022; Moalla et al. 2024 App. B.2).

Given a checkpoint ``model``, a frozen random ``target`` network of the same architecture and a dataset of
observations collected by the target's own policy, fit a COPY of the checkpoint to the target's outputs with a fresh
Adam built from the training optimizer's settings (App. B.2: "reconstructed from its initial state"), for a
fixed budget of epochs of shuffled minibatches, and report the loss at the end of the budget:

- actors: forward KL(target ‖ fit), mean over states, summed over action dims —
  categorical Σ_a p_t (log p_t − log p_f); Normal per dim log(σ_f/σ_t) + (σ_t² + (μ_t − μ_f)²) / (2σ_f²) − ½.
  TanhNormal uses the KL of the underlying Normals; this is *exact*, not an approximation: KL is invariant under the
  same invertible map (tanh, then the affine rescaling to the action bounds) applied to both distributions.
- critics: L2, mean over states of (V_fit − V_target)².

"Loss at the end of the budget" is evaluated on the WHOLE dataset after the last step (no-grad, in chunks), not the
mean over the final epoch: it is then a property of the fitted network alone, not of the minibatch order — our choice.
Collecting the dataset, the cadence and the offline CLI are the training loop's job; this module is pure given its
inputs (the checkpoint is deep-copied once; the target is only evaluated).

Degenerate input: a checkpoint equal to the target (zero weights included) gives 0 for the critic and ≈ 0 for actors;
constant observations and a single observation are ordinary datasets. The reported loss is evaluated in float64, so
finite outputs of any float32 magnitude give a finite loss (a critic whose values are 1e25 has a squared error of
1e50, beyond float32); the categorical KL uses 0·log 0 = 0, so logits saturated to probability 0 contribute 0, not
NaN. Non-finite observations or outputs (a diverged checkpoint) give NaN. Capacity loss: Lyle, Rowland & Dabney 2022,
"Understanding and Preventing Capacity Loss in Reinforcement Learning", arXiv:2204.09560; its PPO protocol: Moalla,
Miele, Pyatko, Pascanu & Gulcehre 2024, "No Representation, No Trust: Connecting Representation, Collapse, and Trust
Issues in PPO", arXiv:2405.00662.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from repdyn.metrics.ntk import default_output_fn
from repdyn.progress import progress_bar

__all__ = ["CAPACITY_KINDS", "capacity_loss", "fit_to_target"]

CAPACITY_KINDS = ("actor_categorical", "actor_tanh_normal", "actor_normal", "critic")
DistParamsFn = Callable[[Any], Any]


def _default_params(kind: str) -> DistParamsFn:
    """Default readers of a network's raw return (the ``repdyn.agents.networks`` layout): categorical → element 0
    (logits); (Tanh)Normal → elements 0 and 1 (loc, scale); critic → element 0 squeezed to [n]."""
    if kind == "actor_categorical":
        return lambda raw: raw[0] if isinstance(raw, tuple | list) else raw
    if kind == "critic":
        return default_output_fn
    return lambda raw: (raw[0], raw[1])


def capacity_loss(kind: str, fit: Any, target: Any) -> Tensor:
    """Mean-over-states fitting loss between distribution parameters / values (module docstring formulas).

    ``fit``/``target``: logits ``[n, A]`` (categorical), ``(loc, scale)`` each ``[n, A]`` (Normal, TanhNormal's
    underlying Normal) or values ``[n]`` (critic).

    Degenerate input: identical ``fit`` and ``target`` give exactly 0 at any finite magnitude (the Normal KL is computed
    from the ratios σ_t/σ_f and (μ_t − μ_f)/σ_f, which do not overflow when σ² would; terms with target probability 0
    contribute 0); scales must be positive (the networks floor them at 1e-4); any non-finite input gives NaN. Computed
    in the inputs' dtype (the fitting loop's); :func:`fit_to_target` reports its final loss in float64."""
    if kind not in CAPACITY_KINDS:
        raise ValueError(f"kind={kind!r}; choose one of {list(CAPACITY_KINDS)}")
    if kind == "actor_categorical":
        lt, lf = torch.log_softmax(target, -1), torch.log_softmax(fit, -1)
        pt = lt.exp()
        loss = torch.where(pt > 0, pt * (lt - lf), torch.zeros_like(pt)).sum(-1).mean()
        inputs = (fit, target)
    elif kind == "critic":
        loss = (fit - target).square().mean()
        inputs = (fit, target)
    else:
        (mt, st), (mf, sf) = target, fit
        r = st / sf
        kl = -torch.log(r) + 0.5 * (r.square() + ((mt - mf) / sf).square()) - 0.5
        loss = kl.sum(-1).mean()
        inputs = (mt, st, mf, sf)
    finite = torch.stack([torch.isfinite(x).all() for x in inputs]).all()
    return torch.where(finite, loss, torch.full_like(loss, float("nan")))


def _detach(x: Any) -> Any:
    return tuple(t.detach() for t in x) if isinstance(x, tuple) else x.detach()


def _double(x: Any) -> Any:
    return tuple(t.double() for t in x) if isinstance(x, tuple) else x.double()


def _index(x: Any, idx: Tensor | slice) -> Any:
    return tuple(t[idx] for t in x) if isinstance(x, tuple) else x[idx]


def _cat(parts: Sequence[Any]) -> Any:
    if isinstance(parts[0], tuple):
        return tuple(torch.cat(ps) for ps in zip(*parts, strict=True))
    return torch.cat(parts)


def _evaluate(net: nn.Module, read: DistParamsFn, obs: Tensor, chunk: int) -> Any:
    with torch.no_grad():
        return _cat([_detach(read(net(obs[s : s + chunk]))) for s in range(0, obs.shape[0], chunk)])


def _check_fit_args(
    kind: str, epochs: int, minibatch_size: int, eval_chunk: int, lr: float, max_grad_norm: float | None, obs: Tensor
) -> None:
    if kind not in CAPACITY_KINDS:
        raise ValueError(f"kind={kind!r}; choose one of {list(CAPACITY_KINDS)}")
    for name, v in (("epochs", epochs), ("minibatch_size", minibatch_size), ("eval_chunk", eval_chunk)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    if max_grad_norm is not None and not max_grad_norm > 0:
        raise ValueError(f"max_grad_norm must be > 0 or None, got {max_grad_norm!r}")
    if obs.ndim < 2 or obs.shape[0] == 0:
        raise ValueError(f"obs must be a non-empty batch [n, ...], got shape {tuple(obs.shape)}")


def fit_to_target(
    model: nn.Module,
    target: nn.Module,
    obs: Tensor,
    *,
    kind: str,
    epochs: int,
    minibatch_size: int,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    max_grad_norm: float | None = None,
    generator: torch.Generator | None = None,
    dist_params: DistParamsFn | None = None,
    eval_chunk: int = 4096,
    progress: bool = False,
) -> float:
    """Capacity loss of checkpoint ``model``: fit a copy of it to frozen ``target`` on ``obs`` ``[n, ...]``
    (docs/metrics.md#capacity-loss; module docstring) and return the whole-dataset loss after ``epochs`` epochs.

    ``kind``: ``"actor_categorical"`` | ``"actor_tanh_normal"`` | ``"actor_normal"`` | ``"critic"``.
    Optimizer: fresh ``torch.optim.Adam(lr, betas, eps)``, gradient-norm clipping at ``max_grad_norm`` (None: off).
    ``generator`` shuffles minibatches (default: a generator seeded 0, so the global RNG is untouched).
    ``dist_params(raw)`` reads logits / (loc, scale) / values from a network's raw return (defaults in
    :func:`_default_params`, the ``repdyn.agents.networks`` layout).

    Degenerate input: a single or constant observation, zero-weight checkpoints and targets are fine; the final loss
    is evaluated in float64 (finite for any finite outputs); non-finite observations or outputs give NaN."""
    _check_fit_args(kind, epochs, minibatch_size, eval_chunk, lr, max_grad_norm, obs)
    read = dist_params or _default_params(kind)
    targets = _evaluate(target, read, obs, eval_chunk)
    fit = copy.deepcopy(model)
    for p in fit.parameters():
        p.requires_grad_(True)
    opt = torch.optim.Adam(fit.parameters(), lr=lr, betas=tuple(betas), eps=eps)
    gen = generator if generator is not None else torch.Generator(device=obs.device).manual_seed(0)
    n = obs.shape[0]
    steps = epochs * -(-n // minibatch_size)
    bar = progress_bar(total=steps, enabled=progress, desc=f"capacity {kind}", leave=False)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen, device=obs.device)
        for start in range(0, n, minibatch_size):
            idx = perm[start : start + minibatch_size]
            loss = capacity_loss(kind, read(fit(obs[idx])), _index(targets, idx))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if max_grad_norm is not None:
                nn.utils.clip_grad_norm_(fit.parameters(), max_grad_norm)
            opt.step()
            bar.update()
    bar.close()
    return capacity_loss(kind, _double(_evaluate(fit, read, obs, eval_chunk)), _double(targets)).item()
