"""NTK-trace replay eviction (src/repdyn/interventions/ntk_eviction.py): the buffer never exceeds its capacity and
always evicts the argmin of K(x, x), checked against per-sample autograd (a brute-force loop, the reference only)."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from torchrl.data import LazyTensorStorage, ReplayBuffer

from repdyn.agents.networks import CriticNet
from repdyn.interventions import RunFacts
from repdyn.interventions.ntk_eviction import NTKEviction, NTKEvictionWriter, eviction_slots, qnet_ntk_diag_fn
from repdyn.models.mlp import MLP

OBS_DIM, N_ACTIONS, CAP = 4, 3, 8


def _qnet() -> CriticNet:
    torch.manual_seed(0)
    return CriticNet(MLP(OBS_DIM, (16, 16), N_ACTIONS, activation="relu"))


def _items(n: int, seed: int) -> TensorDict:
    g = torch.Generator().manual_seed(seed)
    return TensorDict(
        {
            "observation": torch.randn(n, OBS_DIM, generator=g),
            "action": torch.randint(0, N_ACTIONS, (n,), generator=g),
            "id": torch.arange(seed * 1000, seed * 1000 + n),  # identifies each transition
        },
        [n],
    )


def _buffer(qnet: CriticNet, kind: str = "taken") -> ReplayBuffer:
    writer = NTKEvictionWriter(qnet_ntk_diag_fn(qnet, kind))
    return ReplayBuffer(storage=LazyTensorStorage(CAP), writer=writer, batch_size=4)


def _brute_force_k(qnet: CriticNet, td: TensorDict, kind: str) -> torch.Tensor:
    """K(x_i, x_i) = ‖∇_θ f(x_i)‖², one autograd call per sample."""
    params = list(qnet.parameters())
    out = []
    for i in range(td.shape[0]):
        q = qnet(td["observation"][i : i + 1])[0][0]
        f = {"taken": q[td["action"][i]], "max": q.max(), "mean": q.mean()}[kind]
        grads = torch.autograd.grad(f, params)
        out.append(sum(g.square().sum() for g in grads))
    return torch.stack(out).detach()


def test_eviction_slots_known_sequence():
    # buffer scores [3, 1, 2]; item 0 (K=0.5) replaces slot 1 (K=1); item 1 (K=5) then evicts item 0 (0.5, slot 1);
    # item 2 (K=2.5) evicts slot 2 (K=2).
    slots = eviction_slots(torch.tensor([3.0, 1.0, 2.0]), torch.tensor([0.5, 5.0, 2.5]))
    assert slots.tolist() == [1, 1, 2]


@pytest.mark.parametrize("kind", ["taken", "max"])
def test_evicts_argmin_of_brute_force_k_every_step_and_never_exceeds_capacity(kind):
    qnet = _qnet()
    rb = _buffer(qnet, kind)
    rb.extend(_items(CAP, seed=1))  # fills FIFO
    assert len(rb) == CAP
    for step in range(12):
        before = rb.storage.get(torch.arange(CAP)).clone()
        k = _brute_force_k(qnet, before, kind)
        expected_slot = int(torch.argmin(k))
        new = _items(1, seed=100 + step)
        rb.extend(new)
        after = rb.storage.get(torch.arange(CAP))
        changed = (after["id"] != before["id"]).nonzero().squeeze(-1).tolist()
        assert changed == [expected_slot], (step, k)
        assert int(after["id"][expected_slot]) == int(new["id"][0])
        assert len(rb) == CAP
        stats = rb._writer.stats()
        assert stats["ntk_eviction/evicted_k_mean"] == pytest.approx(float(k[expected_slot]), rel=1e-5)
        with torch.no_grad():  # train a little between steps so K changes, as in a run
            for p in qnet.parameters():
                p.add_(0.05 * torch.randn_like(p))


def test_one_batch_equals_the_same_steps_one_by_one_and_overfull_batches_stay_at_capacity():
    qnet = _qnet()
    one_by_one, batched = _buffer(qnet), _buffer(qnet)
    for rb in (one_by_one, batched):
        rb.extend(_items(CAP - 2, seed=1))
    stream = _items(13, seed=2)  # 2 fill the buffer, then 11 evictions (more than the capacity)
    for i in range(13):
        one_by_one.extend(stream[i : i + 1])
    batched.extend(stream)
    a = one_by_one.storage.get(torch.arange(CAP))["id"]
    b = batched.storage.get(torch.arange(CAP))["id"]
    assert torch.equal(a, b)
    assert len(batched) == CAP and len(one_by_one) == CAP
    assert batched._writer._write_count == one_by_one._writer._write_count == CAP - 2 + 13
    # the newest transition is always kept (it only competes from the next step on)
    assert int(stream["id"][-1]) in b.tolist()


def test_fifo_while_filling_and_writer_state_round_trip():
    qnet = _qnet()
    rb = _buffer(qnet)
    rb.extend(_items(5, seed=3))
    assert rb.storage.get(torch.arange(5))["id"].tolist() == list(range(3000, 3005))
    assert rb._writer.stats() == {}
    rb.extend(_items(6, seed=4))  # 3 fill, 3 evict
    ages = rb._writer.stats()["ntk_eviction/evicted_age_mean"]
    assert 1 <= ages <= 10
    fresh = NTKEvictionWriter(qnet_ntk_diag_fn(qnet))
    fresh.load_state_dict(rb._writer.state_dict())
    assert torch.equal(fresh._inserted_at, rb._writer._inserted_at) and fresh._write_count == 11


def test_intervention_replaces_the_agent_replay_and_checks_its_config():
    class Agent:
        qnet = _qnet()

        def replace_replay(self, capacity, writer):
            self.capacity, self.writer = capacity, writer

    agent = Agent()
    iv = NTKEviction(NTKEviction.Config(capacity=4000), run=None)
    iv.on_agent_built(agent)
    assert agent.capacity == 4000 and isinstance(agent.writer, NTKEvictionWriter)
    run = RunFacts(0, "dqn", 0.99, 128, "classic", model=None)
    assert "q_reduction" in NTKEviction.check(NTKEviction.Config(q_reduction="min"), run)
    assert "capacity" in NTKEviction.check(NTKEviction.Config(capacity=64), run)
    assert NTKEviction.check(NTKEviction.Config(), run) is None
    with pytest.raises(ValueError, match="q_reduction"):
        qnet_ntk_diag_fn(agent.qnet, "min")
