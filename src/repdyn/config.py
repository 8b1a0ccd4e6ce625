"""Structured configs registered in Hydra's ConfigStore: types and defaults for every config group.

Hydra rejects unknown group options, typo'd keys and wrong types against these schemas; :func:`validate` then checks
values and combinations (ranges, allowed strings, intervention compatibility) before anything is built, raising one
:class:`ConfigError` that names the key and what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from repdyn.metrics.config import MetricsConfig


class ConfigError(ValueError):
    """A user-caused configuration problem, reported before any compute."""


@dataclass
class EnvConfig:
    family: str = MISSING  # classic | mujoco | atari
    id: str = MISSING  # gymnasium id, e.g. Hopper-v5, CartPole-v1, ALE/Phoenix-v5
    num_envs: int = 2
    frames_per_env: int = 1024  # rollout length per env; a batch is num_envs × frames_per_env env steps
    max_episode_steps: int | None = None
    obs_norm: bool = False  # standardise observations with stats from random steps, then frozen (docs/experiments.md)
    obs_norm_steps: int = 4000
    atari: dict[str, Any] = field(default_factory=dict)  # keyword args of repdyn.envs.atari.make_atari_env
    # capacity-loss probe (docs/metrics.md#capacity-loss): agent steps rolled out by the target policy, its envs, epochs
    capacity_samples: int = 4000
    capacity_num_envs: int = 4
    capacity_epochs: int = 4


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


@dataclass
class ModelConfig:
    name: str = "mlp"  # mlp | cnn
    hidden: list[int] = field(default_factory=lambda: [64, 64])
    activation: str = "tanh"
    min_scale: float = 1e-4  # floor added to softplus(std) of the TanhNormal head


@dataclass
class LoggerConfig:
    backend: str = "wandb"  # wandb | none
    mode: str = "offline"  # offline | online | disabled
    project: str = "repdyn"
    entity: str | None = None
    group: str | None = None  # default: the experiment name
    tags: list[str] = field(default_factory=list)


@dataclass
class TrainLoopConfig:
    total_frames: int = 100_000  # env steps (agent steps × frameskip is NOT used: the axis is agent-env steps)
    log_every: float = 0.001  # fraction of total_frames between log points (at most one per batch)
    checkpoint_every: float = 0.025
    progress: bool = True
    # torch intra-op threads; null: 1 for MLPs (op overhead, not arithmetic, bounds them), every CPU this process may
    # use for the Nature CNN (measured 1.6x faster with 2 threads than 1 on 2 cores); see repdyn.train.torch_threads
    threads: int | None = None
    collector: str = "lean"  # lean (plain-tensor rollout, repdyn.lean_collector) | torchrl (torchrl Collector)
    # A run dir holding an earlier run's output but no checkpoint to resume from is refused unless this is true, which
    # moves that output into <run dir>/previous_<time>/ first (a resumable checkpoint is always resumed instead).
    overwrite: bool = False


@dataclass
class DebugConfig:
    inject_nan_at_step: int | None = None  # test-only: poison the loss once env steps reach this value
    stop_after_batches: int | None = None  # test-only: checkpoint and stop like a preemption after this many batches


@dataclass
class RootConfig:
    name: str = "default"  # experiment name: W&B group and the sweep folder
    seed: int = 0
    device: str = "cpu"
    env: EnvConfig = MISSING
    agent: Any = MISSING
    model: ModelConfig = MISSING
    intervention: dict[str, Any] = field(default_factory=dict)
    metrics: MetricsConfig = MISSING
    logger: LoggerConfig = MISSING
    train: TrainLoopConfig = field(default_factory=TrainLoopConfig)
    debug: DebugConfig = field(default_factory=DebugConfig)


def register_configs() -> None:
    """Register the schemas; group options (``conf/<group>/*.yaml``) extend them through their defaults lists."""
    cs = ConfigStore.instance()
    cs.store(name="root_schema", node=RootConfig)
    cs.store(group="env", name="env_schema", node=EnvConfig)
    cs.store(group="agent", name="ppo_schema", node=PPOConfig)
    cs.store(group="agent", name="dqn_schema", node=DQNConfig)
    cs.store(group="model", name="model_schema", node=ModelConfig)
    cs.store(group="logger", name="logger_schema", node=LoggerConfig)
    cs.store(group="metrics", name="metrics_schema", node=MetricsConfig)


FAMILIES = ("classic", "mujoco", "atari")
ACTIVATIONS = ("tanh", "relu", "gelu", "elu")


def _check(ok: bool, key: str, msg: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {msg}")


def validate(cfg: DictConfig) -> None:
    """Check values and combinations that types cannot express; raise one :class:`ConfigError` naming the key."""
    from repdyn.interventions import validate_interventions  # local: interventions import agents

    env, agent, model, train = cfg.env, cfg.agent, cfg.model, cfg.train
    _check(env.family in FAMILIES, "env.family", f"must be one of {FAMILIES}, got {env.family!r}")
    _check(env.num_envs >= 1, "env.num_envs", f"must be ≥ 1, got {env.num_envs}")
    _check(env.frames_per_env >= 1, "env.frames_per_env", f"must be ≥ 1, got {env.frames_per_env}")
    _check(env.obs_norm_steps >= 1, "env.obs_norm_steps", f"must be ≥ 1, got {env.obs_norm_steps}")
    _check(train.total_frames > 0, "train.total_frames", f"must be > 0, got {train.total_frames}")
    for key in ("log_every", "checkpoint_every"):
        v = train[key]
        _check(0 < v <= 1, f"train.{key}", f"must be a fraction of the budget in (0, 1], got {v}")
    _check(train.threads is None or train.threads >= 1, "train.threads", f"must be ≥ 1 or null, got {train.threads}")
    _check(
        train.collector in ("lean", "torchrl"), "train.collector", f"must be lean or torchrl, got {train.collector!r}"
    )
    _check(cfg.seed >= 0, "seed", f"must be ≥ 0, got {cfg.seed}")
    _check(
        cfg.device == "cpu" or cfg.device.startswith("cuda"),
        "device",
        f"must be 'cpu' or 'cuda[:i]', got {cfg.device!r}",
    )
    _check(model.name in ("mlp", "cnn"), "model.name", f"must be 'mlp' or 'cnn', got {model.name!r}")
    _check(
        model.activation in ACTIVATIONS, "model.activation", f"must be one of {ACTIVATIONS}, got {model.activation!r}"
    )
    _check(len(model.hidden) >= 1 and all(h >= 1 for h in model.hidden), "model.hidden", "needs ≥ 1 positive width")
    _check(
        (model.name == "cnn") == (env.family == "atari"),
        "model",
        "use model=cnn with env=atari/* and model=mlp otherwise",
    )
    _check(
        cfg.logger.backend in ("wandb", "none"),
        "logger.backend",
        f"must be 'wandb' or 'none', got {cfg.logger.backend!r}",
    )
    _check(
        cfg.logger.mode in ("offline", "online", "disabled"),
        "logger.mode",
        f"must be one of ('offline', 'online', 'disabled'), got {cfg.logger.mode!r}",
    )
    if agent.name == "ppo":
        _check(agent.epochs >= 1, "agent.epochs", f"must be ≥ 1, got {agent.epochs}")
        batch = env.num_envs * env.frames_per_env
        _check(
            1 <= agent.minibatch_size <= batch,
            "agent.minibatch_size",
            f"must be in [1, batch size {batch}] (env.num_envs × env.frames_per_env), got {agent.minibatch_size}",
        )
        _check(agent.lr > 0, "agent.lr", f"must be > 0, got {agent.lr}")
        _check(0 < agent.clip_eps < 1, "agent.clip_eps", f"must be in (0, 1), got {agent.clip_eps}")
        _check(0 < agent.gamma <= 1, "agent.gamma", f"must be in (0, 1], got {agent.gamma}")
        _check(0 <= agent.gae_lambda <= 1, "agent.gae_lambda", f"must be in [0, 1], got {agent.gae_lambda}")
        _check(
            len(agent.betas) == 2 and all(0 <= b < 1 for b in agent.betas),
            "agent.betas",
            "must be two values in [0, 1)",
        )
        _check(agent.max_grad_norm > 0, "agent.max_grad_norm", f"must be > 0, got {agent.max_grad_norm}")
    if agent.name == "dqn":
        _validate_dqn(cfg)
    try:
        OmegaConf.to_object(cfg.metrics)  # MetricsConfig.__post_init__ validates its fields
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if env.family in ("classic", "mujoco"):
        from repdyn.envs.gym_vector import check_env_id

        try:
            check_env_id(env.id)
        except ValueError as e:
            raise ConfigError(str(e)) from None
    validate_interventions(cfg)


def _validate_dqn(cfg: DictConfig) -> None:
    agent = cfg.agent
    _check(cfg.env.family != "mujoco", "agent", "agent=dqn needs discrete actions; env=mujoco/* is continuous")
    _check(agent.lr > 0, "agent.lr", f"must be > 0, got {agent.lr}")
    _check(0 < agent.gamma <= 1, "agent.gamma", f"must be in (0, 1], got {agent.gamma}")
    _check(agent.minibatch_size >= 1, "agent.minibatch_size", f"must be ≥ 1, got {agent.minibatch_size}")
    _check(
        agent.buffer_size >= agent.minibatch_size,
        "agent.buffer_size",
        f"must be ≥ agent.minibatch_size ({agent.minibatch_size}), got {agent.buffer_size}",
    )
    _check(agent.learning_starts >= 0, "agent.learning_starts", f"must be ≥ 0, got {agent.learning_starts}")
    _check(agent.replay_ratio > 0, "agent.replay_ratio", f"must be > 0, got {agent.replay_ratio}")
    _check(
        agent.replay_next_obs in ("full", "last_frame"),
        "agent.replay_next_obs",
        f"must be 'full' or 'last_frame', got {agent.replay_next_obs!r}",
    )
    _check(
        agent.replay_next_obs == "full" or cfg.env.family == "atari",
        "agent.replay_next_obs",
        "'last_frame' needs frame-stacked observations (env=atari/*)",
    )
    _check(
        agent.replay_storage in ("memory", "memmap"),
        "agent.replay_storage",
        f"must be 'memory' or 'memmap', got {agent.replay_storage!r}",
    )
    _check(agent.loss in ("huber", "l2"), "agent.loss", f"must be 'huber' or 'l2', got {agent.loss!r}")
    _check(
        agent.target_update in ("hard", "soft"),
        "agent.target_update",
        f"must be 'hard' or 'soft', got {agent.target_update!r}",
    )
    _check(
        agent.target_update_interval >= 1,
        "agent.target_update_interval",
        f"must be ≥ 1 gradient step, got {agent.target_update_interval}",
    )
    _check(0 < agent.tau <= 1, "agent.tau", f"must be in (0, 1], got {agent.tau}")
    _check(
        0 <= agent.eps_end <= agent.eps_init <= 1,
        "agent.eps_init",
        f"need 0 ≤ eps_end ≤ eps_init ≤ 1, got eps_init={agent.eps_init}, eps_end={agent.eps_end}",
    )
    _check(agent.eps_frames >= 0, "agent.eps_frames", f"must be ≥ 0, got {agent.eps_frames}")
    _check(agent.max_grad_norm > 0, "agent.max_grad_norm", f"must be > 0, got {agent.max_grad_norm}")
    betas_ok = len(agent.betas) == 2 and all(0 <= b < 1 for b in agent.betas)
    _check(betas_ok, "agent.betas", "must be two values in [0, 1)")
    _check(
        cfg.metrics.ntk_q_reduction in ("max", "mean"),
        "metrics.ntk_q_reduction",
        f"must be 'max' or 'mean' for agent=dqn, got {cfg.metrics.ntk_q_reduction!r}",
    )


def to_container(cfg: DictConfig) -> dict[str, Any]:
    """Resolved plain-dict view of the config (for W&B and summaries)."""
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
