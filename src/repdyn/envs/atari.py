"""ALE (Atari 2600) environments for PPO/DQN: ale-py's C++ vector env exposed as a torchrl ``EnvBase``.

Settings follow Moalla et al. 2024 §3 and App. B Table 2 (arXiv:2405.00662), i.e. ``ALE/<Game>-v5`` as recommended by
Machado et al. (2018): sticky actions 0.25, frameskip 3 **without** max-pooling, 108,000 emulator frames per episode,
game-over termination only, no noop reset, grayscale, 84×84, stack 4, reward sign.

Why a small ``EnvBase`` and not ``torchrl.envs.GymWrapper``: ale-py 0.12's ``AtariVectorEnv`` does the emulation,
grayscale, resize and frame stack in C++ threads. ``GymWrapper`` can wrap it (``autoreset_mode="SameStep"`` plus its
``VecGymEnvTransform``), but its generic info-dict reader runs per step and per sub-env, and it would need extra
transforms for the signed/raw reward pair. Measured with ``python -m repdyn.bench atari`` (8 envs, Phoenix, 2 shared
cores, medians of 2 interleaved repeats): main-thread CPU 0.56 ms/step here vs 4.53 ms/step for ``GymWrapper``
(0.17 ms raw), i.e. 1,801 vs 343 agent steps/s in the same run (raw vector env 1,648; load average ≈6).

Threads: torch's OpenMP threads spin while idle by default and starve ale-py's emulator threads when cores are
scarce. Same run: Collector + Nature-CNN actor/critic 26 agent steps/s with the default policy vs 579 with
``OMP_WAIT_POLICY=PASSIVE`` (the variable must be set before ``import torch``).

Equivalence with ``ALE/<Game>-v5`` (checked against a reference ``ale_py.ALEInterface`` in
tests/unit/test_env_atari.py):

- Sticky actions are ALE's own (``ALEInterface.setFloat("repeat_action_probability", p)`` in every sub-emulator),
  applied per emulator frame exactly as in v5; frameskip is a loop of ``frameskip`` ``act`` calls with ALE's internal
  ``frame_skip`` = 1, and ``maxpool=False`` keeps only the last frame. Frames match the reference bit for bit.
- The frame cap counts emulator frames (ale-py's ``max_num_frames_per_episode``); reaching it sets ``truncated``.
- ``use_fire_reset=False`` (v5 does not press FIRE at reset) and ``noop_max`` noops at reset (0 by default).
- Known differences from the paper's TorchRL transform pipeline: at reset the 3 older stack slots are zeros (ale-py's
  C++ stack) rather than copies of the first frame; grayscale is ALE's palette luminance and the resize is OpenCV
  ``INTER_AREA`` (Table 2's ``resize_w``/``resize_h`` suggest torchrl's ``Resize``, i.e. bilinear, which needs
  torchvision, unavailable here — issue 4). Within 1 grey level of an area-average of the reference frame (tested).
- On a game-over step ale-py stops the frameskip loop at the game-over frame (v5's ``AtariEnv.step`` plays all 3); if
  that happens before the last sub-frame, the final stack repeats the previous frame. Only terminal observations,
  which PPO does not bootstrap from, are affected.

Autoreset: ale-py 0.12 offers ``NextStep`` and ``SameStep`` only (``Disabled`` raises). ``NextStep`` would make the
step after a terminal one an action-ignoring reset transition, which torchrl would record as data. We use
``SameStep``: the emulator resets inside the terminal step and returns the final observation in ``info["final_obs"]``;
this class writes that final observation as ``("next", "observation")`` of the terminal transition and keeps the
post-reset observation, which torchrl's partial ``reset`` (``"_reset"`` mask, issued by collectors after ``done``)
then returns without touching the emulator. Every recorded transition is therefore (s_t, a_t, r_t+1, s_t+1) of one
episode; tests/integration/test_atari_collector.py checks this on real episode ends.

Action spec: ``Categorical`` (integer action index in the minimal action set, shape ``[num_envs]``, int64).
Output keys per step: ``observation`` uint8 ``[N, stack, size, size]``, ``reward`` float32 ``[N, 1]`` (sign of the raw
reward when ``reward_sign``), ``reward_raw`` float32 ``[N, 1]`` (unsigned game score, for ``env/return_raw``),
``done``/``terminated``/``truncated`` bool ``[N, 1]``, ``episode_frame_number`` int64 ``[N, 1]`` (the emulator's
frame counter; on the autoreset step it already belongs to the new episode because ale-py reports post-reset info).
Sub-env ``i`` is seeded with ``seed + i``.

Game modes and difficulties (``flavour``, for held-out evaluation): the C++ vector env cannot set them, so a flavoured
env swaps it for :class:`repdyn.envs.ale_flavours.FlavouredAtariVectorEnv`, which computes the same observations in
Python (bit for bit in the default flavour; see that module).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from ale_py import roms
from ale_py.vector_env import AtariVectorEnv
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Bounded, Categorical, Composite, Unbounded
from torchrl.envs import EnvBase

_ENV_ID = re.compile(r"^ALE/([A-Za-z0-9]+)-v5$")


def rom_name(env_id: str) -> str:
    """``"ALE/NameThisGame-v5"`` → ``"name_this_game"`` (ale-py's ROM id); ValueError for anything else."""
    match = _ENV_ID.match(env_id) if isinstance(env_id, str) else None
    if match is None:
        raise ValueError(f"env_id must look like 'ALE/<Game>-v5' (e.g. 'ALE/Phoenix-v5'), got {env_id!r}")
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", match.group(1)).lower()
    known = roms.get_all_rom_ids()
    if name not in known:
        raise ValueError(f"env_id {env_id!r}: unknown ALE game {name!r}; allowed ROM ids: {', '.join(sorted(known))}")
    return name


def ale_vector_env_kwargs(
    env_id: str,
    num_envs: int,
    *,
    frameskip: int = 3,
    repeat_action_probability: float = 0.25,
    max_num_frames_per_episode: int = 108_000,
    noop_max: int = 0,
    grayscale: bool = True,
    size: int = 84,
    stack: int = 4,
    num_threads: int = 0,
) -> dict[str, Any]:
    """Validated keyword arguments of ``ale_py.vector_env.AtariVectorEnv`` for the v5 settings (see module doc).

    Kept separate so tests can build the same emulator configuration at native resolution and compare it frame by
    frame with a reference ``ALEInterface``.
    """
    game = rom_name(env_id)
    for name, value, low in [
        ("num_envs", num_envs, 1),
        ("frameskip", frameskip, 1),
        ("max_num_frames_per_episode", max_num_frames_per_episode, 1),
        ("noop_max", noop_max, 0),
        ("size", size, 1),
        ("stack", stack, 1),
        ("num_threads", num_threads, 0),
    ]:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if not isinstance(repeat_action_probability, int | float) or not 0.0 <= repeat_action_probability <= 1.0:
        raise ValueError(f"repeat_action_probability must be in [0, 1], got {repeat_action_probability!r}")
    return dict(
        game=game,
        num_envs=num_envs,
        num_threads=num_threads,
        max_num_frames_per_episode=max_num_frames_per_episode,
        repeat_action_probability=float(repeat_action_probability),
        full_action_space=False,  # v5 default: the game's minimal action set
        autoreset_mode="SameStep",  # see module doc: final obs in info, reset obs kept for torchrl's partial reset
        img_height=size,
        img_width=size,
        grayscale=bool(grayscale),
        stack_num=stack,
        frameskip=frameskip,
        maxpool=False,  # Moalla et al. 2024 App. B: v5 has no frame pooling, hence the odd frameskip 3
        noop_max=noop_max,
        episodic_life=False,  # life-loss termination, if asked, is done in Python (it must not reset the game)
        life_loss_info=False,
        reward_clipping=False,  # we keep the raw score and take its sign ourselves
        use_fire_reset=False,  # v5 does not press FIRE at reset
    )


class ALEVectorEnv(EnvBase):
    """torchrl view of one ``AtariVectorEnv`` (batch ``[num_envs]``); see the module docstring for the semantics."""

    def __init__(
        self,
        vector_kwargs: Mapping[str, Any],
        seed: int,
        *,
        reward_sign: bool = True,
        terminal_on_life_loss: bool = False,
        device: torch.device | str = "cpu",
        flavour: Mapping[str, int] | None = None,
    ) -> None:
        num_envs = int(vector_kwargs["num_envs"])
        super().__init__(device=device, batch_size=torch.Size([num_envs]))
        self.ale_kwargs = dict(vector_kwargs)
        self.reward_sign = bool(reward_sign)
        self.terminal_on_life_loss = bool(terminal_on_life_loss)
        if flavour:  # a game mode/difficulty: same contract, emulators stepped in Python (module doc)
            from repdyn.envs.ale_flavours import FlavouredAtariVectorEnv

            self._vec = FlavouredAtariVectorEnv(**flavour, **self.ale_kwargs)
        else:
            self._vec = AtariVectorEnv(**self.ale_kwargs)
        self.num_actions = int(self._vec.single_action_space.n)
        obs_shape = tuple(self._vec.single_observation_space.shape)
        n = (num_envs,)
        self.observation_spec = Composite(
            observation=Bounded(0, 255, shape=n + obs_shape, dtype=torch.uint8, device=self.device),
            reward_raw=Unbounded(shape=n + (1,), dtype=torch.float32, device=self.device),
            episode_frame_number=Unbounded(shape=n + (1,), dtype=torch.int64, device=self.device),
            shape=n,
            device=self.device,
        )
        self.action_spec = Categorical(self.num_actions, shape=n, dtype=torch.int64, device=self.device)
        self.reward_spec = Unbounded(shape=n + (1,), dtype=torch.float32, device=self.device)
        bool_spec = Categorical(2, shape=n + (1,), dtype=torch.bool, device=self.device)
        self.full_done_spec = Composite(
            {key: bool_spec.clone() for key in ("done", "terminated", "truncated")}, shape=n, device=self.device
        )
        self._seed = int(seed)
        self._last_obs: np.ndarray | None = None  # post-autoreset obs, returned by partial resets
        self._last_frame = np.zeros(num_envs, dtype=np.int64)
        self._lives = np.zeros(num_envs, dtype=np.int64)

    def _to(self, array: np.ndarray, dtype: torch.dtype | None = None) -> torch.Tensor:
        t = torch.from_numpy(array)
        if dtype is not None:
            t = t.to(dtype)
        return t if self.device == torch.device("cpu") else t.to(self.device, non_blocking=True)

    def _set_seed(self, seed: int | None) -> None:
        # Takes effect at the next full reset; sub-env i gets seed + i (ale-py convention).
        if seed is not None:
            self._seed = int(seed)

    def reset_tensors(self, partial: bool = False) -> dict[str, torch.Tensor]:
        """Plain-tensor reset (the lean collector's entry point; ``_reset`` wraps it in a TensorDict).

        ``partial``: masked sub-envs were already reset by the emulator inside their terminal step (SameStep), or,
        for a life-loss "termination", simply continue; the cached obs is the current one for every sub-env."""
        if not partial or self._last_obs is None:
            obs, info = self._vec.reset(seed=self._seed)
            self._last_obs = obs
            self._last_frame = info["episode_frame_number"].astype(np.int64)
            self._lives = info["lives"].astype(np.int64)
        n = self.batch_size[0]
        zeros_b = torch.zeros((n, 1), dtype=torch.bool, device=self.device)
        return {
            "observation": self._to(self._last_obs),
            "reward_raw": torch.zeros((n, 1), dtype=torch.float32, device=self.device),
            "episode_frame_number": self._to(self._last_frame[:, None].copy()),
            "done": zeros_b,
            "terminated": zeros_b.clone(),
            "truncated": zeros_b.clone(),
        }

    def step_tensors(self, action: torch.Tensor) -> dict[str, torch.Tensor]:
        """Plain-tensor step: the keys of the module docstring (final observation where an episode ended)."""
        if action.shape[-1] == self.num_actions and action.dim() == 2:  # tolerate one-hot policies
            action = action.argmax(-1)
        obs, reward, terminated, truncated, info = self._vec.step(action.reshape(-1).cpu().numpy().astype(np.int64))
        autoreset = terminated | truncated
        next_obs = obs
        if autoreset.any():
            next_obs = np.where(autoreset[:, None, None, None], info["final_obs"], obs)
        self._last_obs = obs
        self._last_frame = info["episode_frame_number"].astype(np.int64)
        lives = info["lives"].astype(np.int64)
        if self.terminal_on_life_loss:
            # DQN-style end-of-life signal without resetting the game (Moalla et al. 2024 use game-over only).
            terminated = terminated | ((lives < self._lives) & ~autoreset)
        self._lives = lives
        raw = reward.astype(np.float32)[:, None]
        term = self._to(terminated[:, None].copy())
        trunc = self._to(truncated[:, None].copy()) & ~term
        return {
            "observation": self._to(next_obs),
            "reward": self._to(np.sign(raw) if self.reward_sign else raw.copy()),
            "reward_raw": self._to(raw),
            "episode_frame_number": self._to(self._last_frame[:, None].copy()),
            "done": term | trunc,
            "terminated": term,
            "truncated": trunc,
        }

    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs: Any) -> TensorDictBase:
        partial = tensordict is not None and "_reset" in tensordict.keys()
        return TensorDict(self.reset_tensors(partial), batch_size=self.batch_size, device=self.device)

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        return TensorDict(self.step_tensors(tensordict.get("action")), batch_size=self.batch_size, device=self.device)

    def close(self, *, raise_if_closed: bool = True) -> None:
        vec = getattr(self, "_vec", None)
        if vec is not None:
            vec.close()
            self._vec = None
        super().close(raise_if_closed=raise_if_closed)


def make_atari_env(
    env_id: str,
    num_envs: int,
    seed: int,
    *,
    frameskip: int = 3,
    repeat_action_probability: float = 0.25,
    max_num_frames_per_episode: int = 108_000,
    noop_max: int = 0,
    grayscale: bool = True,
    size: int = 84,
    stack: int = 4,
    reward_sign: bool = True,
    terminal_on_life_loss: bool = False,
    num_threads: int = 0,
    device: torch.device | str = "cpu",
    flavour: Mapping[str, int] | None = None,
) -> EnvBase:
    """Batched ``ALE/<Game>-v5`` env with Moalla et al.'s App. B Table 2 settings; see the module docstring.

    ``num_threads`` = 0 lets ale-py use min(num_envs, hardware threads) emulator threads. ``flavour``:
    ``{mode: int, difficulty: int}`` (either optional) selects a game mode/difficulty, for held-out evaluation.
    """
    kwargs = ale_vector_env_kwargs(
        env_id,
        num_envs,
        frameskip=frameskip,
        repeat_action_probability=repeat_action_probability,
        max_num_frames_per_episode=max_num_frames_per_episode,
        noop_max=noop_max,
        grayscale=grayscale,
        size=size,
        stack=stack,
        num_threads=num_threads,
    )
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    return ALEVectorEnv(
        kwargs,
        seed,
        reward_sign=reward_sign,
        terminal_on_life_loss=terminal_on_life_loss,
        device=device,
        flavour=flavour,
    )
