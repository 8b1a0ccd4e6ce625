"""A whole gradient step — loss, gradients, per-optimizer grad-norm clipping and Adam — as one ``torch.compile``d
function (``train.compile``).

Why: on the paper's small networks (2×64 MLPs, minibatch 64) an eager PyTorch step is ~100 operator calls plus
the autograd engine and ``Optimizer.step``'s bookkeeping, and that per-call overhead, not arithmetic, is its cost
(~2 ms; ``python -m repdyn.bench throughput`` prints the rates). Here the loss is differentiated with
``torch.func.grad_and_value`` over the networks' parameters (``torch.func.functional_call``), and the clipping and
the Adam update are written in the same function, so TorchInductor fuses the forward, the backward and the optimizer
into a handful of C++ kernels: ~3× the eager step rate on a 2×64 Hopper actor-critic. The price is a compilation
of 20–60 s on 2 cores at the first step (cached on disk for later runs), which is why ``train.compile=auto`` turns
it on only for runs with enough gradient steps to repay it (:func:`use_compile`).

Semantics kept from the eager step (``PPOAgent._minibatch_step``, ``DQNAgent``'s TD step):

- the parameters, Adam moments and step counts are the optimizers' own tensors, updated in place, so checkpoints,
  ``adam_reset``/``lr_anneal``/``adam_beta2`` and the Adam-state metrics see what ``opt.step()`` leaves; learning
  rates and betas are read from the param groups at every step (passed as tensors: changing them does not
  recompile);
- Adam is Kingma & Ba 2015 ("Adam: A Method for Stochastic Optimization", arXiv:1412.6980) as ``torch.optim.Adam``
  computes it: m ← β1·m + (1 − β1)·g, v ← β2·v + (1 − β2)·g², θ ← θ − lr/(1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + ε);
- clipping is ``clip_grad_norm_``'s: g ← g · min(1, c / (‖g‖₂ + 1e-6)) over each optimizer's parameters;
- a non-finite loss or gradient norm leaves every tensor unchanged and the caller raises ``Diverged`` naming it;
- random draws (the TanhNormal entropy sample) come from the global generator in eager order
  (``fallback_random``), so a compiled run consumes the same random stream as an eager one.

The numbers agree with the eager step to float32 rounding (fused kernels sum in another order), not bit for bit:
a run is reproducible within one setting of ``train.compile``, and tests/unit/test_compiled_step.py bounds the
difference. Anything the compiled step does not cover falls back to the eager step for that minibatch: intervention
losses, optimizers other than one plain Adam per network, weight decay, a planted NaN.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, grad_and_value

from repdyn.agents.adam_step import adam_state

COMPILE_CHOICES = ("auto", "on", "off")
# train.compile=auto compiles when a run makes at least this many gradient steps: compilation costs 20-60 s and
# saves ~1.5 ms per 2x64 PPO step, so it repays itself after ~30k steps (the default `make run` makes 12,800)
AUTO_MIN_GRAD_STEPS = 50_000


def use_compile(choice: str, grad_steps: int, model: str) -> bool:
    """Whether a run compiles its gradient step: ``on``/``off`` as said; ``auto``: MLP runs of at least
    :data:`AUTO_MIN_GRAD_STEPS` gradient steps (the Nature CNN step is arithmetic-bound: compiling gains little)."""
    if choice not in COMPILE_CHOICES:
        raise ValueError(f"train.compile must be one of {COMPILE_CHOICES}, got {choice!r}")
    if choice == "auto":
        return model == "mlp" and grad_steps >= AUTO_MIN_GRAD_STEPS
    return choice == "on"


def plain_adam(opt: torch.optim.Optimizer) -> bool:
    """``opt`` is one ``torch.optim.Adam`` group without an option the compiled update lacks (checked every step:
    interventions may change these)."""
    if type(opt) is not torch.optim.Adam or len(opt.param_groups) != 1:
        return False
    if opt._optimizer_step_pre_hooks or opt._optimizer_step_post_hooks:
        return False
    g = opt.param_groups[0]
    return not (g["amsgrad"] or g["maximize"] or g["capturable"] or g["differentiable"]) and g["weight_decay"] == 0


def _adam_state(opt: torch.optim.Optimizer, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(exp_avg, exp_avg_sq, step) of ``p``, created as a fused Adam's first step creates them."""
    state = adam_state(opt, p, fused=True)
    return state["exp_avg"], state["exp_avg_sq"], state["step"]


def hyper_tensor(optimizers: Sequence[torch.optim.Optimizer]) -> torch.Tensor:
    """[n_optimizers, 4]: lr, β1, β2, ε of each optimizer's group, read at every step."""
    rows = []
    for opt in optimizers:
        g = opt.param_groups[0]
        rows.append([float(g["lr"]), float(g["betas"][0]), float(g["betas"][1]), float(g["eps"])])
    return torch.tensor(rows, dtype=torch.float32)


@torch.no_grad()
def clipped_adam_(
    params: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    states: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    hyper: torch.Tensor,
    coef: torch.Tensor,
    ok: torch.Tensor,
) -> None:
    """One Adam step in place on the gradients scaled by ``coef`` (the clipping factor; module docstring); where
    ``ok`` is False every tensor keeps its value."""
    lr, beta1, beta2, eps = hyper[0], hyper[1], hyper[2], hyper[3]
    for p, g, (m, v, step) in zip(params, grads, states, strict=True):
        g = g * coef
        t = step + 1
        m_new = m + (g - m) * (1 - beta1)  # torch's lerp form of β1·m + (1 − β1)·g
        v_new = v * beta2 + g * g * (1 - beta2)
        denom = v_new.sqrt() / (1 - beta2**t).sqrt() + eps
        p_new = p - (lr / (1 - beta1**t)) * m_new / denom
        p.copy_(torch.where(ok, p_new, p))
        m.copy_(torch.where(ok, m_new, m))
        v.copy_(torch.where(ok, v_new, v))
        step.copy_(torch.where(ok, t, step))


LossFn = Callable[..., tuple[torch.Tensor, tuple[torch.Tensor, ...]]]
AfterStep = Callable[..., None]


class CompiledStep:
    """One compiled optimisation step over named networks, each trained by its own plain Adam.

    ``loss_fn(params, *data) -> (loss, aux)``: ``params`` maps each network's name to its ``{name: tensor}``
    parameters (call the network with :func:`call`), ``aux`` a tuple of tensors returned as they are. A call
    ``step(networks, optimizers, *data)`` returns ``(loss, grad_norms [n_networks], aux)`` with the networks and
    optimizers updated unless the loss or a norm is non-finite (then nothing changed), or None when the step does not
    apply (the caller takes its eager step): optimizers not one plain Adam per network over exactly its parameters
    (shared trunks, extra heads, weight decay, ...). The networks and optimizers are passed at every call because
    interventions may replace them during a run; a change of parameter objects recompiles.

    Several steps in one call: ``step(networks, optimizers, *data, per_step=(t, ...))`` takes K = ``len(t)`` steps,
    step j on ``loss_fn(params, *data, t[j], ...)``, and returns the losses [K], norms [K, n_networks] and each aux
    stacked over K; a non-finite step and all later ones change nothing. ``after_step(ok, j, flat_params, *data)``
    runs in the graph after each step (DQN's target-network update; ``ok``: the step applied). Why: a DQN update is
    a few steps of a 2×64 network per env-step batch, and the call itself (guards, argument flattening, the
    runtime wrapper) costs about as much as the fused kernels; one call per batch pays it once."""

    def __init__(self, loss_fn: LossFn, max_norm: float, after_step: AfterStep | None = None) -> None:
        self.loss_fn, self.max_norm, self.after_step = loss_fn, max_norm, after_step
        self._layout: tuple = ()
        self._names: dict[str, list[str]] | None = None  # None: the current layout is not supported
        self._compiled: Any = None

    def _check_layout(self, networks: Mapping[str, nn.Module], opts: list[torch.optim.Optimizer]) -> None:
        """On a new set of parameter objects: whether each optimizer holds exactly its network's parameters, in
        order, and if so the parameter names and a fresh compiled step (walking the modules is too slow per step)."""
        self._names = None
        for net, opt in zip(networks.values(), opts, strict=True):
            if [id(p) for p in opt.param_groups[0]["params"]] != [id(p) for p in net.parameters()]:
                return
        self._names = {k: [n for n, _ in net.named_parameters()] for k, net in networks.items()}
        # cpp_wrapper: the kernels are called from generated C++ instead of Python, ~10-15% off a 2x64 DQN step
        # (370 vs 420 us) at the same compilation time (27 vs 28 s with a cold cache), measured in one sitting
        self._compiled = torch.compile(
            self._step_fn(self._names),
            fullgraph=True,
            dynamic=False,
            options={"fallback_random": True, "cpp_wrapper": True},
        )

    def _step_fn(self, names: dict[str, list[str]]) -> Callable[..., Any]:
        value_and_grad = grad_and_value(self.loss_fn, has_aux=True)
        max_norm, after_step = self.max_norm, self.after_step

        def step(flat_params, flat_states, hyper, data, per_step):
            params = {k: dict(zip(names[k], flat_params[k], strict=True)) for k in names}
            # one step, or per_step's length of them unrolled (a static shape: a new length compiles anew); each
            # step's forward reads the parameters the previous step left (in-place updates of the same tensors)
            outs, ok_so_far = [], None
            for j in range(per_step[0].shape[0] if per_step else 1):
                grads, (loss, aux) = value_and_grad(params, *data, *(t[j] for t in per_step))
                norms = torch.stack([_global_norm(list(grads[k].values())) for k in names])
                ok = torch.isfinite(loss) & torch.isfinite(norms).all()
                ok = ok if ok_so_far is None else ok & ok_so_far  # after a non-finite step nothing changes
                coefs = torch.clamp(max_norm / (norms + 1e-6), max=1.0)  # clip_grad_norm_'s factor per optimizer
                for i, k in enumerate(names):
                    clipped_adam_(flat_params[k], list(grads[k].values()), flat_states[k], hyper[i], coefs[i], ok)
                if after_step is not None:
                    after_step(ok, j, flat_params, *data)
                ok_so_far = ok
                outs.append((loss.detach(), norms, tuple(a.detach() for a in aux)))
            if not per_step:
                return outs[0]
            losses, norms, auxes = zip(*outs, strict=True)
            return torch.stack(losses), torch.stack(norms), tuple(torch.stack(a) for a in zip(*auxes, strict=True))

        return step

    def applies(self, networks: Mapping[str, nn.Module], optimizers: Mapping[str, torch.optim.Optimizer]) -> bool:
        """Whether a call with these networks and optimizers takes the compiled step (else it returns None)."""
        if list(networks) != list(optimizers):
            return False
        opts = list(optimizers.values())
        if not all(plain_adam(o) for o in opts):
            return False
        layout = tuple(id(p) for o in opts for p in o.param_groups[0]["params"])
        if layout != self._layout:
            self._check_layout(networks, opts)
            self._layout = layout
        return self._names is not None

    def __call__(
        self,
        networks: Mapping[str, nn.Module],
        optimizers: Mapping[str, torch.optim.Optimizer],
        *data: Any,
        per_step: Sequence[torch.Tensor] = (),
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]] | None:
        return self.run(networks, optimizers, *data, per_step=per_step) if self.applies(networks, optimizers) else None

    def run(
        self,
        networks: Mapping[str, nn.Module],
        optimizers: Mapping[str, torch.optim.Optimizer],
        *data: Any,
        per_step: Sequence[torch.Tensor] = (),
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
        """The call once :meth:`applies` returned True for these networks and optimizers (a caller that must know
        before drawing its data checks first and then runs, without checking twice)."""
        opts = list(optimizers.values())
        params = {k: o.param_groups[0]["params"] for k, o in optimizers.items()}
        flat_params = {k: [p.detach() for p in ps] for k, ps in params.items()}
        flat_states = {k: [_adam_state(optimizers[k], p) for p in ps] for k, ps in params.items()}
        return self._compiled(flat_params, flat_states, hyper_tensor(opts), data, tuple(per_step))


def call(network: nn.Module, params: Mapping[str, torch.Tensor], *args: Any) -> Any:
    """``network(*args)`` with ``params`` in place of its parameters (inside a :class:`CompiledStep` loss)."""
    return functional_call(network, dict(params), args)


def _global_norm(grads: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
