"""Empirical neural tangent kernel (eNTK) and its summary metrics (docs/metrics.md#empirical-ntk, Jansson 2025 §2.3-6).

For a network with one scalar output per input, ``f(x; θ)``, on inputs A = {x_1..x_n}:

    K(A, A)_ij = ∇_θ f(x_i) · ∇_θ f(x_j)            (θ = every parameter with ``requires_grad``)

Two exact ways to compute K, never a Python loop over samples:

- ``"jacobian"`` (generic, any module): per-sample gradients with ``torch.func`` (``vmap(grad(functional_call))``) over
  chunks of inputs; K is accumulated block by block ``K[I, J] = J_I J_Jᵀ`` so at most two chunk Jacobians
  ``[chunk, P]`` live at once (1000 inputs of the 1.7M-parameter Nature CNN fit in a few hundred MB).
- ``"structured"`` (``nn.Linear`` layers): for a linear layer z = W h + b the per-sample gradient is the outer product
  δ_i h_iᵀ (δ = ∂f/∂z), so its kernel contribution is (Δ Δᵀ) ⊙ (H Hᵀ + 1) — the "structured derivatives" rule of
  Novak et al. 2022 (Fast Finite Width NTK). Δ comes from ONE batched backward pass: without batch-coupling layers
  (no BatchNorm), ∂(Σ_i f_i)/∂z[i] = ∂f_i/∂z[i]. Cost O(n² · width) instead of O(n² · P).

``method="auto"`` (default) uses the structured rule for every ``nn.Linear`` called exactly once on 2-D inputs and the
jacobian rule for every other parameter (convolutions, Linear layers reused or applied to >2-D inputs); the two parts
add up because K is a sum over parameters. ``benchmark: python -m repdyn.bench.metrics`` prints the measured gains.

Degenerate input: zero weights, constant inputs and a single sample are ordinary inputs here (an MLP with every
weight 0 has ∇f = ∂f/∂(output bias) for every input, so K is constant: all ones for a scalar head); non-finite inputs
or parameters give NaN entries and :func:`ntk_metrics` then NaN summaries, never an error. NTK: Jacot, Gabriel &
Hongler 2018, "Neural Tangent Kernel: Convergence and Generalization in Neural Networks", arXiv:1806.07572;
structured derivatives: Novak, Sohl-Dickstein & Schoenholz 2022, "Fast Finite Width Neural Tangent Kernel",
arXiv:2206.08720.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

__all__ = [
    "QReduction",
    "default_output_fn",
    "kernel_test_alignment",
    "ntk_diag",
    "ntk_gram",
    "ntk_metrics",
    "ntk_summary",
    "q_reduction",
    "scalar_outputs",
]

OutputFn = Callable[..., Tensor]
_METHODS = ("auto", "jacobian", "structured")
_Q_KINDS = ("max", "mean", "taken")


def default_output_fn(raw: Any) -> Tensor:
    """Map a model's raw return to one scalar per sample: element 0 of a tuple (our models return
    ``(out, features, preacts)``), then squeeze a trailing dimension of size 1 (critics return ``[n, 1]``)."""
    out = raw[0] if isinstance(raw, tuple | list) else raw
    if out.ndim >= 2 and out.shape[-1] == 1:
        out = out.squeeze(-1)
    return out


class QReduction:
    """Reduce Q-values ``[n, A]`` (element 0 of the model's return) to one scalar per sample.

    ``kind``: ``"max"`` (max_a Q, gradient through the arg-max action), ``"mean"`` (mean_a Q) or ``"taken"``
    (Q(s, a_taken)). For ``"taken"`` the actions come either from the constructor (fixed batch) or from the ``aux``
    argument, which is how :func:`ntk_gram` / :func:`ntk_diag` pass each sample's action (``aux1``/``aux2``/``aux``).
    """

    def __init__(self, kind: str, actions: Tensor | None = None) -> None:
        if kind not in _Q_KINDS:
            raise ValueError(f"q_reduction kind={kind!r}; choose one of {list(_Q_KINDS)}")
        self.kind = kind
        self.actions = actions

    def __call__(self, raw: Any, aux: Tensor | None = None) -> Tensor:
        q = raw[0] if isinstance(raw, tuple | list) else raw
        if self.kind == "max":
            return q.max(dim=-1).values
        if self.kind == "mean":
            return q.mean(dim=-1)
        actions = aux if aux is not None else self.actions
        if actions is None:
            raise ValueError("q_reduction('taken') needs actions: pass actions=... or aux=... (per-sample actions)")
        return q.gather(-1, actions.long().reshape(*q.shape[:-1], 1)).squeeze(-1)

    def __repr__(self) -> str:
        return f"QReduction({self.kind!r})"


def q_reduction(kind: str, actions: Tensor | None = None) -> QReduction:
    """Output function for Q-networks: ``"max"`` | ``"mean"`` | ``"taken"`` (see :class:`QReduction`)."""
    return QReduction(kind, actions)


def scalar_outputs(model: nn.Module, x: Tensor, output_fn: OutputFn | None = None, aux: Tensor | None = None) -> Tensor:
    """Evaluate ``model`` on a batch and reduce to one scalar per sample ``[n]`` with ``output_fn`` (and ``aux``)."""
    return _apply_output_fn(output_fn or default_output_fn, model(x), aux, x.shape[0])


def _apply_output_fn(output_fn: OutputFn, raw: Any, aux: Tensor | None, n: int) -> Tensor:
    y = output_fn(raw) if aux is None else output_fn(raw, aux)
    if y.shape != (n,):
        raise ValueError(
            f"output_fn must return one scalar per sample (shape [{n}]), got {tuple(y.shape)}; "
            "for Q-networks pass output_fn=q_reduction('max'|'mean'|'taken')"
        )
    return y


def _check_inputs(x1: Tensor, x2: Tensor | None, aux1: Tensor | None, aux2: Tensor | None, chunk_size: int) -> None:
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    if x1.ndim < 1 or x1.shape[0] == 0:
        raise ValueError(f"x1 must be a non-empty batch [n, ...], got shape {tuple(x1.shape)}")
    if x2 is not None and x2.shape[1:] != x1.shape[1:]:
        raise ValueError(f"x2 per-sample shape {tuple(x2.shape[1:])} differs from x1's {tuple(x1.shape[1:])}")
    for name, aux, x in (("aux1", aux1, x1), ("aux2", aux2, x2)):
        if aux is not None and (x is None or aux.shape[0] != x.shape[0]):
            raise ValueError(f"{name} must have one entry per sample of its inputs")


def _trainable(model: nn.Module) -> dict[str, Tensor]:
    params = {k: p for k, p in model.named_parameters() if p.requires_grad}
    if not params:
        raise ValueError("model has no parameter with requires_grad=True; the NTK is undefined")
    return params


def _pname(module: str, param: str) -> str:
    """Qualified parameter name (the root module's name is "")."""
    return f"{module}.{param}" if module else param


def _chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


# ----------------------------------------------------------------------------------------------------------------------
# structured part: nn.Linear layers


class _LinearTape:
    """Forward hooks on ``nn.Linear`` modules recording (input h, output z) of each call."""

    def __init__(self, modules: dict[str, nn.Linear]) -> None:
        self.records: dict[str, list[tuple[Tensor, Tensor]]] = {name: [] for name in modules}
        self.handles = [m.register_forward_hook(self._hook(name)) for name, m in modules.items()]

    def _hook(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
            self.records[name].append((inputs[0], output))

        return hook

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def _structured_modules(model: nn.Module, params: dict[str, Tensor], x: Tensor) -> list[str]:
    """Names of ``nn.Linear`` modules the structured rule is exact for: called once per forward on [n, d] inputs,
    with at least one trainable parameter. Probed with a forward pass on two samples."""
    linears = {name: m for name, m in model.named_modules() if type(m) is nn.Linear}
    tape = _LinearTape(linears)
    try:
        with torch.no_grad():
            model(x[:2])
    finally:
        tape.close()
    ok = []
    for name, recs in tape.records.items():
        trainable = any(_pname(name, p) in params for p in ("weight", "bias"))
        if trainable and len(recs) == 1 and recs[0][0].ndim == 2 and recs[0][0].shape[0] == min(2, x.shape[0]):
            ok.append(name)
    return ok


def _linear_factors(
    model: nn.Module,
    modules: list[str],
    params: dict[str, Tensor],
    x: Tensor,
    output_fn: OutputFn,
    aux: Tensor | None,
    chunk_size: int,
) -> dict[str, tuple[Tensor, Tensor]]:
    """Per-module (Δ [n, d_out], H̃ [n, d_in(+1)]) with H̃ = [h, 1] restricted to trainable weight / bias, so that the
    module's kernel contribution is (Δ1 Δ2ᵀ) ⊙ (H̃1 H̃2ᵀ)."""
    named = dict(model.named_modules())
    deltas: dict[str, list[Tensor]] = {m: [] for m in modules}
    inputs: dict[str, list[Tensor]] = {m: [] for m in modules}
    for sl in _chunks(x.shape[0], chunk_size):
        tape = _LinearTape({m: named[m] for m in modules})
        try:
            with torch.enable_grad():
                y = _apply_output_fn(output_fn, model(x[sl]), None if aux is None else aux[sl], sl.stop - sl.start)
                zs = [tape.records[m][0][1] for m in modules]
                gs = torch.autograd.grad(y.sum(), zs, allow_unused=True)
        finally:
            tape.close()
        for m, z, g in zip(modules, zs, gs, strict=True):
            deltas[m].append(torch.zeros_like(z) if g is None else g.detach())
            inputs[m].append(tape.records[m][0][0].detach())
    factors = {}
    for m in modules:
        h = torch.cat(inputs[m])
        cols = []
        if _pname(m, "weight") in params:
            cols.append(h)
        if _pname(m, "bias") in params:
            cols.append(torch.ones(h.shape[0], 1, dtype=h.dtype, device=h.device))
        factors[m] = (torch.cat(deltas[m]), torch.cat(cols, dim=1))
    return factors


# ----------------------------------------------------------------------------------------------------------------------
# jacobian part: torch.func per-sample gradients


def _per_sample_grad_fn(
    model: nn.Module, diff: dict[str, Tensor], const: dict[str, Tensor], output_fn: OutputFn, with_aux: bool
) -> Callable[..., dict[str, Tensor]]:
    def f(p: dict[str, Tensor], x: Tensor, aux: Tensor | None = None) -> Tensor:
        raw = functional_call(model, (p, const), (x.unsqueeze(0),))
        y = output_fn(raw) if aux is None else output_fn(raw, aux.unsqueeze(0))
        return y.reshape(())

    in_dims = (None, 0, 0) if with_aux else (None, 0)
    return vmap(grad(f), in_dims=in_dims)


def _flat_jacobian(gfn: Callable[..., dict[str, Tensor]], diff: dict[str, Tensor], x: Tensor, aux) -> Tensor:
    g = gfn(diff, x) if aux is None else gfn(diff, x, aux)
    return torch.cat([v.reshape(x.shape[0], -1) for v in g.values()], dim=1)


def _jacobian_chunk(n_params: int, itemsize: int, chunk_size: int, max_chunk_bytes: int) -> int:
    return max(1, min(chunk_size, max_chunk_bytes // max(1, n_params * itemsize)))


def _split_params(
    model: nn.Module, params: dict[str, Tensor], structured: list[str]
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    covered = {_pname(m, p) for m in structured for p in ("weight", "bias")}
    diff = {k: v.detach() for k, v in params.items() if k not in covered}
    const = {k: v.detach() for k, v in model.named_parameters() if k not in diff}
    const.update(dict(model.named_buffers()))
    return diff, const


def _resolve(model: nn.Module, params: dict[str, Tensor], x: Tensor, method: str) -> list[str]:
    if method not in _METHODS:
        raise ValueError(f"method={method!r}; choose one of {list(_METHODS)}")
    if method == "jacobian":
        return []
    structured = _structured_modules(model, params, x)
    if method == "structured":
        covered = {_pname(m, p) for m in structured for p in ("weight", "bias")}
        rest = sorted(set(params) - covered)
        if rest:
            raise ValueError(
                f"method='structured' needs every trainable parameter in a once-called nn.Linear; not: {rest}"
            )
    return structured


def ntk_gram(
    model: nn.Module,
    x1: Tensor,
    x2: Tensor | None = None,
    *,
    output_fn: OutputFn | None = None,
    chunk_size: int = 256,
    aux1: Tensor | None = None,
    aux2: Tensor | None = None,
    method: str = "auto",
    max_chunk_bytes: int = 2**28,
) -> Tensor:
    """Empirical NTK Gram matrix ``K[i, j] = ∇_θ f(x1_i) · ∇_θ f(x2_j)``, shape ``[n1, n2]`` (Jansson 2025 §2).

    ``x2=None`` means ``x2 = x1`` (symmetric K(A, A); only the upper block triangle is computed).
    ``output_fn(raw) -> [n]`` maps the model's raw return on a batch to one scalar per sample (default
    :func:`default_output_fn`); with ``aux1``/``aux2`` (per-sample side data such as taken actions) it is called as
    ``output_fn(raw, aux)``. ``chunk_size`` bounds the samples per vmapped Jacobian; ``max_chunk_bytes`` further shrinks
    it so one chunk Jacobian ``[chunk, P]`` stays under that size. ``method``: ``"auto"`` | ``"jacobian"`` |
    ``"structured"`` (module docstring). Parameters are θ = those with ``requires_grad``; the model is not modified,
    and no ``.grad`` is accumulated. Assumes no coupling between samples in the forward pass (eval-mode BatchNorm only).
    The result has the dtype of the model's parameters and is detached.

    Degenerate input: a single sample gives a 1×1 K; identical inputs give a constant K; zero weights give the
    output-bias kernel (module docstring); NaN/±inf inputs or parameters propagate into K (no error). Entries beyond
    the parameters' dtype (float32: ‖∇f‖² > 3.4e38) are ±inf.
    """
    _check_inputs(x1, x2, aux1, aux2, chunk_size)
    output_fn = output_fn or default_output_fn
    params = _trainable(model)
    structured = _resolve(model, params, x1, method)
    symmetric = x2 is None
    if symmetric:
        x2, aux2 = x1, aux1
    n1, n2 = x1.shape[0], x2.shape[0]
    dtype = next(iter(params.values())).dtype
    K = torch.zeros(n1, n2, dtype=dtype, device=x1.device)

    if structured:
        f1 = _linear_factors(model, structured, params, x1, output_fn, aux1, chunk_size)
        f2 = f1 if symmetric else _linear_factors(model, structured, params, x2, output_fn, aux2, chunk_size)
        for m in structured:
            (d1, h1), (d2, h2) = f1[m], f2[m]
            K += (d1 @ d2.T) * (h1 @ h2.T)

    diff, const = _split_params(model, params, structured)
    if diff:
        n_params = sum(v.numel() for v in diff.values())
        c = _jacobian_chunk(n_params, torch.finfo(dtype).bits // 8, chunk_size, max_chunk_bytes)
        gfn = _per_sample_grad_fn(model, diff, const, output_fn, aux1 is not None)
        _add_jacobian_blocks(K, gfn, diff, (x1, aux1), (x2, aux2), c, symmetric)
    return K.detach()


def _add_jacobian_blocks(
    K: Tensor,
    gfn: Callable[..., Any],
    diff: dict[str, Tensor],
    side1: tuple[Tensor, Tensor | None],
    side2: tuple[Tensor, Tensor | None],
    c: int,
    symmetric: bool,
) -> None:
    """K += J1 J2ᵀ block by block over chunks of ``c`` samples (``side`` = (inputs, aux)); symmetric: the upper block
    triangle only, mirrored."""
    (x1, aux1), (x2, aux2) = side1, side2
    rows = list(_chunks(x1.shape[0], c))
    cols = rows if symmetric else list(_chunks(x2.shape[0], c))
    for i, si in enumerate(rows):
        ji = _flat_jacobian(gfn, diff, x1[si], None if aux1 is None else aux1[si])
        for j, sj in enumerate(cols):
            if symmetric and j < i:
                continue
            if symmetric and j == i:
                K[si, sj] += ji @ ji.T
                continue
            jj = _flat_jacobian(gfn, diff, x2[sj], None if aux2 is None else aux2[sj])
            block = ji @ jj.T
            K[si, sj] += block
            if symmetric:
                K[sj, si] += block.T


def ntk_diag(
    model: nn.Module,
    x: Tensor,
    *,
    output_fn: OutputFn | None = None,
    chunk_size: int = 256,
    aux: Tensor | None = None,
    method: str = "auto",
    max_chunk_bytes: int = 2**28,
) -> Tensor:
    """Per-sample NTK diagonal ``K(x_i, x_i) = ‖∇_θ f(x_i)‖²`` ``[n]`` without forming the Gram matrix (used for
    replay eviction, Jansson 2025 §3.7; docs/metrics.md#empirical-ntk). Linear layers: ‖δ_i‖² (‖h_i‖² + 1); other
    parameters: squared norms of ``vmap(grad)`` per-sample gradients, chunked. Same arguments as :func:`ntk_gram`.

    Degenerate input: as :func:`ntk_gram` (equals its diagonal)."""
    _check_inputs(x, None, aux, None, chunk_size)
    output_fn = output_fn or default_output_fn
    params = _trainable(model)
    structured = _resolve(model, params, x, method)
    dtype = next(iter(params.values())).dtype
    out = torch.zeros(x.shape[0], dtype=dtype, device=x.device)
    if structured:
        for d, h in _linear_factors(model, structured, params, x, output_fn, aux, chunk_size).values():
            out += d.square().sum(1) * h.square().sum(1)
    diff, const = _split_params(model, params, structured)
    if diff:
        n_params = sum(v.numel() for v in diff.values())
        c = _jacobian_chunk(n_params, torch.finfo(dtype).bits // 8, chunk_size, max_chunk_bytes)
        gfn = _per_sample_grad_fn(model, diff, const, output_fn, aux is not None)
        for sl in _chunks(x.shape[0], c):
            g = gfn(diff, x[sl]) if aux is None else gfn(diff, x[sl], aux[sl])
            out[sl] += sum(v.reshape(v.shape[0], -1).square().sum(1) for v in g.values())
    return out.detach()


# ----------------------------------------------------------------------------------------------------------------------
# summaries


def ntk_metrics(K: Tensor, y: Tensor | None = None) -> dict[str, float]:
    """Summaries of a symmetric NTK Gram matrix ``K(A, A)`` ``[n, n]`` (Jansson 2025 §2.3-2.6).

    - ``trace`` = Tr K / n (normalised so batch sizes compare).
    - ``entropy`` = −Σ λ̃_i log λ̃_i with λ̃ = λ / Σλ the normalised eigenvalues (von Neumann entropy); eigenvalues are
      clamped at 0 first because round-off makes tiny ones negative; 0 for the zero kernel.
    - ``kernel_alignment`` = yᵀ K y / (‖K‖_F ‖y‖²) for targets y = f*(A) (only when ``y`` is given).

    Kernel-target alignment: Cristianini, Shawe-Taylor, Elisseeff & Kandola 2001, "On Kernel-Target Alignment"
    (NeurIPS); the von Neumann entropy of the normalised spectrum as an effective-dimension measure of K.

    Degenerate input: the zero kernel gives trace 0, entropy 0 and alignment 0; zero targets give alignment 0 (0/0:
    "aligned with nothing" — a finite value, so a dead network or an all-zero target batch is not mistaken for a
    diverged run); a constant kernel or n = 1 has one non-zero eigenvalue, entropy 0. Entropy and alignment are
    scale-invariant and are computed in float64 on K / max|K| and y / max|y|, so finite K of any magnitude gives finite
    values. A non-finite K gives NaN for every key; non-finite y gives NaN alignment only.
    """
    if K.ndim != 2 or K.shape[0] != K.shape[1]:
        raise ValueError(f"K must be a square matrix [n, n], got shape {tuple(K.shape)}")
    n = K.shape[0]
    K = K.detach().double()
    if y is not None:
        y = y.detach().reshape(-1).double()
        if y.shape[0] != n:
            raise ValueError(f"y must have {n} entries (one per kernel row), got {y.shape[0]}")
    if not bool(torch.isfinite(K).all()):
        nan = float("nan")
        return {"trace": nan, "entropy": nan} | ({} if y is None else {"kernel_alignment": nan})
    Kn = _unit_scale(K)
    lam = torch.linalg.eigvalsh(0.5 * (Kn + Kn.T)).clamp_min(0)
    total = lam.sum()
    if total > 0:
        p = lam / total
        entropy = -(p * torch.log(p.where(p > 0, torch.ones_like(p)))).sum().item()
    else:
        entropy = 0.0
    out = {"trace": (torch.diagonal(K).sum() / n).item(), "entropy": entropy}
    if y is not None:
        out["kernel_alignment"] = _alignment(Kn, y, y)
    return out


def _unit_scale(x: Tensor) -> Tensor:
    """``x / max|x|`` (``x`` itself when it is all zeros): every entry in [-1, 1], so products cannot overflow."""
    m = x.abs().max()
    return x / m if m > 0 else x


def _alignment(K: Tensor, y_a: Tensor, y_b: Tensor) -> float:
    """y_bᵀ K y_a / (‖K‖_F ‖y_a‖ ‖y_b‖) in float64 on unit-scaled inputs; 0 when a factor is zero, NaN when y_a or
    y_b is non-finite (K is finite here)."""
    if not (bool(torch.isfinite(y_a).all()) and bool(torch.isfinite(y_b).all())):
        return float("nan")
    K, y_a, y_b = _unit_scale(K.double()), _unit_scale(y_a.double()), _unit_scale(y_b.double())
    denom = torch.linalg.matrix_norm(K) * y_a.norm() * y_b.norm()
    return (y_b @ K @ y_a / denom).item() if denom > 0 else 0.0


def kernel_test_alignment(K_BA: Tensor, y_A: Tensor, y_B: Tensor) -> float:
    """Kernel test alignment y_Bᵀ K(B, A) y_A / (‖K(B, A)‖_F ‖y_A‖ ‖y_B‖) (Jansson 2025 §2.6).

    ``K_BA`` is ``[n_B, n_A]`` (e.g. ``ntk_gram(model, x_B, x_A)``).

    Degenerate input: 0 when K_BA, y_A or y_B is all zeros (0/0, aligned with nothing), finite for finite input of any
    magnitude (computed in float64 on unit-scaled inputs), NaN when any input is non-finite."""
    if K_BA.ndim != 2:
        raise ValueError(f"K_BA must be a matrix [n_B, n_A], got shape {tuple(K_BA.shape)}")
    y_A = y_A.detach().reshape(-1)
    y_B = y_B.detach().reshape(-1)
    if y_A.shape[0] != K_BA.shape[1] or y_B.shape[0] != K_BA.shape[0]:
        raise ValueError(
            f"y_A needs {K_BA.shape[1]} entries and y_B {K_BA.shape[0]}; got {y_A.shape[0]}, {y_B.shape[0]}"
        )
    if not bool(torch.isfinite(K_BA).all()):
        return float("nan")
    return _alignment(K_BA.detach(), y_A, y_B)


def ntk_summary(
    model: nn.Module,
    x: Tensor,
    *,
    y: Tensor | None = None,
    output_fn: OutputFn | None = None,
    aux: Tensor | None = None,
    chunk_size: int = 256,
) -> dict[str, float]:
    """``ntk_metrics(ntk_gram(model, x), y)``: the ``ntk/<net>/{trace,entropy,kernel_alignment}`` record
    (docs/metrics.md#empirical-ntk).

    Degenerate input: as :func:`ntk_gram` then :func:`ntk_metrics` (finite for a finite model and inputs, NaN
    summaries for non-finite ones)."""
    K = ntk_gram(model, x, output_fn=output_fn, aux1=aux, chunk_size=chunk_size)
    return ntk_metrics(K, y)
