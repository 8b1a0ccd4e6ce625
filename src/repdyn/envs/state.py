"""Exact save/restore of in-process gymnasium vector envs, for requeue-safe resume.

Pickling a MuJoCo env does not carry its physics (a restored copy diverges after a few steps), so MuJoCo sub-envs are
captured with ``mj_getState(mjSTATE_INTEGRATION)`` (positions, velocities, activations, warm-start, time), plus the
env's RNG and the ``TimeLimit`` counter. Pure-Python envs (classic control) are pickled whole. ALE envs are not
captured: a resumed ALE run re-seeds its envs (documented in README "Resume").
"""

from __future__ import annotations

import pickle
from typing import Any

import gymnasium as gym
import numpy as np


def _vector_env(env: Any) -> gym.vector.SyncVectorEnv | None:
    base = getattr(env, "base_env", env)
    vec = getattr(base, "_env", None)
    return vec if isinstance(vec, gym.vector.SyncVectorEnv) else None


def _wrapper_counters(sub: gym.Env) -> list[int | None]:
    out = []
    e = sub
    while isinstance(e, gym.Wrapper):
        out.append(getattr(e, "_elapsed_steps", None))
        e = e.env
    return out


def _set_wrapper_counters(sub: gym.Env, counters: list[int | None]) -> None:
    e = sub
    for c in counters:
        if c is not None:
            e._elapsed_steps = c
        e = e.env


def get_env_state(env: Any) -> bytes | None:
    """Serialise every sub-env's state, or ``None`` when the env kind cannot be captured (ALE)."""
    vec = _vector_env(env)
    if vec is None:
        return None
    subs = []
    for sub in vec.envs:
        raw = sub.unwrapped
        if hasattr(raw, "data") and hasattr(raw, "model"):
            import mujoco

            spec = mujoco.mjtState.mjSTATE_INTEGRATION
            buf = np.empty(mujoco.mj_stateSize(raw.model, spec))
            mujoco.mj_getState(raw.model, raw.data, buf, spec)
            subs.append({"kind": "mujoco", "physics": buf, "rng": raw.np_random.bit_generator.state})
        else:
            subs.append({"kind": "pickle", "env": pickle.dumps(raw)})
        subs[-1]["counters"] = _wrapper_counters(sub)
    return pickle.dumps({"subs": subs, "obs": vec._env_obs, "autoreset": vec._autoreset_envs})


def set_env_state(env: Any, blob: bytes | None) -> bool:
    """Restore a state from :func:`get_env_state`; return False (nothing restored) when it is not capturable."""
    vec = _vector_env(env)
    if vec is None or blob is None:
        return False
    state = pickle.loads(blob)
    for i, (sub, s) in enumerate(zip(vec.envs, state["subs"], strict=True)):
        if s["kind"] == "mujoco":
            import mujoco

            raw = sub.unwrapped
            mujoco.mj_setState(raw.model, raw.data, s["physics"], mujoco.mjtState.mjSTATE_INTEGRATION)
            mujoco.mj_forward(raw.model, raw.data)
            raw.np_random.bit_generator.state = s["rng"]
        else:
            raw = pickle.loads(s["env"])
            e = sub
            while isinstance(e.env, gym.Wrapper):
                e = e.env
            e.env = raw
            vec.envs[i] = sub
        _set_wrapper_counters(sub, s["counters"])
    vec._env_obs = state["obs"]
    vec._autoreset_envs = state["autoreset"]
    return True
