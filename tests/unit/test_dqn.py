"""DQN agent (src/repdyn/agents/dqn.py): ε schedule, TD targets and the written-out loss (known answers, and equal to
torchrl's DQNLoss), target-network cadence, replay sampling, replay ratio, metric views and checkpoint round trip —
all on Acrobot-shaped data."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from tensordict import TensorDict
from torch import nn

from repdyn.agents import build_agent
from repdyn.agents.dqn import DQNAgent, epsilon_at
from repdyn.envs.make import make_env

OBS_DIM, N_ACTIONS = 6, 3


@pytest.fixture
def make_agent(compose):
    envs = []

    def _make(*overrides: str) -> DQNAgent:
        cfg = compose(["env=classic/acrobot", "agent=dqn", "model=mlp", "logger=none", "env.num_envs=1", *overrides])
        env = make_env(cfg.env, cfg.seed)
        envs.append(env)
        torch.manual_seed(0)
        return build_agent(cfg, env)

    yield _make
    for e in envs:
        e.close()


def _transitions(n: int, seed: int = 0, reward: float | None = None) -> TensorDict:
    g = torch.Generator().manual_seed(seed)
    term = torch.rand(n, 1, generator=g) < 0.3
    r = torch.randn(n, 1, generator=g) if reward is None else torch.full((n, 1), reward)
    return TensorDict(
        {
            "observation": torch.randn(n, OBS_DIM, generator=g),
            "action": torch.randint(0, N_ACTIONS, (n,), generator=g),
            "next": {
                "observation": torch.randn(n, OBS_DIM, generator=g),
                "reward": r,
                "done": term.clone(),
                "terminated": term,
            },
        },
        [n],
    )


def _perturb(module: nn.Module, scale: float = 0.3) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn_like(p))


def test_epsilon_schedule_is_linear_then_constant():
    assert epsilon_at(0, 1.0, 0.1, 1000) == 1.0
    assert epsilon_at(500, 1.0, 0.1, 1000) == pytest.approx(0.55)
    assert epsilon_at(1000, 1.0, 0.1, 1000) == pytest.approx(0.1)
    assert epsilon_at(10_000, 1.0, 0.1, 1000) == pytest.approx(0.1)
    assert epsilon_at(7, 1.0, 0.05, 0) == 0.05


def _minibatch(td: TensorDict) -> tuple[torch.Tensor, ...]:
    """The plain-tensor arguments of ``DQNAgent.td_loss``."""
    nxt = td["next"]
    return td["observation"], td["action"], nxt["reward"].squeeze(-1), nxt["terminated"].squeeze(-1), nxt["observation"]


@pytest.mark.parametrize("double", [False, True])
def test_td_targets_and_loss_known_answer(make_agent, double):
    agent = make_agent(f"agent.double_dqn={str(double).lower()}")
    _perturb(agent.qnet)  # online ≠ target, so using the wrong network would show
    td = _transitions(64)
    with torch.no_grad():
        q_next_t = agent.target_qnet(td["next", "observation"])[0]
        q_next_online = agent.qnet(td["next", "observation"])[0]
    assert not torch.equal(q_next_t, q_next_online)
    a_star = (q_next_online if double else q_next_t).argmax(-1)
    expected = td["next", "reward"].squeeze(-1) + 0.99 * (~td["next", "terminated"].squeeze(-1)) * q_next_t.gather(
        -1, a_star.unsqueeze(-1)
    ).squeeze(-1)
    y = agent.td_targets(td)
    torch.testing.assert_close(y, expected)
    q = agent.qnet(td["observation"])[0].gather(-1, td["action"].unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(agent.td_loss(*_minibatch(td)), nn.functional.smooth_l1_loss(q, y))


@pytest.mark.filterwarnings("ignore:No target network updater")
@pytest.mark.parametrize("double", [False, True], ids=["dqn", "double"])
@pytest.mark.parametrize("loss", ["huber", "l2"])
def test_written_out_loss_equals_torchrl_dqnloss(make_agent, loss, double):
    """Same minibatch, same online and target parameters: the loss value and its gradient match torchrl's DQNLoss."""
    from torchrl.objectives import DQNLoss

    agent = make_agent(f"agent.loss={loss}", f"agent.double_dqn={str(double).lower()}")
    _perturb(agent.qnet)  # online ≠ target
    ref_actor = copy.deepcopy(agent.actor)
    ref_qnet = ref_actor[0].module.net  # the Q-network inside the policy's NetworkOutput
    ref_qnet.load_state_dict(agent.target_qnet.state_dict())
    ref = DQNLoss(
        ref_actor, loss_function={"huber": "smooth_l1", "l2": "l2"}[loss], delay_value=True, double_dqn=double,
        action_space="categorical",
    )  # fmt: skip  # target parameters: a detached copy of the network at construction = agent.target_qnet
    ref.make_value_estimator(gamma=agent.acfg.gamma)
    ref_qnet.load_state_dict(agent.qnet.state_dict())  # online parameters (in place: DQNLoss reads these tensors)
    td = _transitions(64, seed=4, reward=None)
    td["next", "reward"] = 3 * td["next", "reward"]  # TD errors beyond Huber's quadratic zone too
    expected = ref(td.clone())["loss"]
    got = agent.td_loss(*_minibatch(td))
    torch.testing.assert_close(got, expected)
    expected.backward()
    got.backward()
    for (name, p), q in zip(agent.qnet.named_parameters(), ref_qnet.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, msg=name)
    assert all(p.grad is None for p in agent.target_qnet.parameters())


def test_hard_target_copy_every_interval_gradient_steps(make_agent):
    agent = make_agent("agent.target_update_interval=3")
    copied = []
    for _ in range(9):
        _perturb(agent.qnet, 0.1)
        agent.update_target()
        online = dict(agent.qnet.named_parameters())["body.head.weight"]
        tgt = dict(agent.target_qnet.named_parameters())["body.head.weight"]
        copied.append(bool(torch.equal(online, tgt)))
    assert copied == [False, False, True, False, False, True, False, False, True]
    assert agent.target_steps == 9


def test_soft_target_update_moves_tau_of_the_way(make_agent):
    agent = make_agent("agent.target_update=soft", "agent.tau=0.25")
    _perturb(agent.qnet)
    before = [p.clone() for p in agent.target_qnet.parameters()]
    agent.update_target()
    for b, p, q in zip(before, agent.target_qnet.parameters(), agent.qnet.parameters(), strict=True):
        torch.testing.assert_close(p, b + 0.25 * (q - b))


def test_replay_sampling_draws_what_torchrl_samples(make_agent):
    """The gradient step's minibatch: ``torch.randint(len, (batch,))`` rows of the storage, as ``ReplayBuffer.sample``
    (torchrl's RandomSampler) draws them from the same RNG state."""
    agent = make_agent("agent.minibatch_size=16")
    agent.process_batch(_transitions(40))
    replay = agent.replay_tensors()
    assert replay.size == 40 and replay.reward.shape == replay.terminated.shape == (agent.acfg.buffer_size,)
    torch.manual_seed(11)
    sampled = agent.buffer.sample()
    torch.manual_seed(11)
    idx = torch.randint(replay.size, (16,))
    stored = agent.buffer.storage.get(idx)
    for key, got in zip(
        ("observation", "action", ("next", "reward"), ("next", "terminated"), ("next", "observation")),
        (replay.observation, replay.action, replay.reward, replay.terminated, replay.next_observation),
        strict=True,
    ):
        assert torch.equal(sampled[key], stored[key]), key
        assert torch.equal(got[idx].reshape(stored[key].shape), stored[key]), key


def test_update_takes_replay_ratio_steps_after_warmup_and_sets_epsilon(make_agent):
    agent = make_agent("agent.replay_ratio=0.5", "agent.learning_starts=16", "agent.minibatch_size=8")
    batch = _transitions(4)
    agent.process_batch(batch)
    res = agent.update(batch, env_steps=4, hooks=None)
    assert agent.grad_steps == 0 and "loss/td" not in res.scalars  # 4 < learning_starts
    for i in range(3):
        agent.process_batch(_transitions(4, seed=i + 1))
    before = [p.detach().clone() for p in agent.qnet.parameters()]
    res = agent.update(batch, env_steps=6000, hooks=None)
    assert agent.grad_steps == 2 and res.scalars["dqn/gradient_steps"] == 2.0  # 4 env steps × 0.5
    assert res.scalars["dqn/replay_size"] == 16.0
    assert res.scalars["dqn/epsilon"] == pytest.approx(0.55)  # halfway through eps_frames = 12,000
    assert float(agent.egreedy.eps) == pytest.approx(0.55)
    assert any(not torch.equal(b, p) for b, p in zip(before, agent.qnet.parameters(), strict=True))
    agent.update(_transitions(3), env_steps=6003, hooks=None)  # 1.5 steps of credit → 1, carry 0.5
    agent.update(_transitions(1), env_steps=6004, hooks=None)  # 0.5 + 0.5 → 1
    assert agent.grad_steps == 4


def test_process_batch_stores_the_batch_rewards_flattened(make_agent):
    agent = make_agent()
    batch = _transitions(12).reshape(2, 6)  # [num_envs, T] as the collector returns it
    batch["next", "reward"] = batch["next", "reward"] + 100.0  # e.g. an intrinsic bonus added by a hook
    agent.process_batch(batch)
    stored = agent.buffer.storage.get(torch.arange(12))
    torch.testing.assert_close(stored["next", "reward"], batch["next", "reward"].reshape(12, 1))
    torch.testing.assert_close(stored["observation"], batch["observation"].reshape(12, OBS_DIM))


def test_metric_views(make_agent):
    agent = make_agent()
    td = _transitions(10)
    out = agent.qnet(td["observation"])
    kw = agent.metric_kwargs("qnet", out)
    torch.testing.assert_close(kw["values"], out[0].max(-1).values)
    agent.process_batch(td)
    flat = agent.probe_data(td, 6, torch.Generator().manual_seed(0))
    assert flat.shape == (6,)
    torch.testing.assert_close(flat["value_target"].squeeze(-1), agent.td_targets(flat))
    view = agent.update_rank_views(flat)["qnet"]
    assert view["output"] == "q_max" and view["optimizer"] is agent.optimizers["qnet"]
    params = dict(agent.qnet.named_parameters())
    sample = {k: v[2] for k, v in view["batch"].items()}
    q = agent.qnet(flat["observation"][2:3])[0][0, flat["action"][2]]
    expected = nn.functional.smooth_l1_loss(q, flat["value_target"][2, 0])
    torch.testing.assert_close(view["loss_fn"](params, {}, sample), expected)
    model, output_fn = agent.ntk_views()["qnet"]
    assert model is agent.qnet and output_fn.kind == "max"


def test_representation_metrics_run_on_replay_samples_not_the_few_collected_steps(make_agent, compose):
    from repdyn.metrics.representation import representation_metrics
    from repdyn.metrics.scheduled import batch_metrics, representation_batch

    agent = make_agent()
    mcfg = compose(["env=classic/acrobot", "agent=dqn", "metrics.replay_samples=40"]).metrics
    replay = _transitions(100)
    agent.process_batch(replay)
    collected = _transitions(4, seed=7)  # a DQN batch: a few env steps, rank ≤ 4 whatever the network
    rep = representation_batch(collected, agent, mcfg, torch.Generator().manual_seed(0))
    assert rep.shape == (40,)
    # the 40 states are distinct replay observations
    match = (rep["observation"][:, None] == replay["observation"][None]).all(-1)
    assert (match.sum(1) == 1).all() and match.any(0).sum() == 40
    record, _ = batch_metrics(rep, agent, mcfg, "start")
    with torch.no_grad():
        q, features, preact, preacts_all = agent.qnet(rep["observation"])
    expected = representation_metrics(
        features, (preacts_all[:, :-64], preact), agent.activation, delta=mcfg.delta, tau=mcfg.dormant_tau,
        values=q.max(-1).values,
    )  # fmt: skip
    assert record["batch_start/qnet/feature_rank"] == expected["feature_rank"] > 4
    assert record["batch_start/qnet/value_mean"] == pytest.approx(expected["value_mean"])


def test_checkpoint_round_trip_restores_networks_target_optimizer_and_replay(make_agent):
    args = ("agent.learning_starts=8", "agent.minibatch_size=8", "agent.target_update_interval=5")
    a = make_agent(*args)
    for i in range(4):
        b = _transitions(4, seed=i)
        a.process_batch(b)
        a.update(b, env_steps=4 * (i + 1), hooks=None)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)  # through bytes, as repdyn.checkpoint does (no tensor shared with ``a``)
    buf.seek(0)
    state = torch.load(buf, weights_only=False)
    b = make_agent(*args)
    init_target = [p.clone() for p in b.target_qnet.parameters()]
    b.load_state_dict(state)
    # 3 batches × 4 steps (the replay reaches 8 at the second batch); target copied at steps 5 and 10: ≠ init, ≠ qnet
    assert a.target_steps == a.grad_steps == 12
    for net in ("qnet", "target_qnet"):
        for (k, p), q in zip(getattr(a, net).named_parameters(), getattr(b, net).parameters(), strict=True):
            assert torch.equal(p, q), (net, k)
    for other in (list(a.qnet.parameters()), init_target):
        assert not all(torch.equal(p, q) for p, q in zip(a.target_qnet.parameters(), other, strict=True))
    assert len(b.buffer) == len(a.buffer) == 16 and b.grad_steps == a.grad_steps and b.target_steps == a.target_steps
    nxt = _transitions(4, seed=9)
    for agent in (a, b):
        agent.process_batch(nxt)
    torch.manual_seed(3)
    ra = a.update(nxt, env_steps=20, hooks=None).scalars
    torch.manual_seed(3)
    rb = b.update(nxt, env_steps=20, hooks=None).scalars
    assert ra == rb
    for net in ("qnet", "target_qnet"):  # the 4 steps include the target copy at step 15
        for p, q in zip(getattr(a, net).parameters(), getattr(b, net).parameters(), strict=True):
            assert torch.equal(p, q), net


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["env=mujoco/hopper"], "agent: agent=dqn needs discrete actions"),
        (["agent.loss=mse"], "agent.loss: must be 'huber' or 'l2'"),
        (["agent.target_update=polyak"], "agent.target_update"),
        (["agent.eps_end=0.5", "agent.eps_init=0.2"], "agent.eps_init"),
        (["agent.buffer_size=16"], "agent.buffer_size: must be ≥ agent.minibatch_size (128)"),
        (["agent.replay_ratio=0"], "agent.replay_ratio"),
        (["metrics.ntk_q_reduction=taken"], "metrics.ntk_q_reduction"),
    ],
)
def test_bad_dqn_config_fails_before_compute_naming_the_key(compose, overrides, key):
    from repdyn.config import ConfigError, validate

    cfg = compose(["env=classic/acrobot", "agent=dqn", "model=mlp", "logger=none", *overrides])
    with pytest.raises(ConfigError, match=key.replace("(", r"\(").replace(")", r"\)")):
        validate(cfg)


def test_dqn_only_interventions_are_rejected_for_ppo(compose):
    from repdyn.config import ConfigError, validate

    with pytest.raises(ConfigError, match="ntk_eviction: not compatible with agent=ppo"):
        validate(compose(["env=classic/acrobot", "model=mlp", "logger=none", "intervention=[ntk_eviction]"]))
    validate(compose(["env=classic/acrobot", "model=mlp", "logger=none", "intervention=[icm]"]))  # ICM: PPO too
