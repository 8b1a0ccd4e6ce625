"""Schema of ``python -m repdyn.distill`` (``conf/distill.yaml``) and its checks before anything is built.

Hydra rejects typo'd keys and wrong types against :class:`DistillRootConfig`; :func:`validate_distill` checks values,
the teacher run dir and the (objective, teacher agent) pair, raising one :class:`ConfigError` naming the key
(exit 2 before any compute or file is written). docs/distillation.md describes every option.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from repdyn.errors import ConfigError
from repdyn.loggers.config import LoggerConfig
from repdyn.models.config import ModelConfig
from repdyn.paths import CHECKPOINT_DIR, CONFIG_FILE

# Objectives and the teacher agent each needs: value objectives regress on a Q-network, policy objectives on a policy.
Q_OBJECTIVES = ("q_regression", "qa_regression", "adv_regression", "double_q")
OBJECTIVE_TEACHERS = {
    **{name: ("dqn",) for name in Q_OBJECTIVES},
    "behaviour_cloning": ("dqn", "ppo"),
    "policy_kl": ("ppo",),
}


@dataclass
class DistillLoopConfig:
    steps: int = 5000  # student gradient steps (the history's step axis)
    minibatch_size: int = 128
    lr: float = 1.0e-3
    max_grad_norm: float = 10.0
    entropy_coef: float = 1.0e-2  # λ of behaviour_cloning (eq. 23) and policy_kl (eq. 24)
    target_update_interval: int = 250  # double_q: gradient steps between target-network copies
    collect_frames: int = 10_000  # teacher transitions collected before the first gradient step
    buffer_size: int = 50_000
    teacher_eps: float = 0.01  # ε of the teacher's ε-greedy data policy (a PPO teacher samples, then ε-uniform)
    online: bool = False  # true: the teacher keeps collecting during distillation
    online_frames: int = 4  # env steps the teacher collects per online batch (every online_every gradient steps)
    online_every: int = 4
    log_every: float = 0.05  # fraction of steps between records (and at the end)
    eval_every: float = 0.25  # fraction of steps between student returns / probes (and at step 0 and the end)
    checkpoint_every: float = 0.25
    eval_episodes: int = 4
    eval_eps: float = 0.01  # ε of Q students and teachers when evaluated (Lyle et al. 2022b §6); policies sample
    eval_max_steps: int = 500  # per evaluation episode
    progress: bool = True
    overwrite: bool = False  # as train.overwrite: move an earlier run's output aside instead of refusing the dir
    threads: int = 1


@dataclass
class ProbeConfig:
    states: int = 256  # fixed batch of teacher states for both probes and the rank metrics
    noise_scales: list[float] = field(default_factory=lambda: [0.0, 0.01, 0.05, 0.1, 0.5])
    interp_t: list[float] = field(default_factory=lambda: [0.25, 0.5, 0.75])
    rank_delta: float = 0.01
    update_rank: bool = True
    update_rank_k: int = 64
    update_rank_probe: int = 64


@dataclass
class DistillEnvConfig:
    # held-out variations (Lyle et al. 2022b §6.2): name -> {attribute: value} of the classic-control env's unwrapped
    # simulator (CartPole length/masspole, Acrobot LINK_MASS_1/LINK_MASS_2 ...) or, for an ALE teacher,
    # {mode: int, difficulty: int} (either optional) among the game's available ones (repdyn.distill.variations)
    variations: dict[str, Any] = field(default_factory=dict)
    num_envs: int = 1  # teacher data collection envs


@dataclass
class DistillDebugConfig:
    stop_after_steps: int | None = None  # test-only: checkpoint and stop like a preemption after this many steps


@dataclass
class DistillRootConfig:
    name: str = "distill"
    seed: int = 0
    device: str = "cpu"
    teacher: str = MISSING  # a repdyn run dir (config.yaml + checkpoints/last.pt)
    objective: str = "q_regression"
    model: ModelConfig | None = None  # null: the teacher's architecture
    logger: LoggerConfig = MISSING
    distill: DistillLoopConfig = field(default_factory=DistillLoopConfig)
    probes: ProbeConfig = field(default_factory=ProbeConfig)
    env: DistillEnvConfig = field(default_factory=DistillEnvConfig)
    debug: DistillDebugConfig = field(default_factory=DistillDebugConfig)


def register_distill_configs() -> None:
    from repdyn.config import register_configs

    register_configs()  # the shared groups (logger, model) and their schemas
    ConfigStore.instance().store(name="distill_schema", node=DistillRootConfig)


def _check(ok: bool, key: str, msg: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {msg}")


def load_teacher_config(teacher: str) -> DictConfig:
    """The teacher run's resolved ``config.yaml``; ConfigError naming ``teacher`` if the dir is not a finished-enough
    repdyn run (no config or no ``checkpoints/last.pt``)."""
    path = Path(teacher)
    _check(path.is_dir(), "teacher", f"{teacher!r} is not a directory (give a repdyn run dir)")
    _check((path / CONFIG_FILE).is_file(), "teacher", f"{path / CONFIG_FILE} is missing: not a repdyn run dir")
    last = path / CHECKPOINT_DIR / "last.pt"
    _check(last.is_file(), "teacher", f"{last} is missing: the teacher run has no checkpoint")
    return OmegaConf.load(path / CONFIG_FILE)


def _check_loop(d: DictConfig) -> None:
    for key in ("steps", "minibatch_size", "collect_frames", "buffer_size", "eval_episodes", "eval_max_steps"):
        _check(int(d[key]) > 0, f"distill.{key}", f"must be > 0, got {d[key]}")
    _check(d.minibatch_size <= d.collect_frames, "distill.minibatch_size", "must be <= distill.collect_frames")
    _check(d.collect_frames <= d.buffer_size, "distill.collect_frames", "must be <= distill.buffer_size")
    _check(d.lr > 0, "distill.lr", f"must be > 0, got {d.lr}")
    _check(d.entropy_coef >= 0, "distill.entropy_coef", f"must be >= 0, got {d.entropy_coef}")
    for key in ("teacher_eps", "eval_eps"):
        _check(0.0 <= d[key] <= 1.0, f"distill.{key}", f"must be in [0, 1], got {d[key]}")
    for key in ("log_every", "eval_every", "checkpoint_every"):
        _check(0.0 < d[key] <= 1.0, f"distill.{key}", f"must be in (0, 1], got {d[key]}")
    for key in ("online_frames", "online_every", "target_update_interval", "threads"):
        _check(int(d[key]) > 0, f"distill.{key}", f"must be > 0, got {d[key]}")


def _check_probes(p: DictConfig) -> None:
    _check(p.states >= 2, "probes.states", f"must be >= 2 (pairs for the interpolation probe), got {p.states}")
    _check(all(s >= 0 for s in p.noise_scales), "probes.noise_scales", "must be >= 0")
    _check(all(0 < t < 1 for t in p.interp_t), "probes.interp_t", "must be in (0, 1)")
    _check(p.update_rank_k > 0 and p.update_rank_probe > 0, "probes.update_rank_k", "k and probe must be > 0")


def validate_distill(cfg: DictConfig) -> DictConfig:
    """Check ``cfg`` and the teacher it names; returns the teacher's run config. Raises ConfigError naming the key."""
    from repdyn.distill.variations import check_variations

    _check(
        cfg.objective in OBJECTIVE_TEACHERS,
        "objective",
        f"unknown {cfg.objective!r}; one of {list(OBJECTIVE_TEACHERS)}",
    )
    teacher = load_teacher_config(str(cfg.teacher))
    agent = str(teacher.agent.name)
    allowed = OBJECTIVE_TEACHERS[cfg.objective]
    _check(
        agent in allowed,
        "objective",
        f"{cfg.objective} needs a {' or '.join(allowed)} teacher; {cfg.teacher} is a {agent} run",
    )
    _check(int(cfg.seed) >= 0, "seed", f"must be >= 0, got {cfg.seed}")
    _check_loop(cfg.distill)
    _check_probes(cfg.probes)
    _check(cfg.env.num_envs > 0, "env.num_envs", f"must be > 0, got {cfg.env.num_envs}")
    if cfg.model is not None:  # the student sees the teacher's observations: vectors (MLP) or frames (CNN)
        want = str(teacher.model.name)
        _check(cfg.model.name == want, "model", f"the teacher's observations need model={want}, got {cfg.model.name}")
    _check(cfg.logger.backend in ("wandb", "none"), "logger.backend", f"wandb or none, got {cfg.logger.backend!r}")
    _check(cfg.logger.mode in ("offline", "online", "disabled"), "logger.mode", f"got {cfg.logger.mode!r}")
    stop = cfg.debug.stop_after_steps
    _check(stop is None or stop >= 0, "debug.stop_after_steps", f"must be >= 0 or null, got {stop}")
    check_variations(teacher.env, OmegaConf.to_container(cfg.env.variations))
    return teacher
