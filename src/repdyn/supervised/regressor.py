"""The MLP regressor of the selection studies and its (batched) training (Jansson 2025 §3.2-3.6).

The thesis does not give its training details, so all of them are config (``conf/supervised/*.yaml`` → ``model`` and
``train``): width, depth, activation, init; optimizer (adam | sgd), lr, momentum, weight decay, number of steps,
full-batch or minibatch, early stopping on a validation split from the unused third.

Every trial of a study is an independent small network with its own data, so we train all of them at once: their
parameters are stacked (``torch.func.stack_module_state``), the forward is ``vmap(functional_call)`` over members, the
loss is the sum of the members' MSEs, and the optimizer runs on the stacked tensors. Adam and SGD (with momentum and
L2 weight decay) act elementwise, so this is exactly the same as training each member alone (tested); it replaces
hundreds of Python-level training loops by one. The networks are :class:`repdyn.models.MLP` (the shared model).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from omegaconf import DictConfig
from torch.func import functional_call, stack_module_state, vmap

from repdyn.models.mlp import MLP
from repdyn.progress import progress_bar

_OPTIMIZERS = ("adam", "sgd")


def make_regressor(in_dim: int, mcfg: DictConfig, seed: int) -> MLP:
    """One regressor ``in_dim → width × depth → 1``; its init is a function of ``seed`` only."""
    if int(mcfg.depth) < 1 or int(mcfg.width) < 1:
        raise ValueError(f"model.width and model.depth must be >= 1, got {mcfg.width}, {mcfg.depth}")
    torch.manual_seed(seed)
    return MLP(in_dim, (int(mcfg.width),) * int(mcfg.depth), 1, activation=str(mcfg.activation), init=str(mcfg.init))


def validate_train_cfg(tcfg: DictConfig) -> None:
    """One clear error for a bad training config, before any compute."""
    if tcfg.optimizer not in _OPTIMIZERS:
        raise ValueError(f"train.optimizer must be one of {_OPTIMIZERS}, got {tcfg.optimizer!r}")
    if float(tcfg.lr) <= 0 or int(tcfg.steps) < 1:
        raise ValueError(f"train.lr must be > 0 and train.steps >= 1, got {tcfg.lr}, {tcfg.steps}")
    if tcfg.batch_size is not None and int(tcfg.batch_size) < 1:
        raise ValueError(f"train.batch_size must be null (full batch) or >= 1, got {tcfg.batch_size}")
    es = tcfg.early_stopping
    if es.enabled and (int(es.patience) < 1 or int(es.val_size) < 1 or int(es.eval_every) < 1):
        raise ValueError("train.early_stopping needs patience, val_size, eval_every >= 1")


@dataclass
class TrainResult:
    train_loss: torch.Tensor  # [N] final (or best-validation) MSE on each member's training set
    test_loss: torch.Tensor  # [N]
    val_loss: torch.Tensor | None  # [N] best validation MSE (early stopping only)
    stop_step: torch.Tensor  # [N] step of the parameters used (n_steps, or the best validation step)


def _check_inputs(n_members: int, x_train: torch.Tensor, x_test: torch.Tensor, tcfg: DictConfig, has_val: bool) -> None:
    validate_train_cfg(tcfg)
    if x_train.shape[0] != n_members or x_test.shape[0] != n_members:
        raise ValueError(f"x_train / x_test need one leading entry per model ({n_members})")
    if tcfg.early_stopping.enabled and not has_val:
        raise ValueError("train.early_stopping.enabled needs x_val and y_val")


def _stacked_forward(models: list[MLP]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], Callable]:
    """Stacked parameters and buffers of ``models`` and ``f(params, buffers, x [N, n, d]) → [N, n]``."""
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")

    def fwd(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(base, (p, b), (x,))[0][:, 0]

    return params, buffers, vmap(fwd, in_dims=(0, 0, 0))


def _make_optimizer(params: list[torch.Tensor], tcfg: DictConfig) -> torch.optim.Optimizer:
    if tcfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=float(tcfg.lr), weight_decay=float(tcfg.weight_decay))
    return torch.optim.SGD(
        params, lr=float(tcfg.lr), momentum=float(tcfg.momentum), weight_decay=float(tcfg.weight_decay)
    )


class _EarlyStopping:
    """Per member: the best validation MSE so far, its parameters and step, and the steps since it improved."""

    def __init__(self, params: dict[str, torch.Tensor], n_steps: int, eval_every: int, patience: int) -> None:
        n_members = next(iter(params.values())).shape[0]
        self.best_val = torch.full((n_members,), float("inf"))
        self.best = {k: v.detach().clone() for k, v in params.items()}
        self.stop_step = torch.full((n_members,), n_steps, dtype=torch.long)
        self.since = torch.zeros(n_members, dtype=torch.long)
        self.eval_every, self.patience = eval_every, patience

    @torch.no_grad()
    def update(self, step: int, val: torch.Tensor, params: dict[str, torch.Tensor]) -> bool:
        """Record the validation MSE ``val`` [N] at ``step``; True once every member went ``patience`` steps
        without improving."""
        better = val < self.best_val
        self.best_val = torch.where(better, val, self.best_val)
        for k, p in params.items():
            self.best[k][better] = p.detach()[better]
        self.stop_step = torch.where(better, torch.full_like(self.stop_step, step), self.stop_step)
        self.since = torch.where(better, torch.zeros_like(self.since), self.since + self.eval_every)
        return bool((self.since >= self.patience).all())

    @torch.no_grad()
    def restore(self, params: dict[str, torch.Tensor]) -> None:
        for k, p in params.items():
            p.copy_(self.best[k])


def train_regressors(
    models: list[MLP],
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    tcfg: DictConfig,
    *,
    x_val: torch.Tensor | None = None,
    y_val: torch.Tensor | None = None,
    seed: int = 0,
    progress: bool = True,
) -> TrainResult:
    """Train member i on (x_train[i], y_train[i]) with MSE; report MSE on its train and test sets.

    Shapes: ``x_*`` [N, n, d], ``y_*`` [N, n]. With ``tcfg.batch_size`` each step draws a fresh random minibatch per
    member (without replacement within the step). With early stopping, validation MSE is computed every
    ``eval_every`` steps and each member ends with its best-validation parameters; the loop ends when every member
    went ``patience`` steps without improving (or at ``steps``).
    """
    n_members = len(models)
    _check_inputs(n_members, x_train, x_test, tcfg, x_val is not None and y_val is not None)
    es = tcfg.early_stopping
    params, buffers, f = _stacked_forward(models)
    opt = _make_optimizer(list(params.values()), tcfg)
    gen = torch.Generator().manual_seed(seed)
    n = x_train.shape[1]
    bs = None if tcfg.batch_size is None else min(int(tcfg.batch_size), n)

    def mse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (f(params, buffers, x) - y).square().mean(1)

    stopper = _EarlyStopping(params, int(tcfg.steps), int(es.eval_every), int(es.patience))
    rows = torch.arange(n_members)[:, None]
    for step in progress_bar(
        range(1, int(tcfg.steps) + 1), enabled=progress, desc="regressors", leave=False, mininterval=5
    ):
        if bs is None:
            xb, yb = x_train, y_train
        else:
            idx = torch.rand(n_members, n, generator=gen).argsort(1)[:, :bs]
            xb, yb = x_train[rows, idx], y_train[rows, idx]
        loss = mse(xb, yb).sum()  # sum over members: each member's gradient is its own
        opt.zero_grad()
        loss.backward()
        opt.step()
        if es.enabled and step % int(es.eval_every) == 0:
            with torch.no_grad():
                if stopper.update(step, mse(x_val, y_val), params):
                    break
    if es.enabled:
        stopper.restore(params)
    with torch.no_grad():
        return TrainResult(
            train_loss=mse(x_train, y_train).detach(),
            test_loss=mse(x_test, y_test).detach(),
            val_loss=stopper.best_val if es.enabled else None,
            stop_step=stopper.stop_step,
        )
