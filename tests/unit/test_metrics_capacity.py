"""Capacity loss fitting: ~0 when the checkpoint equals the target, exact KL formulas, pure w.r.t. inputs."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Categorical, Normal, kl_divergence

from repdyn.metrics.capacity import capacity_loss, fit_to_target
from repdyn.models.mlp import MLP

FIT = {"epochs": 2, "minibatch_size": 32, "lr": 3e-4, "eps": 1e-5, "max_grad_norm": 0.5}


class NormalActor(torch.nn.Module):
    """The repdyn.agents.networks layout: (loc, softplus scale, ...)."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.body = MLP(6, (16, 16), 4)

    def forward(self, x):
        out, features, preacts = self.body(x)
        loc, raw = out.chunk(2, -1)
        return loc, torch.nn.functional.softplus(raw) + 1e-4, features


def test_kl_formulas_match_torch_distributions() -> None:
    g = torch.Generator().manual_seed(0)
    lt, lf = torch.randn(10, 5, generator=g), torch.randn(10, 5, generator=g)
    ref = kl_divergence(Categorical(logits=lt), Categorical(logits=lf)).mean()
    assert capacity_loss("actor_categorical", lf, lt).item() == pytest.approx(ref.item(), rel=1e-5)
    mt, mf = torch.randn(10, 3, generator=g), torch.randn(10, 3, generator=g)
    st, sf = torch.rand(10, 3, generator=g) + 0.1, torch.rand(10, 3, generator=g) + 0.1
    ref = kl_divergence(Normal(mt, st), Normal(mf, sf)).sum(-1).mean()
    for kind in ("actor_normal", "actor_tanh_normal"):
        assert capacity_loss(kind, (mf, sf), (mt, st)).item() == pytest.approx(ref.item(), rel=1e-5)
    assert capacity_loss("critic", torch.tensor([1.0, 3.0]), torch.tensor([0.0, 0.0])).item() == 5.0


def test_checkpoint_equal_to_target_has_zero_loss() -> None:
    obs = torch.randn(128, 6, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(2)
    critic, categorical = MLP(6, (16, 16), 1), MLP(6, (16, 16), 3)
    assert fit_to_target(critic, critic, obs, kind="critic", **FIT) == 0.0  # zero gradient: Adam never moves
    # KL gradients at the optimum are round-off sized; Adam normalises them into tiny steps, hence "≈ 0"
    assert fit_to_target(categorical, categorical, obs, kind="actor_categorical", **FIT) == pytest.approx(0, abs=1e-4)
    actor = NormalActor(3)
    assert fit_to_target(actor, actor, obs, kind="actor_tanh_normal", **FIT) == pytest.approx(0, abs=1e-3)


def test_fitting_reduces_the_loss_and_leaves_inputs_untouched() -> None:
    obs = torch.randn(256, 6, generator=torch.Generator().manual_seed(4))
    model, target = NormalActor(5), NormalActor(6)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        initial = capacity_loss("actor_normal", model(obs)[:2], target(obs)[:2]).item()
    short = fit_to_target(model, target, obs, kind="actor_normal", **{**FIT, "epochs": 1})
    long = fit_to_target(model, target, obs, kind="actor_normal", **{**FIT, "epochs": 8, "lr": 1e-3})
    assert long < short < initial
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # deterministic for a given generator seed
    again = fit_to_target(model, target, obs, kind="actor_normal", **{**FIT, "epochs": 1})
    assert again == short


def test_bad_input_raises() -> None:
    net = MLP(6, (8,), 1)
    with pytest.raises(ValueError, match="kind"):
        fit_to_target(net, net, torch.randn(4, 6), kind="actor_beta", **FIT)
    with pytest.raises(ValueError, match="epochs"):
        fit_to_target(net, net, torch.randn(4, 6), kind="critic", **{**FIT, "epochs": 0})
