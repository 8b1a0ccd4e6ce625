"""ALE game *flavours* (a game's modes and difficulties, which Machado et al. 2018, JAIR, added to the ALE; used as
held-out test environments by Farebrother et al. 2018, "Generalization and Regularization in DQN",
arXiv:1810.00123) with repdyn's Atari observation contract.

A *mode* selects one of the game's variants (its game-select settings: other rules, speeds, layouts), a *difficulty*
sets the console's difficulty switches; each game lists what it supports (``ALEInterface.getAvailableModes()`` /
``getAvailableDifficulties()``, read by :func:`available_flavours`). ale-py 0.12's C++ ``AtariVectorEnv`` (repdyn's
Atari env, :mod:`repdyn.envs.atari`) cannot set either, so :class:`FlavouredAtariVectorEnv` re-implements, with one
``ALEInterface`` per sub-env, exactly what ``AtariVectorEnv`` computes for repdyn's settings
(:func:`repdyn.envs.atari.ale_vector_env_kwargs`), and adds ``setMode`` / ``setDifficulty`` after each ROM load.
It is a drop-in ``_vec`` of :class:`repdyn.envs.atari.ALEVectorEnv` (the same ``reset`` / ``step`` / ``info``
arrays), so a flavoured env has the same torchrl keys, reward sign, SameStep autoreset and frame cap as the training
env. For the same seed and actions it reproduces the C++ env bit for bit in the default flavour (observations,
rewards, episode ends, frame counters; tests/unit/test_env_ale_flavours.py):

- sub-env ``i`` is seeded with ``seed + i`` (ALE's ``random_seed``, read at ``loadROM``); the only randomness is
  ALE's own sticky actions (``repeat_action_probability``), drawn per emulator frame inside ``act``;
- an agent step is ``frameskip`` ``act`` calls, stopped at game over or the frame cap (ALE's
  ``max_num_frames_per_episode``, ``game_truncated``), keeping the last sub-frame's screen (no max-pooling). Like the
  C++ loop, which grabs the screen only on the last sub-frame, a step cut short by the game's end repeats the
  previous frame in its newest stack slot (only terminal observations, never acted on, are affected);
- frames are ALE's grayscale screen, shrunk with OpenCV's ``INTER_AREA`` re-implemented in float32 in
  OpenCV's own summation order (:func:`area_resize`; OpenCV is linked into ale-py but not importable here), and
  stacked with zero padding after a reset (the C++ stack);
- SameStep autoreset: a sub-env that ends resets inside the step (unseeded: its RNG continues), returning the reset
  observation and the final one in ``info["final_obs"]``.

Speed: the emulators run one after the other in the calling thread (no C++ thread pool). Measured once on the 2
shared cores (NameThisGame, 4 envs, 500 random steps): 1,500 env steps/s, vs 1,280 for the C++ env on one thread;
the C++ env's gain is its threads, so training keeps it and this env serves evaluation episodes.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium.spaces import Box, Discrete

# AtariVectorEnv settings this class reproduces; ale_vector_env_kwargs fixes them for repdyn (module doc).
_FIXED = {
    "full_action_space": False,
    "autoreset_mode": "SameStep",
    "maxpool": False,
    "noop_max": 0,
    "episodic_life": False,
    "life_loss_info": False,
    "reward_clipping": False,
    "use_fire_reset": False,
    "grayscale": True,  # RGB frames would need a channel layout repdyn's env does not handle either
}
PLURAL = {"mode": "modes", "difficulty": "difficulties"}  # for messages
_IGNORED = ("num_threads",)  # the C++ thread pool's size: no effect on what is computed


def _ale(game: str, seed: int | None = None, sticky: float = 0.0, max_frames: int = 0) -> Any:
    """An ``ALEInterface`` with ``game``'s ROM loaded (settings are read at ``loadROM``, so they go first)."""
    import ale_py
    from ale_py import roms

    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)
    ale = ale_py.ALEInterface()
    if seed is not None:
        ale.setInt("random_seed", int(seed))
    ale.setFloat("repeat_action_probability", float(sticky))
    ale.setInt("max_num_frames_per_episode", int(max_frames))
    ale.loadROM(roms.get_rom_path(game))
    return ale


def unsupported_setting(vector_kwargs: Mapping[str, Any]) -> str | None:
    """``"<key>: ..."`` for the first ``AtariVectorEnv`` setting :class:`FlavouredAtariVectorEnv` does not reproduce
    (e.g. ``noop_max`` > 0: the C++ env draws a random no-op count at reset, which this class does not replay;
    repdyn's presets use 0), else None."""
    for key, want in _FIXED.items():
        got = vector_kwargs.get(key, want)
        if got != want:
            return f"{key}: only {want!r} is implemented for game modes/difficulties, got {got!r}"
    return None


@functools.lru_cache(maxsize=64)
def available_flavours(game: str) -> tuple[tuple[int, ...], tuple[int, ...], int, int]:
    """``(modes, difficulties, default mode, default difficulty)`` of an ALE ROM id (e.g. ``"name_this_game"``)."""
    ale = _ale(game)
    state = ale.cloneState()
    return (
        tuple(int(m) for m in ale.getAvailableModes()),
        tuple(int(d) for d in ale.getAvailableDifficulties()),
        int(state.getCurrentMode()),
        int(state.getDifficulty()),
    )


@functools.lru_cache(maxsize=16)
def area_table(n_src: int, n_dst: int) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's ``computeResizeAreaTab`` for a shrink ``n_src`` → ``n_dst`` as padded arrays ``(index, weight)`` of
    shape ``[terms, n_dst]``: output ``d`` averages the inputs covering [d·s, (d + 1)·s), s = n_src / n_dst, each
    weighted by its covered length / s (partial cells under 1e-3 dropped, as OpenCV does). Unused terms have weight 0;
    adding 0.0 leaves a float sum unchanged, so the padding does not alter OpenCV's summation order."""
    scale = 1.0 / (n_dst / n_src)  # OpenCV: scale_x = 1 / inv_scale_x, inv_scale_x = dsize / ssize (doubles)
    terms: list[list[tuple[int, np.float32]]] = []
    for d in range(n_dst):
        lo = d * scale
        hi = lo + scale
        cell = min(scale, n_src - lo)
        first, last = math.ceil(lo), min(math.floor(hi), n_src - 1)
        first = min(first, last)
        row = []
        if first - lo > 1e-3:
            row.append((first - 1, np.float32((first - lo) / cell)))
        row += [(s, np.float32(1.0 / cell)) for s in range(first, last)]
        if hi - last > 1e-3:
            row.append((last, np.float32(min(hi - last, 1.0, cell) / cell)))
        terms.append(row)
    width = max(len(row) for row in terms)
    index = np.zeros((width, n_dst), dtype=np.intp)
    weight = np.zeros((width, n_dst), dtype=np.float32)
    for d, row in enumerate(terms):
        for t, (s, w) in enumerate(row):
            index[t, d], weight[t, d] = s, w
    return index, weight


def area_resize(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """``cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)`` for a uint8 ``[H, W]`` shrink, bit for
    bit: each row is resampled horizontally in float32 (terms added in source order), the rows are then combined with
    their vertical weights in source order, and the sum is rounded half to even (``cvRound``)."""
    ys, wy = area_table(frame.shape[0], height)
    xs, wx = area_table(frame.shape[1], width)
    src = frame.astype(np.float32)
    rows = np.zeros((frame.shape[0], width), dtype=np.float32)
    for t in range(xs.shape[0]):
        rows += src[:, xs[t]] * wx[t]
    out = np.zeros((height, width), dtype=np.float32)
    for t in range(ys.shape[0]):
        out += rows[ys[t]] * wy[t][:, None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


class FlavouredAtariVectorEnv:
    """``num_envs`` emulators of ``game`` in ``mode`` / ``difficulty`` (``None``: the ROM's default) with the
    ``reset(seed=)`` / ``step(actions)`` interface of ale-py's ``AtariVectorEnv`` (see the module docstring).

    ``vector_kwargs`` are :func:`repdyn.envs.atari.ale_vector_env_kwargs`; settings other than repdyn's are refused
    with a ValueError naming the keyword."""

    def __init__(self, mode: int | None = None, difficulty: int | None = None, **vector_kwargs: Any) -> None:
        problem = unsupported_setting(vector_kwargs)
        if problem is not None:
            raise ValueError(problem)
        known = {"game", "num_envs", "max_num_frames_per_episode", "repeat_action_probability", "img_height"}
        known |= {"img_width", "stack_num", "frameskip", *_FIXED, *_IGNORED}
        unknown = sorted(set(vector_kwargs) - known)
        if unknown:
            raise ValueError(f"{unknown[0]}: not a setting FlavouredAtariVectorEnv implements")
        self.game = str(vector_kwargs["game"])
        modes, difficulties, _, _ = available_flavours(self.game)
        for name, value, allowed in (("mode", mode, modes), ("difficulty", difficulty, difficulties)):
            if value is not None and value not in allowed:
                raise ValueError(f"{name}: {self.game} has {PLURAL[name]} {list(allowed)}, got {value!r}")
        self.mode, self.difficulty = mode, difficulty
        self.num_envs = int(vector_kwargs["num_envs"])
        self.sticky = float(vector_kwargs["repeat_action_probability"])
        self.max_frames = int(vector_kwargs["max_num_frames_per_episode"])
        self.frameskip = int(vector_kwargs["frameskip"])
        self.stack = int(vector_kwargs["stack_num"])
        self.size = (int(vector_kwargs["img_height"]), int(vector_kwargs["img_width"]))
        # A ROM load costs ~0.15 s and a seeded reset reloads anyway: one emulator for the action set until then.
        self._ales = [self._load()]
        self._actions = self._ales[0].getMinimalActionSet()
        self.single_action_space = Discrete(len(self._actions))
        self.single_observation_space = Box(0, 255, (self.stack, *self.size), dtype=np.uint8)
        self._stacks = np.zeros((self.num_envs, self.stack, *self.size), dtype=np.uint8)

    def _load(self, seed: int | None = None) -> Any:
        ale = _ale(self.game, seed, self.sticky, self.max_frames)
        if self.mode is not None:  # as ale-py's AtariEnv.load_game: after loadROM, before reset_game
            ale.setMode(self.mode)
        if self.difficulty is not None:
            ale.setDifficulty(self.difficulty)
        return ale

    def _frame(self, ale: Any) -> np.ndarray:
        return area_resize(ale.getScreenGrayscale(), *self.size)

    def _reset_one(self, i: int) -> None:
        self._ales[i].reset_game()
        self._stacks[i] = 0  # the C++ stack starts zero-padded
        self._stacks[i, -1] = self._frame(self._ales[i])

    def _info(self) -> dict[str, np.ndarray]:
        return {
            "lives": np.array([a.lives() for a in self._ales], dtype=np.int32),
            "episode_frame_number": np.array([a.getEpisodeFrameNumber() for a in self._ales], dtype=np.int32),
        }

    def reset(self, *, seed: int | None = None, options: Mapping[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        """Reset every sub-env; with ``seed``, sub-env ``i`` first reloads its ROM with ALE seed ``seed + i``."""
        if options:
            raise ValueError("options: partial resets are not implemented (repdyn's env relies on SameStep)")
        if seed is not None:
            self._ales = [self._load(seed + i) for i in range(self.num_envs)]
        elif len(self._ales) < self.num_envs:  # never seeded: ALE's default seed
            self._ales += [self._load() for _ in range(self.num_envs - len(self._ales))]
        for i in range(self.num_envs):
            self._reset_one(i)
        return self._stacks.copy(), self._info()

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        """One agent step of every sub-env: ``(obs, reward, terminated, truncated, info)`` as ``AtariVectorEnv``."""
        actions = np.asarray(actions).reshape(self.num_envs)
        reward = np.zeros(self.num_envs, dtype=np.int32)
        terminated = np.zeros(self.num_envs, dtype=bool)
        truncated = np.zeros(self.num_envs, dtype=bool)
        final = None
        for i, ale in enumerate(self._ales):
            action = self._actions[int(actions[i])]
            played = 0
            while played < self.frameskip:
                reward[i] += ale.act(action)
                played += 1
                if ale.game_over():  # game over or the frame cap: the C++ loop stops here too
                    break
            newest = self._frame(ale) if played == self.frameskip else self._stacks[i, -1].copy()  # module doc
            self._stacks[i, :-1] = self._stacks[i, 1:]
            self._stacks[i, -1] = newest
            terminated[i] = ale.game_over(with_truncation=False)
            truncated[i] = ale.game_truncated() and not terminated[i]
        info = self._info()  # the C++ env reports post-reset info on an autoreset step; so does this one
        ended = terminated | truncated
        if ended.any():
            final = self._stacks.copy()
            for i in np.flatnonzero(ended):
                self._reset_one(int(i))
            info = self._info()
            info["final_obs"] = final
        return self._stacks.copy(), reward, terminated, truncated, info

    def current_flavours(self) -> list[tuple[int, int]]:
        """``(mode, difficulty)`` each emulator is in, read back from its state."""
        states = [ale.cloneState() for ale in self._ales]
        return [(int(s.getCurrentMode()), int(s.getDifficulty())) for s in states]

    def close(self) -> None:
        self._ales = []
