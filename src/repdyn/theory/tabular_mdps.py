"""Finite MDPs with actions for the auxiliary-task study (Lyle et al. 2021, arXiv:2102.13089): a chain, the 50-state
circle of the tabular TD study, and random sparse MDPs, plus policies and policy iteration.

An MDP here is P[a, s, s'] (rows sum to 1) and a state reward R[s]. The reward depends on the state only, so R^π = R
for every policy π: this makes the "additional policies" limit of Lyle et al. 2021 Table 1,
Φ_∞ = (I − γP^π̄)^{-1} R^π̄ εᵀ, exact (with action-dependent rewards the heads of different policies would add up to a
random mixture of the R^{π_l}, not R^π̄ εᵀ).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TabularMDP:
    """P [A, S, S] per-action transition matrices, R [S] state rewards."""

    P: torch.Tensor
    R: torch.Tensor
    name: str


def policy_transition(mdp: TabularMDP, pi: torch.Tensor) -> torch.Tensor:
    """P^π[s, s'] = Σ_a π(a|s) P[a, s, s'] for a policy ``pi`` [S, A] (rows sum to 1)."""
    if pi.shape != (mdp.P.shape[1], mdp.P.shape[0]):
        raise ValueError(f"policy must be [S, A] = {(mdp.P.shape[1], mdp.P.shape[0])}, got {tuple(pi.shape)}")
    return torch.einsum("sa,ast->st", pi.to(mdp.P.dtype), mdp.P)


def uniform_policy(mdp: TabularMDP) -> torch.Tensor:
    """π(a|s) = 1/A."""
    A, S = mdp.P.shape[:2]
    return torch.full((S, A), 1.0 / A, dtype=mdp.P.dtype)


def random_policies(mdp: TabularMDP, n: int, seed: int) -> torch.Tensor:
    """``n`` stochastic policies [n, S, A], each π(·|s) uniform on the simplex (Dirichlet(1): normalised Exp(1)
    draws), independently and seeded."""
    A, S = mdp.P.shape[:2]
    gen = torch.Generator().manual_seed(seed)
    e = -torch.log(torch.rand(n, S, A, generator=gen, dtype=torch.float64))
    return e / e.sum(-1, keepdim=True)


def chain_mdp(n_states: int = 20, slip: float = 0.1, reward_left: float = 0.1, reward_right: float = 1.0) -> TabularMDP:
    """Chain 0..n−1, actions 0 = left, 1 = right: the chosen move happens with probability 1 − ``slip``, the opposite
    one otherwise; moving off an end stays put. Reward ``reward_left`` in state 0 and ``reward_right`` in state n − 1,
    so a policy that walks left is improved towards walking right one region at a time."""
    if n_states < 3 or not (0.0 <= slip < 0.5):
        raise ValueError(f"need n_states >= 3 and slip in [0, 0.5), got {n_states}, {slip}")
    idx = torch.arange(n_states)
    left, right = (idx - 1).clamp_min(0), (idx + 1).clamp_max(n_states - 1)
    P = torch.zeros(2, n_states, n_states, dtype=torch.float64)
    for a, (main, other) in enumerate(((left, right), (right, left))):
        P[a, idx, main] += 1.0 - slip
        P[a, idx, other] += slip
    R = torch.zeros(n_states, dtype=torch.float64)
    R[0], R[-1] = reward_left, reward_right
    return TabularMDP(P, R, "chain")


def circle_mdp(n_states: int = 50, reward_state: int = 25) -> TabularMDP:
    """The circle of the tabular TD study (states 1..n, index i ↔ state i + 1, reward 1 in ``reward_state``) with
    actions 0 = step left, 1 = step right; the uniform policy is its symmetric random walk."""
    if n_states < 3 or not (1 <= reward_state <= n_states):
        raise ValueError(f"need n_states >= 3 and reward_state in [1, n_states], got {n_states}, {reward_state}")
    idx = torch.arange(n_states)
    P = torch.zeros(2, n_states, n_states, dtype=torch.float64)
    P[0, idx, (idx - 1) % n_states] = 1.0
    P[1, idx, (idx + 1) % n_states] = 1.0
    R = torch.zeros(n_states, dtype=torch.float64)
    R[reward_state - 1] = 1.0
    return TabularMDP(P, R, "circle")


def random_sparse_mdp(n_states: int, n_actions: int, n_successors: int, seed: int) -> TabularMDP:
    """Each (s, a) moves to ``n_successors`` distinct uniformly chosen states with Dirichlet(1) probabilities; the
    reward is N(0, 1) per state. Seeded: the same arguments give the same MDP."""
    if not (1 <= n_successors <= n_states) or n_actions < 1:
        raise ValueError(f"need 1 <= n_successors <= n_states and n_actions >= 1, got {n_successors}, {n_actions}")
    gen = torch.Generator().manual_seed(seed)
    P = torch.zeros(n_actions, n_states, n_states, dtype=torch.float64)
    for a in range(n_actions):
        for s in range(n_states):
            succ = torch.randperm(n_states, generator=gen)[:n_successors]
            e = -torch.log(torch.rand(n_successors, generator=gen, dtype=torch.float64))
            P[a, s, succ] = e / e.sum()
    R = torch.randn(n_states, generator=gen, dtype=torch.float64)
    return TabularMDP(P, R, "random_sparse")


def policy_value(mdp: TabularMDP, pi: torch.Tensor, gamma: float) -> torch.Tensor:
    """V^π = (I − γP^π)^{-1} R."""
    P = policy_transition(mdp, pi)
    return torch.linalg.solve(torch.eye(P.shape[0], dtype=P.dtype) - gamma * P, mdp.R)


def greedy_policy(mdp: TabularMDP, v: torch.Tensor, gamma: float) -> torch.Tensor:
    """Deterministic π(s) = argmax_a R(s) + γ Σ_s' P(s'|s, a) V(s') as a one-hot [S, A] (ties → lowest action)."""
    q = mdp.R[None] + gamma * torch.einsum("ast,t->as", mdp.P, v)
    return torch.nn.functional.one_hot(q.argmax(0), mdp.P.shape[0]).to(mdp.P.dtype)


def value_improvement_path(
    mdp: TabularMDP, pi0: torch.Tensor, gamma: float, max_iters: int = 100
) -> list[torch.Tensor]:
    """Policy iteration from ``pi0``: [π_0, π_1, …] with π_{k+1} greedy w.r.t. V^{π_k}, until the policy repeats."""
    path = [pi0]
    for _ in range(max_iters):
        nxt = greedy_policy(mdp, policy_value(mdp, path[-1], gamma), gamma)
        if torch.equal(nxt, path[-1]):
            break
        path.append(nxt)
    return path
