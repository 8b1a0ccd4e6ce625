"""Policy-evaluation datasets for the TD-NTK study (Anonymous 2023 §5, App. D.1-D.2; docs/references.md#anonymous-2023).

* Toy (App. D.1): state s ≥ 0, one action s' = s + 0.25, reward 1 on entering [1, 1.25), the episode ends when
  s' ≥ 1.25; dataset = one transition from each of 21 states linspace(0, 1.25). With γ = 1 the true value is 1 for
  s < 1 and 0 for s ≥ 1. The Q-network input is s (one action).
* Cart-pole (App. D.2): a fixed deterministic policy π (greedy in its logits) generates the dataset (π_β = π_α, as in
  the paper); Q-network inputs are (standardised state, one-hot action); X' = (s', π(s')). True values are discounted
  Monte-Carlo returns of π rolled out from the evaluation states (CartPole is deterministic, so one rollout is exact).
  "Train" evaluation states are dataset states, "test" states come from held-out episodes of the same policy.

The policy is config: ``source: train`` trains a linear softmax policy with REINFORCE for a few iterations inside the
study (documented in :func:`train_linear_policy`); ``source: checkpoint`` loads the actor of a repdyn PPO run
(``<run_dir>/checkpoints/last.pt`` with the agent's ``"actor"`` state dict, architecture from
``<run_dir>/config.yaml``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from torch import nn

TOY_STEP = 0.25


@dataclass
class TDDataset:
    """Transitions (x, x', r, g = γ(1 − done)) and evaluation inputs with true values, split into train / test."""

    x: torch.Tensor  # [n, d]
    xp: torch.Tensor  # [n, d]
    r: torch.Tensor  # [n]
    g: torch.Tensor  # [n]
    xs: torch.Tensor  # [m, d] evaluation inputs
    ys: torch.Tensor  # [m] true values
    split: list[str]  # per evaluation input: "train" | "test"
    info: dict


# ----------------------------------------------------------------------------------------------------------------------
# toy


def toy_step(s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(s', r, done) of the toy environment for states ``s``."""
    sp = s + TOY_STEP
    r = ((sp >= 1.0) & (sp < 1.0 + TOY_STEP)).astype(np.float64)
    return sp, r, sp >= 1.0 + TOY_STEP


def toy_returns(s: np.ndarray, gamma: float, max_steps: int = 1000) -> np.ndarray:
    """Discounted return from each state in ``s`` (rollout of the single action)."""
    s = np.asarray(s, dtype=np.float64).copy()
    ret, disc = np.zeros_like(s), np.ones_like(s)
    alive = np.ones_like(s, dtype=bool)
    for _ in range(max_steps):
        sp, r, done = toy_step(s)
        ret += np.where(alive, disc * r, 0.0)
        disc *= gamma
        alive &= ~done
        s = sp
        if not alive.any():
            break
    return ret


def toy_dataset(gamma: float, n_states: int = 21, grid: tuple[float, float, int] = (0.0, 1.25, 100)) -> TDDataset:
    """App. D.1: transitions from linspace(0, 1.25, n_states); evaluation = the dataset states ("train") and an
    evenly spaced grid ("test", the paper's 100 points in [0, 1.25] for its figures)."""
    if not (0.0 <= gamma <= 1.0):
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    s = np.linspace(0.0, 1.0 + TOY_STEP, n_states)
    sp, r, done = toy_step(s)
    grid_s = np.linspace(grid[0], grid[1], int(grid[2]))
    eval_s = np.concatenate([s, grid_s])

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, dtype=torch.float64)

    return TDDataset(
        x=t(s)[:, None],
        xp=t(sp)[:, None],
        r=t(r),
        g=t(gamma * (1.0 - done)),
        xs=t(eval_s)[:, None],
        ys=t(toy_returns(eval_s, gamma)),
        split=["train"] * len(s) + ["test"] * len(grid_s),
        info={"n_transitions": len(s), "n_terminal": int(done.sum())},
    )


# ----------------------------------------------------------------------------------------------------------------------
# cart-pole policies

Policy = Callable[[np.ndarray], np.ndarray]  # states [B, 4] -> actions [B]


def train_linear_policy(
    iterations: int, episodes_per_iter: int, lr: float, seed: int, max_steps: int = 500
) -> tuple[Policy, dict]:
    """A small cart-pole policy trained inside the study: logits = W s + b (4 → 2), REINFORCE with Adam, undiscounted
    reward-to-go normalised per batch as the weight, ``iterations`` updates of ``episodes_per_iter`` sampled episodes.
    The evaluated policy is greedy in the logits (deterministic), so Q^π is a deterministic function of (s, a).
    Returns (policy, info with the greedy policy's mean episode length over 10 seeded episodes)."""
    if iterations < 0 or episodes_per_iter < 1:
        raise ValueError(f"need iterations >= 0 and episodes_per_iter >= 1, got {iterations}, {episodes_per_iter}")
    gen = torch.Generator().manual_seed(seed)
    head = nn.Linear(4, 2).double()
    with torch.no_grad():
        head.weight.normal_(0.0, 0.01, generator=gen)
        head.bias.zero_()
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    env = gym.make("CartPole-v1", max_episode_steps=max_steps)
    lengths = []
    for it in range(iterations):
        obs_l, act_l, rtg_l = [], [], []
        for ep in range(episodes_per_iter):
            obs, _ = env.reset(seed=seed * 100_000 + it * episodes_per_iter + ep)
            ep_obs, ep_act = [], []
            while True:
                logits = head(torch.as_tensor(obs, dtype=torch.float64))
                a = int(torch.multinomial(torch.softmax(logits, -1), 1, generator=gen))
                ep_obs.append(obs)
                ep_act.append(a)
                obs, _, term, trunc, _ = env.step(a)
                if term or trunc:
                    break
            n = len(ep_act)
            lengths.append(n)
            obs_l.append(np.asarray(ep_obs))
            act_l.append(np.asarray(ep_act))
            rtg_l.append(np.arange(n, 0, -1, dtype=np.float64))  # reward 1 per step: reward-to-go = steps left
        o = torch.as_tensor(np.concatenate(obs_l), dtype=torch.float64)
        a = torch.as_tensor(np.concatenate(act_l))
        w = torch.as_tensor(np.concatenate(rtg_l))
        w = (w - w.mean()) / (w.std() + 1e-8)
        logp = torch.log_softmax(head(o), -1).gather(1, a[:, None])[:, 0]
        loss = -(logp * w).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    W, b = head.weight.detach().numpy().copy(), head.bias.detach().numpy().copy()

    def policy(states: np.ndarray) -> np.ndarray:
        return np.argmax(np.atleast_2d(states) @ W.T + b, axis=-1)

    greedy = [len(rollout_episode(policy, seed=10**7 + k, max_steps=max_steps)[1]) for k in range(10)]
    env.close()
    return policy, {"policy_source": "train", "greedy_mean_length": float(np.mean(greedy))}


def load_checkpoint_policy(run_dir: str | Path) -> tuple[Policy, dict]:
    """Greedy policy from a repdyn run dir: ``checkpoints/last.pt`` → ``state["agent"]["actor"]`` (PPO, argmax of the
    logits) or ``state["agent"]["qnet"]`` (DQN, argmax of Q), rebuilt from ``config.yaml``'s ``model`` section."""
    from omegaconf import OmegaConf

    from repdyn.paths import CHECKPOINT_DIR, CONFIG_FILE

    run_dir = Path(run_dir)
    ckpt_path, cfg_path = run_dir / CHECKPOINT_DIR / "last.pt", run_dir / CONFIG_FILE
    if not ckpt_path.exists() or not cfg_path.exists():
        raise ValueError(f"policy.run_dir must hold {CONFIG_FILE} and {CHECKPOINT_DIR}/last.pt; not found in {run_dir}")
    cfg = OmegaConf.load(cfg_path)
    if cfg.env.get("id") != "CartPole-v1" or cfg.env.get("obs_norm", False):
        raise ValueError(f"checkpoint policy must be a CartPole-v1 run without obs_norm; got env {cfg.env.get('id')}")
    state = torch.load(ckpt_path, weights_only=False)
    agent = state.get("agent", state)
    from repdyn.agents.networks import ActorNet, build_body

    if "actor" in agent:
        net: nn.Module = ActorNet(build_body(cfg.model, (4,), 2, 0.01), False, cfg.model.get("min_scale", 1e-4))
        net.load_state_dict(agent["actor"])
    elif "qnet" in agent:
        net = build_body(cfg.model, (4,), 2, 1.0)
        net.load_state_dict(agent["qnet"])
    else:
        raise ValueError(f"checkpoint agent state has neither 'actor' nor 'qnet' (keys: {sorted(agent)})")
    net = net.double().eval()

    def policy(states: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = net(torch.as_tensor(np.atleast_2d(states), dtype=torch.float64))[0]
        return out.argmax(-1).numpy()

    return policy, {"policy_source": f"checkpoint:{run_dir}"}


# ----------------------------------------------------------------------------------------------------------------------
# cart-pole data


def rollout_episode(policy: Policy, seed: int, max_steps: int = 500) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One episode of ``policy``: (states [T+1, 4], actions [T], terminated [T]); truncation at ``max_steps`` is not a
    termination (the value keeps bootstrapping)."""
    env = gym.make("CartPole-v1", max_episode_steps=max_steps)
    obs, _ = env.reset(seed=seed)
    states, actions, terms = [obs], [], []
    while True:
        a = int(policy(obs[None])[0])
        obs, _, term, trunc, _ = env.step(a)
        states.append(obs)
        actions.append(a)
        terms.append(term)
        if term or trunc:
            break
    env.close()
    return np.asarray(states, dtype=np.float64), np.asarray(actions), np.asarray(terms)


def mc_returns(policy: Policy, states: np.ndarray, gamma: float, horizon: int) -> np.ndarray:
    """Discounted return Σ_k γ^k r_k of ``policy`` from each state (reward 1 per step until termination), truncated at
    ``horizon`` steps; the simulator state is set directly, so returns do not depend on the episode clock."""
    env = gym.make("CartPole-v1").unwrapped
    env.reset(seed=0)
    out = np.zeros(len(states))
    for i, s in enumerate(states):
        env.state = np.asarray(s, dtype=np.float64).copy()
        env.steps_beyond_terminated = None  # a fresh start: the previous rollout may have ended in a termination
        obs, ret, disc = env.state, 0.0, 1.0
        for _ in range(horizon):
            obs, r, term, _, _ = env.step(int(policy(np.asarray(obs)[None])[0]))
            ret += disc * r
            disc *= gamma
            if term:
                break
        out[i] = ret
    env.close()
    return out


def cartpole_dataset(
    policy: Policy,
    gamma: float,
    n_transitions: int,
    n_eval_train: int,
    n_eval_test: int,
    horizon: int,
    seed: int,
    max_steps: int = 500,
) -> TDDataset:
    """App. D.2: ``n_transitions`` transitions from consecutive episodes of π; inputs (standardised s, one-hot a) with
    the dataset's state mean/std; evaluation at ``n_eval_train`` dataset states and ``n_eval_test`` states of held-out
    episodes, with true values from :func:`mc_returns`."""
    if not (0.0 <= gamma <= 1.0):
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    if n_eval_train > n_transitions:
        raise ValueError(f"n_eval_train ({n_eval_train}) must be <= n_transitions ({n_transitions})")
    rng = np.random.default_rng(seed)
    s_l, a_l, sp_l, d_l, ep = [], [], [], [], 0
    while sum(len(a) for a in a_l) < n_transitions:
        states, actions, terms = rollout_episode(policy, seed=seed * 1000 + ep, max_steps=max_steps)
        s_l.append(states[:-1])
        a_l.append(actions)
        sp_l.append(states[1:])
        d_l.append(terms)
        ep += 1
    s, a = np.concatenate(s_l)[:n_transitions], np.concatenate(a_l)[:n_transitions]
    sp, done = np.concatenate(sp_l)[:n_transitions], np.concatenate(d_l)[:n_transitions]
    test_states: list[np.ndarray] = []
    k = 0
    while sum(len(t) for t in test_states) < n_eval_test:  # held-out episodes (seeds disjoint from the dataset's)
        test_states.append(rollout_episode(policy, seed=10**6 + seed * 1000 + k, max_steps=max_steps)[0][:-1])
        k += 1
    pool = np.concatenate(test_states)
    s_test = pool[rng.choice(len(pool), n_eval_test, replace=False)]
    s_train = s[rng.choice(n_transitions, n_eval_train, replace=False)]
    mean, std = s.mean(0), s.std(0) + 1e-8

    def inputs(states: np.ndarray, actions: np.ndarray) -> torch.Tensor:
        onehot = np.eye(2)[actions]
        return torch.as_tensor(np.concatenate([(states - mean) / std, onehot], axis=1), dtype=torch.float64)

    eval_s = np.concatenate([s_train, s_test])
    return TDDataset(
        x=inputs(s, a),
        xp=inputs(sp, policy(sp)),
        r=torch.ones(n_transitions, dtype=torch.float64),
        g=torch.as_tensor(gamma * (1.0 - done), dtype=torch.float64),
        xs=inputs(eval_s, policy(eval_s)),
        ys=torch.as_tensor(mc_returns(policy, eval_s, gamma, horizon), dtype=torch.float64),
        split=["train"] * n_eval_train + ["test"] * n_eval_test,
        info={"n_transitions": n_transitions, "n_terminal": int(done.sum()), "n_episodes": ep},
    )
