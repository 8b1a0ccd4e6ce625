"""Auto MPG data/splits and the batched regressor training (== training each member alone)."""

from __future__ import annotations

import copy

import pytest
import torch
from omegaconf import OmegaConf

from repdyn.supervised.auto_mpg import load_auto_mpg, random_split
from repdyn.supervised.regressor import make_regressor, train_regressors

MODEL = OmegaConf.create({"width": 8, "depth": 2, "activation": "tanh", "init": "default"})


def _tcfg(**kw):
    base = {
        "optimizer": "adam", "lr": 1e-2, "momentum": 0.0, "weight_decay": 0.0, "steps": 25, "batch_size": None,
        "early_stopping": {"enabled": False, "patience": 10, "val_size": 5, "eval_every": 5},
    }  # fmt: skip
    base.update(kw)
    return OmegaConf.create(base)


def test_auto_mpg_is_clean_and_standardised() -> None:
    d = load_auto_mpg(torch.float64)
    assert d.x.shape == (392, 7) and d.y.shape == (392,)  # 406 cars minus 14 with a missing value
    assert torch.allclose(d.x.mean(0), torch.zeros(7, dtype=torch.float64), atol=1e-10)
    assert torch.allclose(d.x.std(0, unbiased=False), torch.ones(7, dtype=torch.float64), atol=1e-10)
    assert 23.0 < d.y_mean < 24.0  # mean mpg of the cleaned UCI data is 23.45
    s = random_split(392, torch.Generator().manual_seed(0))
    assert len(s.test) == len(s.train) == 130 and len(s.pool) == 262
    assert not bool(torch.isin(s.train, s.test).any()) and bool(torch.isin(s.train, s.pool).all())
    assert len(s.unused) == 132


@pytest.mark.parametrize(
    "tcfg", [_tcfg(), _tcfg(optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=1e-3), _tcfg(batch_size=1000)]
)
def test_batched_training_equals_training_each_member_alone(tcfg) -> None:
    gen = torch.Generator().manual_seed(0)
    x_tr, y_tr = torch.randn(3, 10, 7, generator=gen), torch.randn(3, 10, generator=gen)
    x_te, y_te = torch.randn(3, 6, 7, generator=gen), torch.randn(3, 6, generator=gen)
    models = [make_regressor(7, MODEL, s) for s in (1, 2, 3)]
    batched = train_regressors(models, x_tr, y_tr, x_te, y_te, tcfg, progress=False)
    for i, s in enumerate((1, 2, 3)):
        m = make_regressor(7, MODEL, s)
        opt = (
            torch.optim.Adam(m.parameters(), lr=tcfg.lr)
            if tcfg.optimizer == "adam"
            else torch.optim.SGD(m.parameters(), lr=tcfg.lr, momentum=tcfg.momentum, weight_decay=tcfg.weight_decay)
        )
        for _ in range(tcfg.steps):
            loss = (m(x_tr[i])[0][:, 0] - y_tr[i]).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            assert float(batched.train_loss[i]) == pytest.approx(
                float((m(x_tr[i])[0][:, 0] - y_tr[i]).square().mean()), rel=1e-4
            )
            assert float(batched.test_loss[i]) == pytest.approx(
                float((m(x_te[i])[0][:, 0] - y_te[i]).square().mean()), rel=1e-4
            )
    assert batched.train_loss.mean() < (y_tr.square().mean(1)).mean()  # it learned something


def test_early_stopping_keeps_best_validation_parameters() -> None:
    gen = torch.Generator().manual_seed(1)
    x_tr, y_tr = torch.randn(2, 8, 7, generator=gen), torch.randn(2, 8, generator=gen)
    x_va, y_va = torch.randn(2, 5, 7, generator=gen), torch.randn(2, 5, generator=gen)
    tcfg = _tcfg(lr=0.05, steps=200, early_stopping={"enabled": True, "patience": 20, "val_size": 5, "eval_every": 5})
    models = [make_regressor(7, MODEL, s) for s in (4, 5)]
    res = train_regressors(copy.deepcopy(models), x_tr, y_tr, x_va, y_va, tcfg, x_val=x_va, y_val=y_va, progress=False)
    # The test set here IS the validation set, so the reported test loss must equal the best validation loss.
    assert torch.allclose(res.test_loss, res.val_loss, rtol=1e-5)
    assert bool((res.stop_step % 5 == 0).all()) and bool((res.stop_step < 200).all())  # random targets overfit early


def test_bad_training_config() -> None:
    x = torch.zeros(1, 4, 7)
    y = torch.zeros(1, 4)
    m = [make_regressor(7, MODEL, 0)]
    with pytest.raises(ValueError, match="optimizer"):
        train_regressors(m, x, y, x, y, _tcfg(optimizer="lbfgs"), progress=False)
    with pytest.raises(ValueError, match="x_val"):
        train_regressors(
            m,
            x,
            y,
            x,
            y,
            _tcfg(early_stopping={"enabled": True, "patience": 1, "val_size": 1, "eval_every": 1}),
            progress=False,
        )
    with pytest.raises(ValueError, match="width"):
        make_regressor(7, OmegaConf.create({"width": 0, "depth": 1, "activation": "relu", "init": "default"}), 0)
