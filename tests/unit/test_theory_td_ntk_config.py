"""The TD-NTK configs: the quick default and the paper-size option, and that the paper size composes for Slurm."""

from __future__ import annotations

import pytest
from hydra.utils import get_class

from repdyn.theory.report import compose_study
from repdyn.theory.td_ntk import validate


def test_paper_option_has_the_papers_table_1_sizes() -> None:
    cfg = compose_study("theory/td_ntk_paper")
    validate(cfg)
    cp = cfg.cartpole
    assert (cp.n_nets, cp.n_steps, cp.n_transitions, cp.gamma) == (50, 2**16, 2048, 1.0)
    assert (cp.model.width, cp.model.depth, cp.n_inits, cp.n_eval_train) == (256, 2, 50, 2048)
    assert (cfg.toy.model.width, cfg.toy.n_steps, cfg.toy.n_inits, cfg.toy.gamma) == (1024, 2**16, 500, 1.0)
    assert cfg.cartpole.n_eval_test == compose_study("theory/td_ntk").cartpole.n_eval_test  # the rest is the default's


def test_default_is_smaller_than_the_paper() -> None:
    cfg, paper = compose_study("theory/td_ntk"), compose_study("theory/td_ntk_paper")
    validate(cfg)
    for env in ("toy", "cartpole"):
        assert cfg[env].n_steps < paper[env].n_steps and cfg[env].n_nets <= paper[env].n_nets


@pytest.mark.parametrize("name", ["theory/td_ntk", "theory/td_ntk_paper"])
def test_composes_with_the_slurm_launcher(name: str) -> None:
    cfg = compose_study(name, ["hydra/launcher=slurm", "hydra.launcher.timeout_min=4320"], hydra_cfg=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.repdyn_launcher.SlurmLauncher" and launcher.timeout_min == 4320
    assert get_class(launcher._target_).__name__ == "SlurmLauncher"  # importable: the plugin is on the path
