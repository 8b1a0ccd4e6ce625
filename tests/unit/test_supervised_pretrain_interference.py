"""The pre-training-frequency study's pure parts: its grids, targets and that batched members train independently."""

from __future__ import annotations

import math

import pytest
import torch

from repdyn.supervised.pretrain_interference import Members, make_grids, pretrain_target, validate, value_target
from repdyn.theory.report import compose_study


def test_interpolating_grid_lies_strictly_between_training_states() -> None:
    g = make_grids(5, 4)
    assert torch.allclose(g.x_train, torch.linspace(0, 2 * math.pi, 5, dtype=torch.float64))
    assert len(g.x_interp) == 4 * 3
    gaps = (g.x_interp[:, None] - g.x_train[None, :]).abs().min(1).values
    assert (gaps > 0.2 * (2 * math.pi / 4) - 1e-12).all()  # at least Δ/4 from every training state


def test_value_target_is_the_discounted_walk_on_the_grid() -> None:
    g = make_grids(6, 2)
    assert torch.allclose(value_target(g.x_train, 0.5, 6), 0.5 ** torch.arange(5, -1, -1, dtype=torch.float64))
    assert torch.allclose(pretrain_target(g.x_train, 0.0), torch.zeros(6, dtype=torch.float64))


def test_members_train_as_if_alone() -> None:
    """A member's training does not depend on the others' targets (Adam elementwise, loss a sum over members)."""
    cfg = compose_study("supervised/pretrain_interference", ["model.width=8"])
    x = make_grids(7, 2).x_train
    both, alone = Members(cfg, [0, 1]), Members(cfg, [0])
    both.fit(x, torch.stack([torch.sin(x), torch.cos(3 * x)]), 20, 1e-2)
    alone.fit(x, torch.sin(x)[None], 20, 1e-2)
    assert torch.allclose(both(x)[0], alone(x)[0], atol=1e-6)


def test_bad_frequencies_name_the_key() -> None:
    cfg = compose_study("supervised/pretrain_interference", ["frequencies=[-1]"])
    with pytest.raises(ValueError, match="frequencies"):
        validate(cfg)
