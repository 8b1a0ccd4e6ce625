"""Structured configs registered in Hydra's ConfigStore: types and defaults for every config group.

Hydra rejects unknown group options, typo'd keys and wrong types against these schemas; :func:`validate` then checks
what composition lets through (keys added with ``+``, interpolations, credentials) and values and combinations (ranges,
finiteness, allowed strings, env spaces, memory, intervention compatibility) before anything is built, raising one
:class:`ConfigError` that names the key and what is allowed. The CLI runs it before Hydra writes the run dir
(:mod:`repdyn.preflight`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from repdyn.agents.config import DQNConfig, PPOConfig
from repdyn.envs.config import EnvConfig
from repdyn.errors import ConfigError
from repdyn.loggers.config import LoggerConfig
from repdyn.metrics.config import MetricsConfig
from repdyn.models.config import ModelConfig


@dataclass
class TrainLoopConfig:
    total_frames: int = 100_000  # env steps (agent steps × frameskip is NOT used: the axis is agent-env steps)
    log_every: float = 0.001  # fraction of total_frames between log points (at most one per batch)
    checkpoint_every: float = 0.025
    progress: bool = True  # a tqdm bar, drawn only when stderr is a terminal (never in a Slurm or CI log)
    # torch intra-op threads; null: 1 for MLPs (op overhead, not arithmetic, bounds them), every CPU this process may
    # use for the Nature CNN (measured 1.6x faster with 2 threads than 1 on 2 cores); see repdyn.run_parts.torch_threads
    threads: int | None = None
    collector: str = "lean"  # lean (plain-tensor rollout, repdyn.lean_collector) | torchrl (torchrl Collector)
    # auto | on | off: the gradient step as one torch.compile'd function (repdyn.agents.compiled_step); auto: MLP runs
    # of >= 50k gradient steps, where the 20-60 s compilation repays itself. Numbers agree with off to float rounding.
    compile: str = "auto"
    # A run dir holding an earlier run's output but no checkpoint to resume from is refused unless this is true, which
    # moves that output into <run dir>/previous_<time>/ first (a resumable checkpoint is always resumed instead).
    overwrite: bool = False


@dataclass
class DebugConfig:
    inject_nan_at_step: int | None = None  # test-only: poison the loss once env steps reach this value
    stop_after_batches: int | None = None  # test-only: checkpoint and stop like a preemption after this many batches


@dataclass
class SweepConfig:
    # A multirun with invalid members is refused as a whole (exit 2, every bad member listed) unless this is true:
    # then the valid members run and each invalid one gets a run dir holding only a summary.json with
    # status "invalid" and the reason (and, with hydra/launcher=slurm|local, an INVALID entry in sweep_status.json).
    skip_invalid: bool = False


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
    sweep: SweepConfig = field(default_factory=SweepConfig)


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
ACTIVATIONS = ("tanh", "relu", "gelu", "elu", "crelu")  # crelu: MLP only
SEED_MAX = 2**32 - 1  # numpy's seed range (np.random.seed)
ALE_SEED_MAX = 2**31 - 1  # ale-py seeds sub-env i with seed + i as a C int
_SEED_MARGIN = 10_000  # derived seeds: seed + env index, seed + 7919 (capacity target), seed + env steps (ALE resume)
_SCHEMAS = {
    "": RootConfig,
    "env": EnvConfig,
    "model": ModelConfig,
    "logger": LoggerConfig,
    "metrics": MetricsConfig,
    "train": TrainLoopConfig,
    "debug": DebugConfig,
    "sweep": SweepConfig,
}
_AGENT_SCHEMAS = {"ppo": PPOConfig, "dqn": DQNConfig}
# make_atari_env arguments that env.atari cannot set (flavour: a game mode/difficulty, for held-out evaluation only)
_NOT_ATARI_KWARGS = ("env_id", "num_envs", "seed", "device", "flavour")
_NET_BYTES_PER_PARAM = 20  # lower bound per MLP parameter: weights + gradient + Adam's two moments (+ target copy)
_SECRET_HINT = (
    "repdyn never reads credentials from the config (they would be written to the run dir and W&B); set the "
    "WANDB_API_KEY environment variable or run `wandb login`"
)


def _check(ok: bool, key: str, msg: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {msg}")


def batch_frames(cfg: DictConfig) -> int:
    """Env steps per collected batch: env.num_envs × env.frames_per_env."""
    return int(cfg.env.num_envs) * int(cfg.env.frames_per_env)


def budget(cfg: DictConfig) -> int:
    """The env steps a run really trains: ``train.total_frames`` rounded up to whole batches."""
    batch = batch_frames(cfg)
    return -(-int(cfg.train.total_frames) // batch) * batch


def round_budget(cfg: DictConfig) -> str | None:
    """Set ``train.total_frames`` to :func:`budget` (whole batches); the warning to show when it changed, else None."""
    total, real = int(cfg.train.total_frames), budget(cfg)
    if real == total:
        return None
    cfg.train.total_frames = real
    return (
        f"train.total_frames={total} is not a multiple of the batch ({batch_frames(cfg)} env steps = env.num_envs × "
        f"env.frames_per_env): the run trains {real} env steps"
    )


def _check_model_options(model: Any) -> None:
    """``model.norm`` and CReLU exist for the MLP only; CReLU doubles each layer's units, so widths must be even."""
    _check(model.norm in ("none", "layer"), "model.norm", f"must be 'none' or 'layer', got {model.norm!r}")
    _check(model.norm == "none" or model.name == "mlp", "model.norm", "norm=layer is supported for model=mlp only")
    if model.activation == "crelu":
        _check(model.name == "mlp", "model.activation", "crelu is supported for model=mlp only")
        _check(all(h % 2 == 0 for h in model.hidden), "model.hidden", f"crelu needs even widths, got {model.hidden}")


def validate(cfg: DictConfig, overrides: Sequence[str] = ()) -> None:
    """Check values and combinations that types cannot express; raise one :class:`ConfigError` naming the key.

    ``overrides`` are the command line's (Hydra's ``overrides.task``): checked for credentials, for ``+`` additions
    under ``intervention.`` and for an intervention listed twice, which the composed config no longer shows.
    """
    from repdyn.interventions import validate_interventions  # local: interventions import agents

    _check_overrides(overrides)
    plain = _resolved(cfg)
    _check_no_credentials(plain)
    _check_schema(plain)
    _check_finite(plain)
    _check_env_section(cfg.env)
    _check_train_section(cfg.train)
    _check(0 <= cfg.seed <= SEED_MAX, "seed", f"must be in [0, {SEED_MAX}] (numpy's seed range), got {cfg.seed}")
    _check_name(cfg.name)
    _check_device(cfg.device)
    _check_model_section(cfg.model, cfg.env.family)
    _check_logger_and_debug(cfg.logger, cfg.debug)
    if cfg.agent.name == "ppo":
        _validate_ppo(cfg)
    if cfg.agent.name == "dqn":
        _validate_dqn(cfg)
    try:
        OmegaConf.to_object(cfg.metrics)  # MetricsConfig.__post_init__ validates its fields
    except ValueError as e:
        raise ConfigError(str(e).replace(" must", ": must", 1)) from None
    _check_scheduled_metrics(cfg)
    _check_env(cfg)
    _check_network_memory(cfg)
    validate_interventions(cfg)


def _check_env_section(env: DictConfig) -> None:
    _check(env.family in FAMILIES, "env.family", f"must be one of {FAMILIES}, got {env.family!r}")
    for key in ("num_envs", "frames_per_env", "obs_norm_steps", "capacity_samples", "capacity_num_envs"):
        _check(env[key] >= 1, f"env.{key}", f"must be ≥ 1, got {env[key]}")
    _check(env.capacity_epochs >= 1, "env.capacity_epochs", f"must be ≥ 1, got {env.capacity_epochs}")
    _check(
        env.max_episode_steps is None or env.max_episode_steps >= 1,
        "env.max_episode_steps",
        f"must be ≥ 1 or null (the env's own limit), got {env.max_episode_steps}",
    )


def _check_train_section(train: DictConfig) -> None:
    _check(train.total_frames > 0, "train.total_frames", f"must be > 0, got {train.total_frames}")
    for key in ("log_every", "checkpoint_every"):
        v = train[key]
        _check(0 < v <= 1, f"train.{key}", f"must be a fraction of the budget in (0, 1], got {v}")
    _check(train.threads is None or train.threads >= 1, "train.threads", f"must be ≥ 1 or null, got {train.threads}")
    _check(
        train.collector in ("lean", "torchrl"), "train.collector", f"must be lean or torchrl, got {train.collector!r}"
    )
    _check(train.compile in ("auto", "on", "off"), "train.compile", f"must be auto, on or off, got {train.compile!r}")


def _check_model_section(model: DictConfig, env_family: str) -> None:
    _check(model.name in ("mlp", "cnn"), "model.name", f"must be 'mlp' or 'cnn', got {model.name!r}")
    _check(
        model.activation in ACTIVATIONS, "model.activation", f"must be one of {ACTIVATIONS}, got {model.activation!r}"
    )
    _check(len(model.hidden) >= 1 and all(h >= 1 for h in model.hidden), "model.hidden", "needs ≥ 1 positive width")
    _check(model.min_scale > 0, "model.min_scale", f"must be > 0, got {model.min_scale}")
    _check_model_options(model)
    _check(
        (model.name == "cnn") == (env_family == "atari"),
        "model",
        "use model=cnn with env=atari/* and model=mlp otherwise",
    )


def _check_logger_and_debug(logger: DictConfig, debug: DictConfig) -> None:
    _check(logger.backend in ("wandb", "none"), "logger.backend", f"must be 'wandb' or 'none', got {logger.backend!r}")
    _check(
        logger.mode in ("offline", "online", "disabled"),
        "logger.mode",
        f"must be one of ('offline', 'online', 'disabled'), got {logger.mode!r}",
    )
    for key in ("inject_nan_at_step", "stop_after_batches"):
        v = debug[key]
        _check(v is None or v >= 0, f"debug.{key}", f"must be ≥ 0 or null, got {v}")


def _check_scheduled_metrics(cfg: DictConfig) -> None:
    """``metrics.scheduled`` names registered metrics without a switch of their own: a typo would measure nothing."""
    from repdyn.metrics.registry import REGISTRY

    names = sorted(n for n, s in REGISTRY.items() if s.switch is None)
    for name in cfg.metrics.scheduled:
        spec = REGISTRY.get(name)
        if spec is not None and spec.switch is not None:
            raise ConfigError(f"metrics.scheduled.{name}: {name} is switched by {spec.config_key}")
        _check(spec is not None, f"metrics.scheduled.{name}", f"no such scheduled metric; registered: {names}")


def _validate_ppo(cfg: DictConfig) -> None:
    agent = cfg.agent
    _check(agent.epochs >= 1, "agent.epochs", f"must be ≥ 1, got {agent.epochs}")
    batch = batch_frames(cfg)
    _check(
        1 <= agent.minibatch_size <= batch,
        "agent.minibatch_size",
        f"must be in [1, batch size {batch}] (env.num_envs × env.frames_per_env), got {agent.minibatch_size}",
    )
    _check(agent.lr > 0, "agent.lr", f"must be > 0, got {agent.lr}")
    _check(agent.adam_eps > 0, "agent.adam_eps", f"must be > 0, got {agent.adam_eps}")
    _check(0 < agent.clip_eps < 1, "agent.clip_eps", f"must be in (0, 1), got {agent.clip_eps}")
    _check(0 < agent.gamma <= 1, "agent.gamma", f"must be in (0, 1], got {agent.gamma}")
    _check(0 <= agent.gae_lambda <= 1, "agent.gae_lambda", f"must be in [0, 1], got {agent.gae_lambda}")
    for key in ("entropy_coef", "value_coef"):
        _check(agent[key] >= 0, f"agent.{key}", f"must be ≥ 0, got {agent[key]}")
    _check(
        len(agent.betas) == 2 and all(0 <= b < 1 for b in agent.betas),
        "agent.betas",
        "must be two values in [0, 1)",
    )
    _check(agent.max_grad_norm > 0, "agent.max_grad_norm", f"must be > 0, got {agent.max_grad_norm}")


def _check_overrides(overrides: Sequence[str]) -> None:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from repdyn.loggers.secrets import is_secret_key, secret_in

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except Exception:  # Hydra reports unparsable overrides itself, before any task code runs
        return
    for o in parsed:
        key = o.key_or_group
        _check(not is_secret_key(key.rsplit(".", 1)[-1]), key, f"looks like a credential; {_SECRET_HINT}")
        env_var = secret_in(o.input_line)
        _check(
            env_var is None,
            key,
            f"the override holds the value of ${env_var}: a secret on the command line ends up in the shell history, "
            f"Hydra's overrides.yaml and W&B; {_SECRET_HINT}",
        )
        _check(
            not (key.startswith("intervention.") and (o.is_add() or o.is_force_add())),
            key,
            "interventions are selected with intervention=[name,...] and their fields set without '+' "
            "(e.g. intervention=[pfo] intervention.pfo.coef=1)",
        )
        if key == "intervention" and o.package is None and not o.is_sweep_override():
            names = o.value()
            names = [names] if isinstance(names, str) else list(names or [])
            twice = sorted({n for n in names if names.count(n) > 1})
            _check(not twice, "intervention", f"{', '.join(map(str, twice))} listed more than once")


def _resolved(cfg: DictConfig) -> dict[str, Any]:
    """The config as plain resolved containers; every value must be set (no ``???``) and every interpolation must
    resolve, else a ConfigError naming the key."""
    from omegaconf.errors import OmegaConfBaseException

    try:
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)  # type: ignore[return-value]
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or "config"
        raise ConfigError(f"{key}: {str(e).splitlines()[0]}") from None


def _walk(obj: Any, prefix: str = "") -> Iterator[tuple[str, Any, Any]]:
    """(dotted path, key, value) of every entry of nested dicts and lists."""
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for k, v in items:
        path = f"{prefix}{k}" if isinstance(obj, dict) else f"{prefix[:-1]}[{k}]"
        yield path, k, v
        yield from _walk(v, path + ".")


def _check_no_credentials(plain: dict[str, Any]) -> None:
    from repdyn.loggers.secrets import is_secret_key

    for path, key, _ in _walk(plain):
        _check(not (isinstance(key, str) and is_secret_key(key)), path, f"looks like a credential; {_SECRET_HINT}")


def _check_schema(plain: dict[str, Any]) -> None:
    """The resolved config matches the schemas: every key known, none missing, every value of its type. Composition
    cannot see it all: ``+key=`` adds keys (a typo or an unknown setting), ``~key`` deletes them, and an interpolation
    is only type-checked when it is a scalar (``model.hidden=${seed}`` composes)."""
    import dataclasses
    import typing

    agent = plain.get("agent")
    agent_name = agent.get("name") if isinstance(agent, dict) else None
    _check(agent_name in _AGENT_SCHEMAS, "agent.name", f"must be one of {sorted(_AGENT_SCHEMAS)}, got {agent_name!r}")
    for path, schema in {**_SCHEMAS, "agent": _AGENT_SCHEMAS[agent_name]}.items():
        node = plain.get(path) if path else plain
        _check(isinstance(node, dict), path or "config", f"must be a mapping of {schema.__name__}, got {node!r}")
        hints = typing.get_type_hints(schema)
        for key in node:
            _check(
                key in hints,
                f"{path}.{key}" if path else str(key),
                f"unknown key in {path or 'the config root'} (keys added with '+' must exist in {schema.__name__}); "
                "`python -m repdyn.train --cfg job` lists every setting",
            )
        for f in dataclasses.fields(schema):
            full = f"{path}.{f.name}" if path else f.name
            _check(f.name in node, full, "missing (deleted with '~'?); every setting needs a value")
            tp = hints[f.name]
            if not (dataclasses.is_dataclass(tp) or tp is Any):
                _check(_type_ok(node[f.name], tp), full, f"must be {_type_name(tp)}, got {node[f.name]!r}")
    atari = plain["env"]["atari"]
    allowed = _atari_kwargs() if atari else {}
    for key, value in atari.items():
        _check(key in allowed, f"env.atari.{key}", f"unknown; make_atari_env takes {sorted(allowed)}")
        want = type(allowed[key])
        _check(_type_ok(value, want), f"env.atari.{key}", f"must be {_type_name(want)}, got {value!r}")


def _type_ok(value: Any, tp: Any) -> bool:
    """``value`` (resolved, plain) is of the annotation ``tp``: int/float/bool/str, ``X | None``, ``list[X]``,
    ``dict[...]`` (bool is not an int here, and an int is a float)."""
    import types
    import typing

    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in args)
    if tp is type(None):
        return value is None
    if origin is list:
        return isinstance(value, list) and all(_type_ok(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    if tp is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


def _type_name(tp: Any) -> str:
    return tp.__name__ if isinstance(tp, type) else str(tp)


def _atari_kwargs() -> dict[str, Any]:
    """The keyword arguments of :func:`repdyn.envs.atari.make_atari_env` that ``env.atari`` sets, with defaults."""
    import inspect

    from repdyn.envs.atari import make_atari_env

    params = inspect.signature(make_atari_env).parameters.values()
    return {p.name: p.default for p in params if p.name not in _NOT_ATARI_KWARGS}


def _check_finite(plain: dict[str, Any]) -> None:
    for path, _, v in _walk(plain):
        _check(not (isinstance(v, float) and not math.isfinite(v)), path, f"must be a finite number, got {v}")


def _check_name(name: str) -> None:
    parts = PurePosixPath(name).parts
    _check(
        bool(name.strip()) and not name.startswith(("/", "~")) and ".." not in parts and "\\" not in name,
        "name",
        f"must be a relative path inside outputs/ and multirun/ (no '..', no leading '/'), got {name!r}",
    )


def _check_device(device: str) -> None:
    import re

    import torch

    m = re.fullmatch(r"cuda(?::(\d+))?", device)
    _check(device == "cpu" or m is not None, "device", f"must be 'cpu' or 'cuda[:i]', got {device!r}")
    if m is not None:
        _check(torch.cuda.is_available(), "device", f"{device!r} but CUDA is not available on this machine; use cpu")
        n = torch.cuda.device_count()
        _check(int(m.group(1) or 0) < n, "device", f"{device!r} but this machine has {n} CUDA device(s)")


@functools.lru_cache(maxsize=64)
def _gym_spaces(env_id: str) -> tuple[Any, Any]:
    import gymnasium as gym

    env = gym.make(env_id)
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


def _check_env(cfg: DictConfig) -> None:
    """The env id exists and its spaces fit the agent (vector observations, discrete actions for DQN)."""
    env = cfg.env
    if env.family == "atari":
        from repdyn.envs.atari import ale_vector_env_kwargs

        kwargs = {k: v for k, v in env.atari.items() if k not in ("reward_sign", "terminal_on_life_loss")}
        try:
            ale_vector_env_kwargs(env.id, env.num_envs, **kwargs)
        except ValueError as e:  # "env_id ...: unknown ALE game" or "<kwarg> must be ..."
            name = str(e).split()[0]
            key = "env.id" if name == "env_id" else f"env.atari.{name}" if name in env.atari else "env.atari"
            raise ConfigError(f"{key}: {e}") from None
        limit = ALE_SEED_MAX - int(cfg.train.total_frames) - _SEED_MARGIN
        _check(
            cfg.seed <= limit,
            "seed",
            f"must be ≤ {max(limit, 0)} with env=atari/* (ale-py seeds are 32-bit C ints; repdyn derives seeds up to "
            f"seed + train.total_frames + {_SEED_MARGIN}), got {cfg.seed}",
        )
        return
    import gymnasium as gym

    from repdyn.envs.gym_vector import check_env_id

    try:
        check_env_id(env.id)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    try:
        obs_space, act_space = _gym_spaces(env.id)
    except Exception as e:  # missing extras (box2d, mujoco), bad kwargs: anything gymnasium raises when making it
        first = (str(e).strip().splitlines() or [""])[0]
        raise ConfigError(f"env.id: cannot make {env.id!r}: {type(e).__name__}: {first}") from None
    _check(
        isinstance(obs_space, gym.spaces.Box) and len(obs_space.shape) == 1,
        "env.id",
        f"{env.id} has observations {obs_space}; env=classic/* and mujoco/* need a flat Box (a vector)",
    )
    _check(
        isinstance(act_space, gym.spaces.Discrete | gym.spaces.Box),
        "env.id",
        f"{env.id} has actions {act_space}; supported: Discrete or Box",
    )
    _check(
        cfg.agent.name != "dqn" or isinstance(act_space, gym.spaces.Discrete),
        "agent",
        f"agent=dqn needs discrete actions; {env.id} has {act_space}",
    )


def _check_network_memory(cfg: DictConfig) -> None:
    """A lower bound of the networks' training memory (MLP weights, gradients, Adam moments) against the RAM left."""
    if cfg.model.name != "mlp":
        return
    from repdyn.agents.replay_memory import available_ram_bytes

    widths = [int(h) for h in cfg.model.hidden]
    params = sum(a * b + b for a, b in zip(widths, widths[1:], strict=False)) + 2 * widths[0] + widths[-1] + 1
    need, ram = _NET_BYTES_PER_PARAM * params, available_ram_bytes()
    _check(
        ram is None or need <= ram,
        "model.hidden",
        f"{list(widths)} needs ≥ {need / 1e9:.1f} GB of RAM for the networks (≥ {params:.3g} parameters, "
        f"{_NET_BYTES_PER_PARAM} bytes each with gradients and Adam state) but {(ram or 0) / 1e9:.1f} GB is "
        "available; use smaller widths",
    )


def _check_replay_layout(agent: DictConfig, env_family: str) -> None:
    _check(
        agent.replay_next_obs in ("full", "last_frame"),
        "agent.replay_next_obs",
        f"must be 'full' or 'last_frame', got {agent.replay_next_obs!r}",
    )
    _check(
        agent.replay_next_obs == "full" or env_family == "atari",
        "agent.replay_next_obs",
        "'last_frame' needs frame-stacked observations (env=atari/*)",
    )
    _check(
        agent.replay_storage in ("memory", "memmap"),
        "agent.replay_storage",
        f"must be 'memory' or 'memmap', got {agent.replay_storage!r}",
    )


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
    _check(agent.adam_eps > 0, "agent.adam_eps", f"must be > 0, got {agent.adam_eps}")
    _check(agent.learning_starts >= 0, "agent.learning_starts", f"must be ≥ 0, got {agent.learning_starts}")
    _check(agent.replay_ratio > 0, "agent.replay_ratio", f"must be > 0, got {agent.replay_ratio}")
    _check_replay_layout(agent, cfg.env.family)
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
    _check(
        agent.learning_starts < budget(cfg),
        "agent.learning_starts",
        f"must be below the budget ({budget(cfg)} env steps, train.total_frames in whole batches) or no gradient "
        f"step is ever taken, got {agent.learning_starts}",
    )


def to_container(cfg: DictConfig) -> dict[str, Any]:
    """Resolved plain-dict view of the config (for W&B and summaries)."""
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
