"""Interventions: small modules attached to named hook points, composed as a list (``intervention=[pfo,adam_reset]``).

Adding one = one module here (a subclass of :class:`Intervention` decorated with :func:`register`) + one yaml in
``conf/intervention/<name>.yaml`` whose content is ``<name>: {<fields of its config dataclass>}``. Hook points
(docs/interventions.md#hook-points): ``on_agent_built`` (adam_beta2, shared_trunk, infer, icm, ntk_eviction, aux_*,
l2_init, plasticity_injection), ``on_batch_collected`` (reward_mask, icm, adam_reset, the periodic re-initialisations),
``extra_loss`` (pfo, infer, aux_*, l2_init), ``after_batch_update`` (lr_anneal, redo, shrink_perturb, reset_layers,
plasticity_injection).
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from omegaconf import DictConfig, OmegaConf

_REGISTRY: dict[str, type[Intervention]] = {}


def register(cls: type[Intervention]) -> type[Intervention]:
    """Class decorator adding an intervention to the registry under ``cls.name``."""
    _REGISTRY[cls.name] = cls
    return cls


@dataclasses.dataclass(frozen=True)
class RunFacts:
    """What an intervention may know of the run beyond its own config section: the explicit values interventions
    use (their seeds, compatibility checks, networks they build like the agent's), not the whole run config."""

    seed: int
    agent: str  # agent.name: ppo | dqn
    gamma: float  # the agent's discount
    minibatch_size: int  # the agent's minibatch
    env_family: str  # classic | mujoco | atari
    model: Any  # the model section (name, hidden, activation, norm, ...)
    interventions: tuple[str, ...] = ()  # every active intervention, in config order

    @classmethod
    def of(cls, cfg: DictConfig) -> RunFacts:
        """The facts of a composed run config."""
        return cls(
            seed=int(cfg.seed),
            agent=str(cfg.agent.name),
            gamma=float(cfg.agent.gamma),
            minibatch_size=int(cfg.agent.minibatch_size),
            env_family=str(cfg.env.family),
            model=cfg.model,
            interventions=tuple(cfg.intervention or {}),
        )


class Intervention:
    """Base class: override the hooks you need. ``Config`` is a dataclass of the yaml fields; ``run`` the
    :class:`RunFacts` it may read."""

    name: ClassVar[str]
    agents: ClassVar[tuple[str, ...]] = ("ppo", "dqn")  # agents this intervention supports

    @dataclasses.dataclass
    class Config:
        pass

    def __init__(self, cfg: Any, run: RunFacts) -> None:
        self.cfg, self.run = cfg, run

    def on_agent_built(self, agent: Any) -> None:
        """After networks and optimizers exist, before any collection."""

    def on_batch_collected(self, batch: Any, agent: Any) -> dict[str, float]:
        """Modify the collected batch in place (rewards) before advantages/targets; return scalars to log."""
        return {}

    def extra_loss(self, minibatch: Any, outputs: Mapping[str, tuple[torch.Tensor, ...]]) -> dict[str, torch.Tensor]:
        """Extra loss terms (already scaled by their coefficient) for this minibatch, keyed by log name."""
        return {}

    def after_batch_update(self, agent: Any, progress: float) -> None:
        """After the optimisation phase of a batch; ``progress`` is env steps / budget in [0, 1]."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def _load_all() -> dict[str, type[Intervention]]:
    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")
    return _REGISTRY


def available() -> list[str]:
    return sorted(_load_all())


def _typed_config(name: str, raw: Any) -> Any:
    cls = _load_all()[name]
    schema = OmegaConf.structured(cls.Config)
    try:
        merged = OmegaConf.merge(schema, raw if raw is not None else {})
    except Exception as e:  # omegaconf raises several error types; report them as one config error
        from repdyn.errors import ConfigError

        raise ConfigError(f"intervention.{name}: {e}".splitlines()[0]) from None
    return OmegaConf.to_object(merged)


def validate_interventions(cfg: DictConfig) -> None:
    """Unknown names, unsupported agents and bad fields fail here, before any compute."""
    from repdyn.errors import ConfigError

    registry = _load_all()
    for name, raw in (cfg.intervention or {}).items():
        if name not in registry:
            raise ConfigError(f"intervention: unknown intervention {name!r}; available: {sorted(registry)}")
        cls = registry[name]
        if cfg.agent.name not in cls.agents:
            raise ConfigError(
                f"intervention.{name}: not compatible with agent={cfg.agent.name} (supported: {list(cls.agents)})"
            )
        typed = _typed_config(name, raw)
        check = getattr(cls, "check", None)
        if check is not None:
            msg = check(typed, RunFacts.of(cfg))
            if msg:
                raise ConfigError(f"intervention.{name}: {msg}")


class Hooks:
    """The active interventions, called in config order at each hook point."""

    def __init__(self, items: list[Intervention]) -> None:
        self.items = items

    @classmethod
    def from_config(cls, cfg: DictConfig) -> Hooks:
        run = RunFacts.of(cfg)
        return cls([_load_all()[n](_typed_config(n, raw), run) for n, raw in (cfg.intervention or {}).items()])

    def names(self) -> list[str]:
        return [i.name for i in self.items]

    @property
    def adds_loss(self) -> bool:
        """Whether any intervention contributes an extra loss term (agents build the minibatch view it reads only
        then)."""
        return any(type(i).extra_loss is not Intervention.extra_loss for i in self.items)

    def on_agent_built(self, agent: Any) -> None:
        for i in self.items:
            i.on_agent_built(agent)

    def on_batch_collected(self, batch: Any, agent: Any) -> dict[str, float]:
        out: dict[str, float] = {}
        for i in self.items:
            out.update(i.on_batch_collected(batch, agent))
        return out

    def extra_loss(self, minibatch: Any, outputs: Mapping[str, tuple[torch.Tensor, ...]]) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for i in self.items:
            out.update(i.extra_loss(minibatch, outputs))
        return out

    def after_batch_update(self, agent: Any, progress: float) -> None:
        for i in self.items:
            i.after_batch_update(agent, progress)

    def state_dict(self) -> dict[str, Any]:
        return {i.name: i.state_dict() for i in self.items}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for i in self.items:
            i.load_state_dict(state.get(i.name, {}))
