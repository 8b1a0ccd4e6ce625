"""Update-rank matrix (Lyle et al. 2022b §5.1): tabular → diagonal/full rank, one parameter → rank 1, and the
functional optimizer step equals torch.optim's own step taken on a deep copy."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.func import functional_call

from repdyn.metrics.update_rank import update_matrix, update_rank, update_rank_metrics
from repdyn.models.mlp import MLP


def squared_error_loss(model: nn.Module):
    def loss_fn(params, buffers, sample):
        raw = functional_call(model, (params, buffers), (sample["x"].unsqueeze(0),))
        out = raw[0] if isinstance(raw, tuple) else raw
        return (out.reshape(()) - sample["y"]) ** 2

    return loss_fn


def tabular(n_states: int = 6):
    torch.manual_seed(0)
    model = nn.Linear(n_states, 1, bias=False).double()
    eye = torch.eye(n_states, dtype=torch.float64)
    batch = {"x": eye, "y": torch.randn(n_states, dtype=torch.float64) + 3.0}  # every state has a non-zero error
    return model, batch, eye


@pytest.mark.parametrize("opt_cls", [torch.optim.Adam, torch.optim.SGD])
def test_tabular_update_matrix_is_diagonal_and_full_rank(opt_cls) -> None:
    model, batch, eye = tabular()
    opt = opt_cls(model.parameters(), lr=0.1)
    A = update_matrix(model, squared_error_loss(model), batch, opt, eye, chunk_size=4)
    off = A - torch.diag(torch.diagonal(A))
    assert torch.count_nonzero(off) == 0
    assert torch.all(torch.diagonal(A).abs() > 1e-3)
    assert update_rank(A) == 6
    if opt_cls is torch.optim.SGD:  # θ_i − θ = −lr · 2 (V(s_i) − y_i) e_i
        err = (model(eye).squeeze(-1) - batch["y"]).detach()
        assert torch.allclose(torch.diagonal(A), -0.1 * 2 * err)


def test_tabular_adam_moments_are_included() -> None:
    """With Adam state from earlier steps every θ_i also moves along the old momentum: off-diagonal entries of a column
    are the same momentum-only change for every i (Lyle et al. 2022b §5.1: "constant terms in the update matrix")."""
    model, batch, eye = tabular()
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        ((model(eye).squeeze(-1) - batch["y"]) ** 2).mean().backward()
        opt.step()
    A = update_matrix(model, squared_error_loss(model), batch, opt, eye)
    mask = ~torch.eye(6, dtype=torch.bool)
    offset = torch.stack([A[:, j][mask[:, j]][0] for j in range(6)])
    for j in range(6):
        col = A[:, j][mask[:, j]]
        assert torch.allclose(col, offset[j].expand_as(col)) and offset[j].abs() > 1e-4
    # the shared momentum term dominates the spectrum; without it the per-state updates are diagonal and full rank
    assert update_rank(A) < 6
    assert update_rank(A - offset) == 6


@pytest.mark.parametrize("opt_cls", [torch.optim.Adam, torch.optim.SGD])
def test_one_parameter_model_has_rank_one(opt_cls) -> None:
    torch.manual_seed(1)
    model = nn.Linear(1, 1, bias=False).double()
    batch = {"x": torch.randn(8, 1, dtype=torch.float64), "y": torch.randn(8, dtype=torch.float64)}
    probes = torch.randn(5, 1, dtype=torch.float64)
    result = update_rank_metrics(model, squared_error_loss(model), batch, opt_cls(model.parameters(), lr=0.05), probes)
    assert result.matrix.shape == (8, 5)
    assert result.rank == 1
    assert torch.linalg.matrix_rank(result.matrix).item() == 1


OPTIMIZERS = [
    (torch.optim.Adam, {"lr": 1e-2}),
    (torch.optim.Adam, {"lr": 1e-2, "weight_decay": 0.1, "amsgrad": True, "betas": (0.8, 0.9)}),
    (torch.optim.AdamW, {"lr": 1e-2, "weight_decay": 0.1}),
    (torch.optim.SGD, {"lr": 1e-2, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    (torch.optim.SGD, {"lr": 1e-2, "momentum": 0.5, "dampening": 0.1}),
]


@pytest.mark.parametrize(("opt_cls", "kwargs"), OPTIMIZERS)
@pytest.mark.parametrize("output", ["value", "policy"])
def test_matches_deep_copy_loop(opt_cls, kwargs, output) -> None:
    torch.manual_seed(2)
    out_dim = 1 if output == "value" else 3
    model = MLP(5, (12, 12), out_dim).double()
    opt = opt_cls(model.parameters(), **kwargs)
    x = torch.randn(16, 5, dtype=torch.float64)
    for _ in range(3):  # give the optimizer state (moments, step count, momentum buffers)
        opt.zero_grad()
        model(x)[0].square().mean().backward()
        opt.step()

    def sample_loss(raw, y):
        return (
            (raw[0][..., 0] - y).square().sum() if output == "value" else -torch.log_softmax(raw[0], -1)[..., 0].sum()
        )

    def loss_fn(params, buffers, sample):
        return sample_loss(functional_call(model, (params, buffers), (sample["x"].unsqueeze(0),)), sample["y"])

    def read(net, probes):
        out = net(probes)[0]
        return out.squeeze(-1) if output == "value" else torch.softmax(out, -1)

    batch = {"x": torch.randn(7, 5, dtype=torch.float64), "y": torch.randn(7, dtype=torch.float64)}
    probes = torch.randn(9, 5, dtype=torch.float64)
    state_before = copy.deepcopy(opt.state_dict())
    params_before = [p.detach().clone() for p in model.parameters()]

    A = update_matrix(model, loss_fn, batch, opt, probes, output=output, chunk_size=3)

    base = read(model, probes).detach()
    rows = []
    for i in range(7):
        net = copy.deepcopy(model)
        o = opt_cls(net.parameters(), **kwargs)
        o.load_state_dict(copy.deepcopy(opt.state_dict()))  # load_state_dict alone would share the step tensors
        o.zero_grad()
        sample_loss(net(batch["x"][i : i + 1]), batch["y"][i]).backward()
        o.step()
        diff = read(net, probes).detach() - base
        rows.append(diff if output == "value" else diff.norm(dim=-1))
    assert torch.allclose(A, torch.stack(rows), atol=1e-12)
    # nothing was mutated
    assert all(torch.equal(a, p) for a, p in zip(params_before, model.parameters(), strict=True))
    after = opt.state_dict()["state"]
    for k, st in state_before["state"].items():
        assert all(torch.equal(v, after[k][name]) for name, v in st.items())


def test_q_reductions_and_errors() -> None:
    torch.manual_seed(3)
    model = MLP(4, (8,), 3).double()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)

    def loss_fn(params, buffers, sample):
        q = functional_call(model, (params, buffers), (sample["x"].unsqueeze(0),))[0]
        return (q[0].gather(0, sample["a"].reshape(1)).squeeze(0) - sample["y"]) ** 2  # vmap-safe indexing

    batch = {"x": torch.randn(5, 4, dtype=torch.float64), "a": torch.randint(0, 3, (5,)), "y": torch.ones(5).double()}
    probes, probe_a = torch.randn(6, 4, dtype=torch.float64), torch.randint(0, 3, (6,))
    A_taken = update_matrix(model, loss_fn, batch, opt, probes, output="q_taken", probe_aux=probe_a)
    A_all = torch.stack(
        [update_matrix(model, loss_fn, batch, opt, probes, output=lambda raw, a=a: raw[0][:, a]) for a in range(3)], -1
    )
    assert torch.allclose(A_taken, A_all[:, torch.arange(6), probe_a])
    A_mean = update_matrix(model, loss_fn, batch, opt, probes, output="q_mean")
    assert torch.allclose(A_mean, A_all.mean(-1))
    with pytest.raises(ValueError, match="probe_aux"):
        update_matrix(model, loss_fn, batch, opt, probes, output="q_taken")
    with pytest.raises(ValueError, match="output"):
        update_matrix(model, loss_fn, batch, opt, probes, output="q_min")
    with pytest.raises(ValueError, match="optimizer"):
        update_matrix(model, loss_fn, batch, torch.optim.RMSprop(model.parameters()), probes, output="q_max")


def test_update_rank_threshold() -> None:
    assert update_rank(torch.diag(torch.tensor([1.0, 0.5, 0.05]))) == 2  # 0.05 ≤ 0.1 σ_max is discarded
    assert update_rank(torch.diag(torch.tensor([1.0, 0.5, 0.05])), threshold=0.01) == 3
    assert update_rank(torch.zeros(3, 4)) == 0
