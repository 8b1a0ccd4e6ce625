"""Schemas of the ``agent`` config group (``conf/agent/*.yaml``), registered in Hydra's ConfigStore by
:func:`repdyn.config.register_configs`; value checks are in :func:`repdyn.config.validate`."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PPOConfig:
    name: str = "ppo"
    epochs: int = 10
    minibatch_size: int = 64
    lr: float = 3e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    adam_eps: float = 1e-5
    max_grad_norm: float = 0.5
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_eps: float = 0.2
    entropy_coef: float = 0.0
    value_coef: float = 0.5
    normalize_advantage: bool = True  # per minibatch (docs/experiments.md)


@dataclass
class DQNConfig:
    """DQN (src/repdyn/agents/dqn.py); defaults = conf/agent/dqn.yaml (rl-zoo Acrobot-v1 with the 2×64 net)."""

    name: str = "dqn"
    lr: float = 6.3e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    adam_eps: float = 1e-8
    max_grad_norm: float = 10.0
    gamma: float = 0.99
    minibatch_size: int = 128  # transitions per TD gradient step
    buffer_size: int = 50_000
    learning_starts: int = 1_000  # replay size before the first gradient step
    replay_ratio: float = 1.0  # gradient steps per collected env step
    loss: str = "huber"  # huber | l2
    double_dqn: bool = False
    target_update: str = "hard"  # hard | soft
    target_update_interval: int = 250  # gradient steps between hard target copies
    tau: float = 0.005  # soft update rate (target_update=soft)
    eps_init: float = 1.0
    eps_end: float = 0.1
    eps_frames: int = 12_000  # env steps of linear ε annealing
    checkpoint_replay: bool = True  # put the replay buffer into checkpoints (exact resume)
    replay_storage: str = "memory"  # memory (LazyTensorStorage) | memmap (LazyMemmapStorage, on disk)
    replay_dir: str | None = None  # memmap files; None → <run dir>/replay
    replay_next_obs: str = "full"  # full | last_frame (frame stacks: next obs = obs[1:] + its newest frame)
