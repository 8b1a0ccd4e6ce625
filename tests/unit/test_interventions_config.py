"""Interventions without an env: loss functions on known inputs, the reward mask's statistics, config-time validation,
paper default coefficients and the ``experiment=ppo_interventions`` sweep grid (issue 5)."""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf
from tensordict import TensorDict

from repdyn.config import ConfigError, validate
from repdyn.interventions import Hooks, RunFacts, available
from repdyn.interventions.infer import infer_loss
from repdyn.interventions.pfo import PFO, pfo_loss
from repdyn.interventions.pfo_all import PFOAll
from repdyn.interventions.reward_mask import mask_rewards

CARTPOLE = ["env=classic/cartpole", "logger=none"]
MINE = {"pfo", "pfo_all", "shared_trunk", "adam_reset", "adam_beta2", "reward_mask", "infer", "lr_anneal"}


def test_every_intervention_is_registered():
    assert set(available()) >= MINE


def test_pfo_loss_is_unit_and_sample_mean_of_squares():
    a = torch.zeros(2, 4)
    b = torch.tensor([[1.0, 1.0, 1.0, 1.0], [2.0, 0.0, 0.0, 0.0]])
    # per-sample mean over units: 1 and 1, mean over samples: 1
    assert pfo_loss(b, a).item() == pytest.approx(1.0)
    assert pfo_loss(a, a).item() == 0.0
    with pytest.raises(ValueError, match="same shape"):
        pfo_loss(a, torch.zeros(2, 3))


def test_pfo_and_pfo_all_read_penultimate_vs_every_layer():
    """A minibatch whose stored penultimate matches but whose first layer differs: pfo = 0, pfo_all > 0."""
    run = RunFacts(0, "ppo", 0.99, 64, "classic", OmegaConf.create({"activation": "tanh"}))
    n = 5
    z1, z2 = torch.randn(n, 8), torch.randn(n, 6)
    delta = torch.full((n, 8), 0.5)
    outputs = {"actor": (torch.randn(n, 2), torch.tanh(z2), z2, torch.cat([z1, z2], -1))}
    mb = TensorDict({"actor": {"preact": z2.clone(), "preacts_all": torch.cat([z1 + delta, z2], -1)}}, [n])
    pfo = PFO(PFO.Config(coef=None), run).extra_loss(mb, outputs)["pfo"]
    pfo_all = PFOAll(PFOAll.Config(coef=None), run).extra_loss(mb, outputs)["pfo_all"]
    assert pfo.item() == 0.0
    # unit mean over the 14 concatenated units: 8 units off by 0.5 → 8 · 0.25 / 14, coefficient 1 (tanh)
    assert pfo_all.item() == pytest.approx(8 * 0.25 / 14)


def test_infer_loss_sums_heads_and_averages_samples():
    pred = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    target = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    # β = 1: sample 0 → 1 + 4, sample 1 → 1 + 1; mean 3.5.  β = 2: sample 1 → 4 + 4; mean 6.5
    assert infer_loss(pred, target, 1.0).item() == pytest.approx(3.5)
    assert infer_loss(pred, target, 2.0).item() == pytest.approx(6.5)
    assert infer_loss(target, target, 1.0).item() == 0.0


def test_reward_mask_fraction_within_three_standard_errors():
    n, p = 10_000, 0.9
    gen = torch.Generator().manual_seed(123)
    rewards = torch.rand(n, 1, generator=torch.Generator().manual_seed(1)) + 0.5  # all nonzero
    masked, keep = mask_rewards(rewards, p, gen)
    frac = (masked == 0).float().mean().item()
    se = math.sqrt(p * (1 - p) / n)
    assert abs(frac - p) < 3 * se, (frac, se)
    assert torch.equal(masked[keep], rewards[keep])  # kept rewards are untouched
    assert (1 - keep.float().mean().item()) == pytest.approx(frac)
    with pytest.raises(ValueError, match="p must be in"):
        mask_rewards(rewards, 1.5, gen)


@pytest.mark.parametrize("name", ["pfo", "pfo_all", "shared_trunk"])
def test_ppo_only_interventions_fail_with_dqn_at_config_time(compose, name):
    validate(compose([*CARTPOLE, f"intervention=[{name}]"]))  # fine with PPO
    cfg = compose([*CARTPOLE, "agent=dqn", f"intervention=[{name}]"])
    with pytest.raises(ConfigError, match=rf"intervention\.{name}: not compatible with agent=dqn"):
        validate(cfg)


@pytest.mark.parametrize("name", ["adam_reset", "adam_beta2", "reward_mask", "lr_anneal", "infer"])
def test_agent_agnostic_interventions_pass_with_dqn(compose, name):
    validate(compose([*CARTPOLE, "agent=dqn", f"intervention=[{name}]"]))


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["intervention=[pfo]", "intervention.pfo.coef=-1"], "coef must be ≥ 0"),
        (["intervention=[pfo_all]", "model.activation=gelu"], "set intervention.pfo_all.coef"),
        (["intervention=[reward_mask]", "intervention.reward_mask.p=1.5"], "p must be a probability"),
        (["intervention=[adam_beta2]", "intervention.adam_beta2.beta2=1.0"], "beta2 must be in"),
        (["intervention=[infer]", "intervention.infer.k=0"], "k must be ≥ 1"),
        (["intervention=[infer]", "intervention.infer.networks=[trunk]"], "networks must be"),
        (["intervention=[pfo]", "+intervention.pfo.coeff=1"], "coeff"),
    ],
)
def test_bad_intervention_values_raise_config_error(compose, overrides, needle):
    cfg = compose([*CARTPOLE, *overrides])
    with pytest.raises(ConfigError, match=needle):
        validate(cfg)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["env=atari/phoenix", "model=cnn", "intervention=[pfo,pfo_all]"], {"pfo": 1.0, "pfo_all": 10.0}),
        (["env=mujoco/hopper", "intervention=[pfo,pfo_all]"], {"pfo": 1.0, "pfo_all": 1.0}),
        (["env=mujoco/hopper", "model.activation=relu", "intervention=[pfo,pfo_all]"], {"pfo": 10.0, "pfo_all": 10.0}),
        (["env=mujoco/hopper", "model.activation=relu", "intervention=[pfo]", "intervention.pfo.coef=3"], {"pfo": 3.0}),
    ],
)
def test_pfo_coefficient_defaults_follow_the_paper(compose, overrides, expected):
    cfg = compose(["logger=none", *overrides])
    validate(cfg)
    assert {i.name: i.coef for i in Hooks.from_config(cfg).items} == expected


def _sweep_jobs(compose_hydra, overrides, sweeps=()):
    """The jobs Hydra's basic sweeper launches for ``-m <overrides>``: sweeper params, then the command line (which
    replaces params of the same key), expanded as one Cartesian product."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    cfg = compose_hydra(overrides)
    args = [f"{k}={v}" for k, v in cfg.hydra.sweeper.params.items()] + overrides + list(sweeps)
    parsed = OverridesParser.create().parse_overrides(args)
    return BasicSweeper.split_arguments(parsed, None)[0]


@pytest.fixture
def compose_hydra():
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from repdyn.config import register_configs
    from repdyn.paths import CONF_DIR

    register_configs()

    def _compose(overrides):
        GlobalHydra.instance().clear()
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            return hydra_compose("train", overrides=overrides, return_hydra_config=True)

    yield _compose
    GlobalHydra.instance().clear()


def test_experiment_preset_is_the_fig6_ale_grid(compose, compose_hydra):
    jobs = _sweep_jobs(compose_hydra, ["experiment=ppo_interventions"])
    assert len(jobs) == 3 * 6 * 3 * 5
    grid = {tuple(sorted(j)) for j in jobs}
    assert len(grid) == 270
    values = {
        k: sorted({o.split("=", 1)[1] for j in jobs for o in j if o.startswith(k + "=")})
        for k in ("env", "intervention", "agent.epochs", "seed")
    }
    assert values["env"] == ["atari/gravitar", "atari/namethisgame", "atari/phoenix"]
    assert values["intervention"] == sorted(
        ["[]", "[pfo]", "[pfo_all]", "[shared_trunk]", "[adam_reset]", "[adam_beta2]"]
    )
    assert values["agent.epochs"] == ["4", "6", "8"] and values["seed"] == ["0", "1", "2", "3", "4"]
    for job in (jobs[0], jobs[137], jobs[-1]):
        cfg = compose(job)
        validate(cfg)
        a = cfg.agent
        assert (cfg.model.name, cfg.train.total_frames) == ("cnn", 100_000_000)
        assert (a.lr, a.clip_eps, a.entropy_coef, a.minibatch_size) == (2.5e-4, 0.1, 0.01, 256)
        assert cfg.env.num_envs * cfg.env.frames_per_env == 1024


def test_experiment_preset_mujoco_command_from_its_header(compose, compose_hydra):
    cli = ["experiment=ppo_interventions", "agent=ppo", "model=mlp", "train.total_frames=5000000"]
    sweeps = ["env=mujoco/hopper,mujoco/humanoid", "agent.epochs=10,15,20", "model.activation=tanh,relu"]
    jobs = _sweep_jobs(compose_hydra, cli, sweeps)
    assert len(jobs) == 2 * 6 * 3 * 5 * 2
    job = next(j for j in jobs if "model.activation=relu" in j and "intervention=[pfo]" in j)
    cfg = compose(job)
    validate(cfg)
    assert cfg.env.family == "mujoco" and cfg.model.name == "mlp" and cfg.agent.epochs in (10, 15, 20)
    assert cfg.train.total_frames == 5_000_000
    a = cfg.agent
    assert (a.lr, a.clip_eps, a.entropy_coef, a.minibatch_size) == (3e-4, 0.2, 0.0, 64)  # App. B Table 3
    assert Hooks.from_config(cfg).items[0].coef == 10.0  # ReLU MLP default
