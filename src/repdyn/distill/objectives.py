"""Distillation objectives of Lyle et al. 2022b §6 and App. D ("Learning Dynamics and Generalization in Reinforcement
Learning", ICML, arXiv:2206.02126): pure functions of the student's outputs, the teacher's outputs and the minibatch.

Value objectives (DQN teacher, Q-network student):

- ``q_regression`` (eq. 22): mean over the batch of Σ_a (Q_S(s, a) − Q_T(s, a))² / |A|, every action regressed;
- ``qa_regression``: (Q_S(s, a) − Q_T(s, a))² on the taken action only;
- ``adv_regression``: the same over all actions on advantages A(s, a) = Q(s, a) − mean_a' Q(s, a');
- ``double_q``: offline double-Q learning on the teacher's transitions, no teacher outputs: Huber(Q_S(s, a) − y) with
  y = r + γ (1 − terminal) Q_target(s', argmax_a' Q_S(s', a')) (the bootstrapping baseline of App. D.1).

Policy objectives (softmax of the student's outputs):

- ``behaviour_cloning`` (eq. 23): −log π_S(a_T | s) − λ H(π_S(·|s)), a_T the teacher's greedy action;
- ``policy_kl`` (eq. 24, PPO teachers): KL(π_T(·|s) ‖ π_S(·|s)) − λ H(π_S(·|s)).

Each returns a scalar tensor (mean over the batch), finite for any finite input; a batch of one state is fine.
"""

from __future__ import annotations

from torch import Tensor
from torch.nn import functional as F


def q_regression(q_student: Tensor, q_teacher: Tensor) -> Tensor:
    """Eq. 22: mean over states and actions of (Q_S − Q_T)²; ``[B, A]`` inputs."""
    return (q_student - q_teacher).square().mean()


def qa_regression(q_student: Tensor, q_teacher: Tensor, action: Tensor) -> Tensor:
    """(Q_S(s, a) − Q_T(s, a))² on the taken action ``a`` only (``action`` ``[B]`` int)."""
    a = action.long().unsqueeze(-1)
    return (q_student.gather(-1, a) - q_teacher.gather(-1, a)).square().mean()


def advantages(q: Tensor) -> Tensor:
    """A(s, a) = Q(s, a) − mean_a' Q(s, a')."""
    return q - q.mean(-1, keepdim=True)


def adv_regression(q_student: Tensor, q_teacher: Tensor) -> Tensor:
    """Mean over states and actions of (A_S − A_T)²: the teacher's action gaps without its value level."""
    return (advantages(q_student) - advantages(q_teacher)).square().mean()


def double_q_target(
    reward: Tensor, terminated: Tensor, q_next_online: Tensor, q_next_target: Tensor, gamma: float
) -> Tensor:
    """y = r + γ (1 − terminal) Q_target(s', argmax_a' Q_online(s', a')) (van Hasselt et al. 2016), no gradient."""
    best = q_next_online.argmax(-1, keepdim=True)
    return (reward + gamma * (~terminated.bool()).float() * q_next_target.gather(-1, best).squeeze(-1)).detach()


def double_q(q_student: Tensor, action: Tensor, target: Tensor) -> Tensor:
    """Huber(Q_S(s, a) − y) for the double-Q target ``y`` of :func:`double_q_target` (``[B]``)."""
    q_taken = q_student.gather(-1, action.long().unsqueeze(-1)).squeeze(-1)
    return F.smooth_l1_loss(q_taken, target)


def entropy(logits: Tensor) -> Tensor:
    """H(softmax(logits)) per state, ``[B]`` (0 for a one-hot policy; log |A| for a uniform one)."""
    logp = F.log_softmax(logits, -1)
    return -(logp.exp() * logp).sum(-1)


def behaviour_cloning(logits_student: Tensor, teacher_action: Tensor, entropy_coef: float) -> Tensor:
    """Eq. 23: cross-entropy of softmax(student outputs) to the teacher's greedy action − λ · entropy."""
    ce = F.cross_entropy(logits_student, teacher_action.long())
    return ce - entropy_coef * entropy(logits_student).mean()


def policy_kl(logits_student: Tensor, logits_teacher: Tensor, entropy_coef: float) -> Tensor:
    """Eq. 24: KL(π_T ‖ π_S) = Σ_a π_T(a) (log π_T(a) − log π_S(a)), mean over states, − λ · entropy(π_S)."""
    logp_t = F.log_softmax(logits_teacher, -1)
    logp_s = F.log_softmax(logits_student, -1)
    kl = (logp_t.exp() * (logp_t - logp_s)).sum(-1)
    return kl.mean() - entropy_coef * entropy(logits_student).mean()


def objective_loss(
    objective: str,
    student_out: Tensor,
    teacher_out: Tensor,
    batch: dict[str, Tensor],
    *,
    entropy_coef: float,
    double_q_y: Tensor | None = None,
) -> Tensor:
    """Dispatch by name: ``student_out``/``teacher_out`` are ``[B, A]`` (Q-values or logits) on the batch's
    observations; ``batch["action"]`` the taken actions; ``double_q_y`` the double-Q targets (``double_q`` only)."""
    if objective == "q_regression":
        return q_regression(student_out, teacher_out)
    if objective == "qa_regression":
        return qa_regression(student_out, teacher_out, batch["action"])
    if objective == "adv_regression":
        return adv_regression(student_out, teacher_out)
    if objective == "double_q":
        assert double_q_y is not None
        return double_q(student_out, batch["action"], double_q_y)
    if objective == "behaviour_cloning":
        return behaviour_cloning(student_out, teacher_out.argmax(-1), entropy_coef)
    if objective == "policy_kl":
        return policy_kl(student_out, teacher_out, entropy_coef)
    raise ValueError(f"objective: unknown {objective!r}")


def greedy(out: Tensor) -> Tensor:
    """The greedy action of Q-values or logits (the same argmax), ``[B]``."""
    return out.argmax(-1)


def agreement(out_a: Tensor, out_b: Tensor) -> float:
    """Fraction of states where two networks' greedy actions agree (1.0 for an empty batch)."""
    if out_a.shape[0] == 0:
        return 1.0
    return float((greedy(out_a) == greedy(out_b)).float().mean())


__all__ = [
    "adv_regression",
    "advantages",
    "agreement",
    "behaviour_cloning",
    "double_q",
    "double_q_target",
    "entropy",
    "greedy",
    "objective_loss",
    "policy_kl",
    "q_regression",
    "qa_regression",
]
