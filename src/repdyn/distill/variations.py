"""Held-out environment variations for the generalization tests of Lyle et al. 2022b §6.2 ("Learning Dynamics and
Generalization in Reinforcement Learning", ICML, arXiv:2206.02126): the same task with changed physics.

``env.variations`` maps a name to the simulator attributes it sets on every sub-env's unwrapped classic-control env,
e.g. ``{long_pole: {length: 1.0}, heavy_links: {LINK_MASS_1: 1.5, LINK_MASS_2: 1.5}}``. CartPole caches two derived
quantities (``total_mass``, ``polemass_length``) at construction; they are recomputed so that a changed ``length``,
``masspole`` or ``masscart`` really changes the dynamics. ALE ``mode``/``difficulty`` variations are not wired yet
(the ALE vector env takes no such argument): they are refused with a ConfigError.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym

from repdyn.errors import ConfigError


def check_variations(env_cfg: Any, variations: Mapping[str, Any]) -> None:
    """Every variation names attributes the teacher's env has, with numeric values; ConfigError naming the key."""
    if not variations:
        return
    if env_cfg.family != "classic":
        raise ConfigError(
            f"env.variations: only classic-control envs can be varied here, the teacher's env is {env_cfg.family} "
            f"({env_cfg.id})"
        )
    raw = gym.make(env_cfg.id).unwrapped
    for name, attrs in variations.items():
        if not isinstance(attrs, Mapping) or not attrs:
            raise ConfigError(f"env.variations.{name}: must map attribute names to numbers, got {attrs!r}")
        for attr, value in attrs.items():
            if not hasattr(raw, attr):
                raise ConfigError(f"env.variations.{name}.{attr}: {env_cfg.id} has no attribute {attr!r}")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"env.variations.{name}.{attr}: must be a number, got {value!r}")


def apply_variation(raw: gym.Env, attrs: Mapping[str, float]) -> None:
    """Set ``attrs`` on one unwrapped simulator, keeping CartPole's cached derived masses consistent."""
    for attr, value in attrs.items():
        setattr(raw, attr, float(value))
    if {"masspole", "masscart", "length"} & set(attrs) and hasattr(raw, "polemass_length"):
        raw.total_mass = raw.masspole + raw.masscart
        raw.polemass_length = raw.masspole * raw.length


def vary_env(env: Any, attrs: Mapping[str, float]) -> None:
    """Apply a variation to every sub-env of a repdyn classic-control env (``repdyn.envs.make.make_env``)."""
    from repdyn.envs.state import _vector_env

    vec = _vector_env(env)
    if vec is None:
        raise ValueError("env variations need an in-process gymnasium vector env (classic control)")
    for sub in vec.envs:
        apply_variation(sub.unwrapped, attrs)
