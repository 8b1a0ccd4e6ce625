"""Auxiliary-task interventions (Lyle et al. 2021, arXiv:2102.13089) without an env: TD and regression targets on
hand-made transitions, independent head inits, gradients reaching the trunk, config refusals and the
``experiment=aux_tasks_sparse`` grid."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf
from tensordict import TensorDict
from torch import nn

from repdyn.agents.networks import CriticNet, build_body
from repdyn.config import ConfigError, validate
from repdyn.interventions import RunFacts
from repdyn.interventions.aux_common import head_loss, td_targets
from repdyn.interventions.aux_ensemble import AuxEnsemble, taken_action_values
from repdyn.interventions.aux_multi_gamma import AuxMultiGamma
from repdyn.interventions.aux_random_cumulants import AuxRandomCumulants
from tests.unit.test_interventions_config import _sweep_jobs, compose_hydra  # noqa: F401 (fixture)

CARTPOLE = ["env=classic/cartpole", "logger=none"]
MLP = {"name": "mlp", "hidden": [8, 8], "activation": "relu"}


class _IdentityFeatures(nn.Module):
    """A network whose penultimate features are the observation itself (model contract: out, features, ...)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.body = SimpleNamespace(feature_dim=dim)
        self.unused = nn.Parameter(torch.zeros(1))  # something for the agent's optimizer to hold

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return obs.sum(-1, keepdim=True), obs, obs, obs


def _agent(net: nn.Module, name: str = "qnet", **extra) -> SimpleNamespace:
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    return SimpleNamespace(networks={name: net}, optimizers={name: opt}, **extra)


def _run(agent: str, gamma: float = 0.9, seed: int = 0) -> RunFacts:
    return RunFacts(seed, agent, gamma, minibatch_size=64, env_family="classic", model=OmegaConf.create(MLP))


def _set_heads(head: nn.Linear, weight: list[list[float]]) -> None:
    with torch.no_grad():
        head.weight.copy_(torch.tensor(weight))
        head.bias.zero_()


def test_td_targets_bootstrap_unless_terminated():
    c = torch.tensor([[1.0, 2.0], [1.0, 2.0]])
    nxt = torch.tensor([[4.0, 10.0], [4.0, 10.0]])
    y = td_targets(c, torch.tensor([0.5, 0.9]), torch.tensor([[False], [True]]), nxt)
    assert torch.allclose(y, torch.tensor([[3.0, 11.0], [1.0, 2.0]]))
    with pytest.raises(ValueError, match=r"\[N, M\]"):
        td_targets(c, torch.tensor([0.5, 0.9]), torch.tensor([False, True]), nxt[:, :1])
    assert head_loss(torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 2.0]])).item() == pytest.approx(2.0)


def test_random_cumulant_target_on_a_hand_made_transition():
    """h(φ(s)) = s (identity heads), c(s) = 2 · (s₀, −s₁), γ = 0.5: for s = (1, 2), s' = (3, 4) the targets are
    c(s) + γ h(s') = (2 + 1.5, −4 + 2) = (3.5, −2); at a termination just c(s) = (2, −4)."""
    cfg = AuxRandomCumulants.Config(heads=2, coef=3.0, cumulant_scale=2.0, gamma=0.5)
    aux = AuxRandomCumulants(cfg, _run("dqn", gamma=0.99))  # cfg.gamma overrides the agent's
    net = _IdentityFeatures(2)
    aux.on_agent_built(_agent(net, obs_shape=(2,)))
    _set_heads(aux.heads["qnet"], [[1.0, 0.0], [0.0, 1.0]])
    aux.cumulant_net = lambda obs: (obs * torch.tensor([1.0, -1.0]),)
    s, s_next = torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 4.0]])
    for terminated, expected in ((False, [3.5, -2.0]), (True, [2.0, -4.0])):
        mb = TensorDict({"observation": s, "next": {"observation": s_next, "terminated": torch.tensor([[terminated]])}})
        mb.batch_size = [1]
        pred, target = aux.pred_and_target(mb, "qnet", net(s)[-3])
        assert torch.allclose(pred, s) and torch.allclose(target, torch.tensor([expected]))
    # the logged loss: coef · mean over heads of (pred − target)² = 3 · ((1 − 2)² + (2 + 4)²) / 2 at the termination
    loss = aux.extra_loss(mb, {"qnet": net(s)})["aux_random_cumulants"]
    assert loss.item() == pytest.approx(3 * (1 + 36) / 2)


def test_random_cumulant_network_is_fixed_seeded_and_checkpointed():
    run = _run("ppo")
    nets = [CriticNet(build_body(OmegaConf.create(MLP), (4,), 1, 1.0)) for _ in range(2)]
    auxes = [AuxRandomCumulants(AuxRandomCumulants.Config(heads=3), run) for _ in range(2)]
    for aux, net in zip(auxes, nets, strict=True):
        aux.on_agent_built(_agent(net, "critic", obs_shape=(4,), update_keys=("observation",)))
    obs = torch.randn(5, 4)
    c = auxes[0].cumulant_net(obs)[0]
    assert c.shape == (5, 3) and not c.requires_grad and c.std() > 0
    assert torch.equal(c, auxes[1].cumulant_net(obs)[0])  # same run seed → same cumulants
    assert ("next", "observation") in auxes[0].agent.update_keys  # PPO minibatches now carry the next observation
    other = AuxRandomCumulants(AuxRandomCumulants.Config(heads=3), _run("ppo", seed=1))
    other.on_agent_built(_agent(nets[0], "critic", obs_shape=(4,)))
    assert not torch.equal(c, other.cumulant_net(obs)[0])
    other.load_state_dict(auxes[0].state_dict())
    assert torch.equal(c, other.cumulant_net(obs)[0])


def test_ensemble_heads_start_independent_and_leave_the_agent_rng_alone():
    net = CriticNet(build_body(OmegaConf.create(MLP), (4,), 1, 1.0))
    torch.manual_seed(7)
    aux = AuxEnsemble(AuxEnsemble.Config(heads=5), _run("ppo"))
    aux.on_agent_built(_agent(net, "critic"))
    after = torch.rand(3)
    torch.manual_seed(7)
    assert torch.equal(after, torch.rand(3))  # heads drawn from their own seeded stream
    w = aux.heads["critic"].weight
    assert w.shape == (5, 8)
    assert all(not torch.allclose(w[i], w[j]) for i in range(5) for j in range(i + 1, 5))
    pred = aux.heads["critic"](torch.randn(16, 8))
    assert pred.std(dim=1).min() > 0  # five different predictions of the same state
    twin = AuxEnsemble(AuxEnsemble.Config(heads=5), _run("ppo"))
    twin.on_agent_built(_agent(net, "critic"))
    assert torch.equal(w, twin.heads["critic"].weight)  # reproducible from the run seed


def test_ensemble_targets_are_the_agent_value_targets():
    net = _IdentityFeatures(2)
    # PPO: every head regresses value_target
    ppo = AuxEnsemble(AuxEnsemble.Config(heads=3), _run("ppo"))
    ppo.on_agent_built(_agent(net, "critic"))
    mb = TensorDict({"value_target": torch.tensor([[1.5], [-2.0]])}, [2])
    pred, target = ppo.pred_and_target(mb, "critic", torch.randn(2, 2))
    assert pred.shape == target.shape == (2, 3) and torch.equal(target, torch.tensor([[1.5] * 3, [-2.0] * 3]))
    # DQN: the taken action's output of each head regresses the agent's TD target
    y = torch.tensor([0.25, 4.0])
    dqn = AuxEnsemble(AuxEnsemble.Config(heads=2), _run("dqn"))
    dqn.on_agent_built(_agent(net, n_actions=3, td_targets=lambda td: y))
    out = torch.arange(12.0).reshape(2, 6)  # head-major: [h0(a0..a2), h1(a0..a2)]
    assert torch.equal(taken_action_values(out, torch.tensor([[2], [0]]), 2), torch.tensor([[2.0, 5.0], [6.0, 9.0]]))
    mb = TensorDict({"action": torch.tensor([[2], [0]])}, [2])
    pred, target = dqn.pred_and_target(mb, "qnet", torch.randn(2, 2))
    assert pred.shape == (2, 2) and torch.equal(target, torch.tensor([[0.25, 0.25], [4.0, 4.0]]))


def test_multi_gamma_targets_for_a_known_reward_and_value():
    """r = 1, heads h(s') = (2, 4, 6) for γ = (0, 0.5, 1): targets (1, 3, 7); at a termination (1, 1, 1)."""
    aux = AuxMultiGamma(AuxMultiGamma.Config(gammas=[0.0, 0.5, 1.0]), _run("dqn"))
    net = _IdentityFeatures(2)
    aux.on_agent_built(_agent(net))
    _set_heads(aux.heads["qnet"], [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    s, s_next = torch.tensor([[1.0, 0.0]]), torch.tensor([[2.0, 4.0]])
    for terminated, expected in ((False, [1.0, 3.0, 7.0]), (True, [1.0, 1.0, 1.0])):
        nxt = {"observation": s_next, "reward": torch.tensor([[1.0]]), "terminated": torch.tensor([[terminated]])}
        mb = TensorDict({"observation": s, "next": nxt}, [1])
        pred, target = aux.pred_and_target(mb, "qnet", s)
        assert torch.allclose(pred, torch.tensor([[1.0, 0.0, 1.0]]))
        assert torch.allclose(target, torch.tensor([expected]))


@pytest.mark.parametrize("cls", [AuxRandomCumulants, AuxEnsemble, AuxMultiGamma])
def test_aux_gradient_reaches_the_trunk_and_the_heads_have_their_own_optimizer(cls):
    net = CriticNet(build_body(OmegaConf.create(MLP), (4,), 2, 1.0))
    agent = _agent(net, obs_shape=(4,), n_actions=2, td_targets=lambda td: torch.ones(6))
    aux = cls(cls.Config(), _run("dqn"))
    aux.on_agent_built(agent)
    assert set(agent.optimizers) == {"qnet", cls.name}
    heads = {id(p) for p in aux.heads.parameters()}
    assert {id(p) for g in agent.optimizers[cls.name].param_groups for p in g["params"]} == heads
    obs = torch.randn(6, 4)
    nxt = {"observation": torch.randn(6, 4), "reward": torch.ones(6, 1), "terminated": torch.zeros(6, 1, dtype=bool)}
    mb = TensorDict({"observation": obs, "action": torch.zeros(6, 1, dtype=torch.long), "next": nxt}, [6])
    aux.extra_loss(mb, {"qnet": net(obs)})[cls.name].backward()
    assert net.body.layers[0].weight.grad.abs().sum() > 0
    assert net.body.head.weight.grad is None  # only the features feed the auxiliary heads


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["intervention=[aux_random_cumulants]", "intervention.aux_random_cumulants.heads=0"], "heads must be ≥ 1"),
        (["intervention=[aux_random_cumulants]", "intervention.aux_random_cumulants.gamma=1.5"], "gamma must be in"),
        (["intervention=[aux_random_cumulants]", "intervention.aux_random_cumulants.cumulant_scale=0"], "scale must"),
        (["intervention=[aux_ensemble]", "intervention.aux_ensemble.heads=0"], "heads must be ≥ 1"),
        (["intervention=[aux_ensemble]", "intervention.aux_ensemble.coef=-1"], "coef must be ≥ 0"),
        (["intervention=[aux_multi_gamma]", "intervention.aux_multi_gamma.gammas=[]"], "non-empty"),
        (["intervention=[aux_multi_gamma]", "intervention.aux_multi_gamma.gammas=[0.9,-0.1]"], r"in \[0, 1\]"),
        (["intervention=[aux_ensemble]", "intervention.aux_ensemble.networks=[qnet]"], "for agent=ppo"),
        (["agent=dqn", "intervention=[aux_ensemble]", "intervention.aux_ensemble.networks=[critic]"], "agent=dqn"),
        (["agent=dqn", "intervention=[infer]", "intervention.infer.networks=[actor]"], "agent=dqn"),
    ],
)
def test_bad_aux_values_raise_config_error_naming_the_key(compose, overrides, needle):
    name = next(o for o in overrides if o.startswith("intervention=")).split("[")[1].rstrip("]")
    with pytest.raises(ConfigError, match=rf"intervention\.{name}: .*{needle}"):
        validate(compose([*CARTPOLE, *overrides]))


@pytest.mark.parametrize("agent", ["ppo", "dqn"])
def test_aux_defaults_validate_for_both_agents(compose, agent):
    validate(compose([*CARTPOLE, f"agent={agent}", "intervention=[aux_random_cumulants,aux_ensemble,aux_multi_gamma]"]))


def test_experiment_aux_tasks_sparse_grid(compose, compose_hydra):  # noqa: F811 (fixture imported above)
    jobs = _sweep_jobs(compose_hydra, ["experiment=aux_tasks_sparse"])
    assert len(jobs) == 5 * 5
    ivs = sorted({o.split("=", 1)[1] for j in jobs for o in j if o.startswith("intervention=")})
    assert ivs == sorted(["[]", "[aux_random_cumulants]", "[aux_ensemble]", "[aux_multi_gamma]", "[infer]"])
    for job in jobs[::5]:
        cfg = compose(job)
        validate(cfg)
        assert (cfg.env.id, cfg.agent.name, cfg.train.total_frames) == ("MountainCar-v0", "dqn", 100_000)
        assert cfg.env.obs_norm and cfg.model.activation == "relu"
