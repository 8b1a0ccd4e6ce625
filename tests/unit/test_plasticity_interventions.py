"""Plasticity remedies on tiny networks with known answers: ReDo recycles exactly the planted dormant units, S&P with
λ = 1, σ = 0 is the identity, L2 Init's loss and gradient, plasticity injection leaves outputs unchanged and trains
only what it should, a layer reset is a fresh draw of the initial distribution; plus the model options (LayerNorm,
CReLU) and config-time refusals."""

from __future__ import annotations

import copy
import dataclasses
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf
from tensordict import TensorDict

from repdyn.agents.adam_step import step_all, zero_grads
from repdyn.agents.networks import ActorNet, CriticNet
from repdyn.config import ConfigError, validate
from repdyn.interventions import RunFacts
from repdyn.interventions.l2_init import L2Init, l2_init_loss
from repdyn.interventions.plasticity_injection import PlasticityInjection
from repdyn.interventions.redo import ReDo
from repdyn.interventions.reinit import fresh_copy
from repdyn.interventions.reset_layers import ResetLayers
from repdyn.interventions.shrink_perturb import ShrinkPerturb, shrink_perturb_
from repdyn.metrics.units import dormant_mask
from repdyn.models.mlp import MLP

RUN = RunFacts(
    seed=3,
    agent="dqn",
    gamma=0.99,
    minibatch_size=64,
    env_family="classic",
    model=OmegaConf.create({"name": "mlp", "hidden": [16, 16], "activation": "relu"}),
)
IN, OUT, N = 5, 3, 64


def _agent(body: MLP, dqn: bool = False) -> SimpleNamespace:
    """The parts of an agent the interventions read: networks with a model body, their Adam, (DQN) a target copy."""
    net = CriticNet(body)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    agent = SimpleNamespace(networks={"qnet": net}, optimizers={"qnet": opt})
    if dqn:
        agent.target_qnet = copy.deepcopy(net).requires_grad_(False)
    return agent


def _train_step(agent: SimpleNamespace, obs: torch.Tensor) -> None:
    """One Adam step on a regression loss, through the agents' own stepping path."""
    net = agent.networks["qnet"]
    zero_grads(agent.optimizers.values())
    (net(obs)[0] - 1.0).pow(2).mean().backward()
    step_all(agent.optimizers.values())


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _body(**kw) -> MLP:
    torch.manual_seed(0)
    return MLP(IN, (16, 16), OUT, activation="relu", **kw)


# --- ReDo -----------------------------------------------------------------------------------------------------


def test_redo_recycles_exactly_the_planted_dormant_units_and_leaves_the_rest_bit_identical():
    body, obs = _body(), torch.randn(N, IN, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():  # plant dead units: never positive on any input
        body.layers[0].weight[[2, 7]] = 0.0
        body.layers[0].bias[[2, 7]] = -1.0
        body.layers[1].weight[[4]] = 0.0
        body.layers[1].bias[[4]] = -1.0
    agent = _agent(body)
    _train_step(agent, obs)
    _, _, preacts = body(obs)
    assert dormant_mask(torch.relu(preacts[0])).nonzero().flatten().tolist() == [2, 7]
    assert dormant_mask(torch.relu(preacts[1])).nonzero().flatten().tolist() == [4]
    before, out_before = _snapshot(body), body(obs)[0].detach()
    moments = {k: [s.clone() for s in (st["exp_avg"], st["exp_avg_sq"])] for k, st in _named_state(agent).items()}
    redo = ReDo(ReDo.Config(period=N, tau=0.025, samples=N), RUN)
    gen_state = redo.generator.get_state()
    redo.on_batch_collected(TensorDict({"observation": obs}, [N]), agent)
    redo.after_batch_update(agent, 0.5)
    fresh = layers_of(fresh_copy(body, torch.Generator().set_state(_after_perm(gen_state, N))))
    expected = {k: v.clone() for k, v in before.items()}  # built by hand from Sokar et al.'s rule
    for name, rows in (("layers.0", [2, 7]), ("layers.1", [4])):
        for part in ("weight", "bias"):
            expected[f"{name}.{part}"][rows] = fresh[f"{name}.{part}"][rows]
    expected["layers.1.weight"][:, [2, 7]] = 0.0  # outgoing weights of the recycled units
    expected["head.weight"][:, [4]] = 0.0
    after = _snapshot(body)
    assert all(torch.equal(after[k], expected[k]) for k in expected), [
        k for k in expected if not torch.equal(after[k], expected[k])
    ]
    assert not torch.equal(after["layers.0.weight"][[2, 7]], before["layers.0.weight"][[2, 7]])
    torch.testing.assert_close(body(obs)[0], out_before, rtol=0, atol=1e-6)  # recycled units have no outgoing weight
    state = _named_state(agent)
    assert (state["body.layers.0.weight"]["exp_avg"][[2, 7]] == 0).all()
    assert (state["body.head.weight"]["exp_avg_sq"][:, 4] == 0).all()
    assert torch.equal(state["body.layers.0.weight"]["exp_avg"][0], moments["body.layers.0.weight"][0][0])
    assert torch.equal(state["body.head.bias"]["exp_avg"], moments["body.head.bias"][0])


def _named_state(agent) -> dict[str, dict]:
    net, opt = agent.networks["qnet"], agent.optimizers["qnet"]
    return {k: opt.state[p] for k, p in net.named_parameters() if p in opt.state}


def layers_of(body: MLP) -> dict[str, torch.Tensor]:
    return _snapshot(body)


def _after_perm(state: torch.Tensor, n: int) -> torch.Tensor:
    """The generator state after ReDo's draw of the scored states (a permutation of the n batch states)."""
    g = torch.Generator().set_state(state)
    torch.randperm(n, generator=g)
    return g.get_state()


def test_redo_refuses_crelu_and_bad_values():
    cfg = dataclasses.replace(RUN, model=OmegaConf.merge(RUN.model, {"activation": "crelu"}))
    assert "crelu" in ReDo.check(ReDo.Config(), cfg)
    assert "tau" in ReDo.check(ReDo.Config(tau=-1.0), RUN)
    assert "period" in ReDo.check(ReDo.Config(period=0), RUN)


# --- Shrink & Perturb -----------------------------------------------------------------------------------------


def test_shrink_perturb_with_shrink_one_and_perturb_zero_is_the_identity():
    body = _body(norm="layer")
    agent, before = _agent(body), _snapshot(body)
    sp = ShrinkPerturb(ShrinkPerturb.Config(period=1, shrink=1.0, perturb=0.0), RUN)
    sp.on_batch_collected(TensorDict({}, [4]), agent)
    sp.after_batch_update(agent, 0.1)
    assert sp.applied == 1
    assert all(torch.equal(v, before[k]) for k, v in _snapshot(body).items())


def test_shrink_perturb_is_lambda_theta_plus_sigma_fresh_init():
    body = _body()
    agent, before = _agent(body), _snapshot(body)
    sp = ShrinkPerturb(ShrinkPerturb.Config(period=1, shrink=0.5, perturb=2.0), RUN)
    noise = _snapshot(fresh_copy(body, torch.Generator().set_state(sp.generator.get_state())))
    sp.apply(agent)
    for k, v in _snapshot(body).items():
        torch.testing.assert_close(v, 0.5 * before[k] + 2.0 * noise[k], rtol=0, atol=1e-6)
    shrink_perturb_([p := torch.ones(3)], [torch.full((3,), 2.0)], 0.25, 0.5)
    assert torch.equal(p, torch.full((3,), 1.25))


# --- L2 Init --------------------------------------------------------------------------------------------------


def test_l2_init_is_zero_at_init_and_its_gradient_is_two_lambda_delta():
    body, coef = _body(), 0.3
    agent = _agent(body)
    l2 = L2Init(L2Init.Config(coef=coef), RUN)
    l2.on_agent_built(agent)
    assert l2.extra_loss(None, {})["l2_init"].item() == 0.0
    init = {k: v.clone() for k, v in l2.params0.items()}
    with torch.no_grad():
        for p in body.parameters():
            p.add_(torch.randn_like(p))
    loss = l2.extra_loss(None, {})["l2_init"]
    loss.backward()
    for k, p in agent.networks["qnet"].named_parameters():
        delta = p.detach() - init[f"qnet.{k}"]
        torch.testing.assert_close(p.grad, 2 * coef * delta)
    expected = coef * sum(
        float((p.detach() - init[f"qnet.{k}"]).pow(2).sum()) for k, p in agent.networks["qnet"].named_parameters()
    )
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError):
        l2_init_loss([torch.zeros(1)], [], 1.0)


# --- Plasticity injection -------------------------------------------------------------------------------------


@pytest.mark.parametrize("train_encoder", [True, False])
def test_injection_keeps_outputs_then_trains_only_the_new_head_and_the_encoder_if_asked(train_encoder):
    body, obs = _body(), torch.randn(N, IN)
    agent = _agent(body, dqn=True)
    pi = PlasticityInjection(PlasticityInjection.Config(at=0.5, train_encoder=train_encoder), RUN)
    pi.on_agent_built(agent)
    _train_step(agent, obs)
    pi.after_batch_update(agent, 0.25)
    assert not pi.injected
    net, target = agent.networks["qnet"], agent.target_qnet
    out, out_target = net(obs)[0].detach(), target(obs)[0].detach()
    pi.after_batch_update(agent, 0.5)
    assert pi.injected
    torch.testing.assert_close(net(obs)[0], out, rtol=0, atol=1e-6)
    torch.testing.assert_close(target(obs)[0], out_target, rtol=0, atol=1e-6)
    head = body.head
    assert not torch.equal(head.new.weight, head.old.weight)  # a fresh draw, not a copy of θ
    before = _snapshot(body)
    for _ in range(3):
        _train_step(agent, obs)
    after = _snapshot(body)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    encoder = {k for k in before if k.startswith("layers.")}
    assert {"head.new.weight", "head.new.bias"} <= changed
    assert not changed & {"head.old.weight", "head.old.bias", "head.frozen.weight", "head.frozen.bias"}
    assert (encoder <= changed) if train_encoder else not (encoder & changed)
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) == sum(
        p.numel() for p in _body().parameters()
    ) - (0 if train_encoder else sum(p.numel() for p in _body().layers.parameters()))


# --- Reset layers ---------------------------------------------------------------------------------------------


def test_reset_is_a_fresh_draw_of_the_initial_distribution_not_the_initial_values():
    body, obs = _body(), torch.randn(N, IN)
    agent, init = _agent(body, dqn=True), _snapshot(body)
    _train_step(agent, obs)
    before = _snapshot(body)
    reset = ResetLayers(ResetLayers.Config(period=1, k=1), RUN)
    expected = _snapshot(fresh_copy(body, torch.Generator().set_state(reset.generator.get_state())))
    reset.apply(agent)
    after = _snapshot(body)
    assert torch.equal(after["head.weight"], expected["head.weight"])
    assert not torch.equal(after["head.weight"], init["head.weight"])
    w = after["head.weight"]  # orthogonal init with the head gain: W Wᵀ = gain² I (rows ≤ columns)
    torch.testing.assert_close(w @ w.T, torch.eye(OUT) * body.head_gain**2, rtol=0, atol=1e-5)
    assert (after["head.bias"] == 0).all()
    assert all(torch.equal(after[k], before[k]) for k in before if k.startswith("layers."))
    state = _named_state(agent)
    assert "body.head.weight" not in state and "body.layers.0.weight" in state
    assert torch.equal(agent.target_qnet.body.head.weight, after["head.weight"])


def test_reset_k_two_resets_the_penultimate_layer_with_its_layernorm():
    body = _body(norm="layer")
    agent = _agent(body)
    with torch.no_grad():
        body.norms[1].weight.fill_(3.0)
        body.norms[0].weight.fill_(3.0)
    ResetLayers(ResetLayers.Config(period=1, k=2), RUN).apply(agent)
    assert (body.norms[1].weight == 1).all() and (body.norms[0].weight == 3).all()


# --- Model options --------------------------------------------------------------------------------------------


def test_crelu_keeps_the_configured_feature_width_and_returns_the_activation_input():
    body = MLP(IN, (16, 8), OUT, activation="crelu", norm="layer")
    x = torch.randn(N, IN)
    out, features, preacts = body(x)
    assert [layer.out_features for layer in body.layers] == [8, 4] and body.feature_dim == 8
    assert features.shape == (N, 8) and [z.shape[-1] for z in preacts] == [8, 4]
    z = body.norms[1](body.layers[1](torch.cat([torch.relu(preacts[0]), torch.relu(-preacts[0])], -1)))
    torch.testing.assert_close(preacts[1], z)  # the pre-activation is the LayerNorm's output, the CReLU's input
    torch.testing.assert_close(features, torch.cat([torch.relu(z), torch.relu(-z)], -1))
    with pytest.raises(ValueError, match="divisible by 2"):
        MLP(IN, (15,), OUT, activation="crelu")


def test_init_parameters_with_the_global_rng_keeps_the_old_initialisation():
    torch.manual_seed(0)
    body = MLP(IN, (16, 16), OUT, activation="relu")
    torch.manual_seed(0)
    ref = [torch.nn.Linear(a, b) for a, b in ((IN, 16), (16, 16), (16, OUT))]
    for layer, gain in zip(ref, (2**0.5, 2**0.5, 1.0), strict=True):
        torch.nn.init.orthogonal_(layer.weight, gain)
    for mine, theirs in zip([*body.layers, body.head], ref, strict=True):
        assert torch.equal(mine.weight, theirs.weight)


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["model.norm=batch"], "model.norm"),
        (["model.activation=crelu", "model.hidden=[63]"], "model.hidden"),
        (["env=atari/phoenix", "model=cnn", "model.norm=layer"], "model.norm"),
        (["env=atari/phoenix", "model=cnn", "model.activation=crelu"], "model.activation"),
        (["intervention=[redo]", "model.activation=crelu"], "intervention.redo"),
        (["intervention=[reset_layers]", "intervention.reset_layers.k=4"], "intervention.reset_layers: k must be"),
        (["intervention=[shrink_perturb]", "intervention.shrink_perturb.shrink=2"], "shrink must be"),
        (["intervention=[l2_init]", "intervention.l2_init.coef=-1"], "coef must be"),
        (["intervention=[plasticity_injection]", "intervention.plasticity_injection.at=1.5"], "at must be"),
        (["intervention=[redo,shared_trunk]"], "cannot be combined with shared_trunk"),
        (["intervention=[reset_layers,plasticity_injection]"], "cannot be combined with plasticity_injection"),
    ],
)
def test_bad_settings_raise_one_config_error_naming_the_key(compose, overrides, needle):
    cfg = compose(["env=classic/cartpole", "logger=none", *overrides])
    with pytest.raises(ConfigError, match=needle):
        validate(cfg)


def test_actor_head_injection_keeps_categorical_logits():
    torch.manual_seed(0)
    actor = ActorNet(MLP(IN, (16, 16), OUT, activation="tanh", head_gain=0.01), continuous=False)
    agent = SimpleNamespace(networks={"actor": actor}, optimizers={"actor": torch.optim.Adam(actor.parameters())})
    pi = PlasticityInjection(PlasticityInjection.Config(at=0.1), RUN)
    pi.on_agent_built(agent)
    x = torch.randn(N, IN)
    logits = actor(x)[0].detach()
    pi.after_batch_update(agent, 0.2)
    assert torch.equal(actor(x)[0], logits)  # θ'(x) − θ''(x) is exactly 0 at injection
    assert len(agent.optimizers["actor"].param_groups) == 2


# --- Presets --------------------------------------------------------------------------------------------------

ARMS = {
    "none": ([], "none"),
    "redo": (["redo"], "none"),
    "shrink_perturb": (["shrink_perturb"], "none"),
    "l2_init": (["l2_init"], "none"),
    "reset_layers": (["reset_layers"], "none"),
    "plasticity_injection": (["plasticity_injection"], "none"),
    "infer": (["infer"], "none"),
    "pfo": (["pfo"], "none"),
    "layernorm": ([], "layer"),
}


@pytest.mark.parametrize(
    ("preset", "agent", "env_id", "frames", "seeds"),
    [
        ("plasticity_compare_dqn", "dqn", "Acrobot-v1", 100_000, 5),
        ("plasticity_compare_ppo", "ppo", "Hopper-v5", 500_000, 3),
    ],
)
def test_plasticity_presets_compose_every_arm_and_seed(compose, compose_hydra, preset, agent, env_id, frames, seeds):
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    hydra_cfg = compose_hydra([f"experiment={preset}"])
    args = [f"{k}={v}" for k, v in hydra_cfg.hydra.sweeper.params.items()] + [f"experiment={preset}"]
    jobs = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(args), None)[0]
    arms = sorted({o.split("=", 1)[1] for j in jobs for o in j if o.startswith("plasticity_arm=")})
    expected = sorted(a for a in ARMS if agent == "ppo" or a != "pfo")  # PFO needs PPO's stored pre-activations
    assert arms == expected and len(jobs) == seeds * len(expected)
    for arm in expected:
        cfg = compose(next(j for j in jobs if f"plasticity_arm={arm}" in j))
        validate(cfg)
        assert (cfg.agent.name, cfg.env.id, cfg.train.total_frames) == (agent, env_id, frames)
        assert (sorted(cfg.intervention or {}), cfg.model.norm) == ARMS[arm]
