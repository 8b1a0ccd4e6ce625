"""Distillation objectives (Lyle et al. 2022b App. D, eqs. 22-24) on hand-computable values, and a q_regression student
that learns a tiny teacher: its loss falls and it agrees with the teacher's greedy action on most training states."""

from __future__ import annotations

import math

import pytest
import torch

from repdyn.distill import objectives as obj
from repdyn.models.mlp import MLP


def test_value_objectives_on_known_values() -> None:
    qs = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    qt = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    assert obj.q_regression(qs, qt).item() == pytest.approx((0 + 4 + 1 + 1) / 4)
    assert obj.qa_regression(qs, qt, torch.tensor([1, 0])).item() == pytest.approx((4 + 1) / 2)
    # advantages remove the value level: the second state differs only by a constant, so only the first counts
    assert obj.adv_regression(qs, qt).item() == pytest.approx((1 + 1) / 4)


def test_double_q_target_uses_the_online_argmax_and_the_target_value() -> None:
    y = obj.double_q_target(
        reward=torch.tensor([1.0, 1.0]),
        terminated=torch.tensor([False, True]),
        q_next_online=torch.tensor([[0.0, 5.0], [0.0, 5.0]]),
        q_next_target=torch.tensor([[9.0, 2.0], [9.0, 2.0]]),
        gamma=0.5,
    )
    assert y.tolist() == [2.0, 1.0]  # 1 + 0.5 · Q_target(s', argmax_online = 1); terminal: r only


def test_policy_objectives_entropy_and_kl() -> None:
    uniform = torch.zeros(3, 4)
    assert obj.entropy(uniform).tolist() == pytest.approx([math.log(4)] * 3)
    assert obj.policy_kl(uniform, uniform, entropy_coef=0.0).item() == pytest.approx(0.0, abs=1e-7)
    assert obj.policy_kl(uniform, uniform, entropy_coef=0.01).item() == pytest.approx(-0.01 * math.log(4))
    ce = obj.behaviour_cloning(uniform, torch.tensor([0, 1, 2]), entropy_coef=0.0).item()
    assert ce == pytest.approx(math.log(4))


def test_q_regression_student_learns_a_tiny_teacher() -> None:
    torch.manual_seed(0)
    teacher = MLP(4, (32, 32), 3, activation="relu", head_gain=1.0)
    student = MLP(4, (32, 32), 3, activation="relu", head_gain=1.0)
    states = torch.randn(512, 4)
    with torch.no_grad():
        q_teacher = teacher(states)[0]
    opt = torch.optim.Adam(student.parameters(), lr=3e-3)
    losses = []
    for _ in range(300):
        idx = torch.randint(0, 512, (64,))
        loss = obj.q_regression(student(states[idx])[0], q_teacher[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        final = obj.q_regression(student(states)[0], q_teacher).item()
        start = obj.q_regression(MLP(4, (32, 32), 3, activation="relu")(states)[0], q_teacher).item()
        agree = obj.agreement(student(states)[0], q_teacher)
    assert final < 0.1 * start, (start, final)
    assert agree > 0.8, agree
