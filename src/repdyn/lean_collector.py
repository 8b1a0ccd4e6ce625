"""A lean rollout for in-process CPU vector envs: the batches of ``torchrl.collectors.Collector``, without its
per-step TensorDict machinery.

``torchrl``'s ``Collector`` builds, transforms and steps a TensorDict per env step (``step_and_maybe_reset``,
``step_mdp``, the transforms' key lookups, the TensorDict policy): ~4.6 ms per 2-env Hopper step of which the
simulator is 0.4 ms. This collector drives the same env objects and the same networks on plain tensors:

- the env's base (:class:`repdyn.envs.gym_vector.GymVectorEnv`, :class:`repdyn.envs.atari.ALEVectorEnv`) is stepped
  through ``step_tensors(action)`` / ``reset_tensors(partial)`` (the same code their torchrl ``_step``/``_reset``
  wrap);
- the env's transforms are applied as the arithmetic they stand for: ``StepCounter`` (``step_count``),
  ``RewardSum`` (``episode_reward``, and ``episode_reward_raw`` on ALE), ``ObservationNorm``; any other transform is
  refused (use ``train.collector=torchrl``);
- the policy is the agent's ``act(observation) -> {key: tensor}`` (plain tensors, the keys of its TensorDict policy);
- each key's per-step tensors are kept in a list and stacked once per batch into one TensorDict ``[num_envs, T]``:
  for the 24 keys of a 1024-step PPO batch that costs ~13 ms, against ~115 ms for writing every step into
  preallocated ``[num_envs, T]`` buffers (``buf[:, t] = value`` is an indexing op plus a copy per key per step).

The output is the ``Collector``'s batch key for key (``observation``, policy outputs, ``step_count``,
``episode_reward``, ``done``/``terminated``/``truncated`` all False at the root, ``("collector", "traj_ids")``,
``("next", ...)`` with the final observation of an ended episode), and the same random draws are made in the same
order, so for one seed both collectors give the same batches (tests/integration/test_lean_collector.py).
``python -m repdyn.bench throughput`` measures both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from tensordict import TensorDict
from torchrl.envs import Compose, ObservationNorm, RewardSum, StepCounter, TransformedEnv

Policy = Callable[[torch.Tensor], dict[Any, torch.Tensor]]
_FLAGS = ("done", "terminated", "truncated")


class _Transforms:
    """The arithmetic of the supported torchrl transforms, read from the env's transform stack."""

    def __init__(self, env: Any) -> None:
        self.counters: list[str] = []
        self.sums: list[tuple[str, str]] = []  # (per-step key, running-sum key)
        self.norms: list[ObservationNorm] = []
        transforms = env.transform if isinstance(env, TransformedEnv) else Compose()
        for t in transforms if isinstance(transforms, Compose) else [transforms]:
            if isinstance(t, StepCounter) and t.max_steps is None:
                self.counters.append(t.step_count_key)
            elif isinstance(t, RewardSum):
                self.sums += list(zip(t.in_keys, t.out_keys, strict=True))
            elif isinstance(t, ObservationNorm):
                self.norms.append(t)
            else:
                raise ValueError(
                    f"train.collector=lean: env transform {type(t).__name__} is not supported; "
                    "use train.collector=torchrl"
                )

    def observe(self, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Normalise the observation keys in place: ObservationNorm's ``(x − loc) / scale`` (standard_normal) or
        ``x · scale + loc``, the same arithmetic without its per-call checks."""
        for norm in self.norms:
            loc, scale = norm.loc, norm.scale
            for key in norm.in_keys:
                out[key] = (out[key] - loc) / scale if norm.standard_normal else out[key] * scale + loc
        return out

    def start(self, reset: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The counters' values right after a reset: zeros shaped like torchrl's (``[N, 1]``)."""
        n = reset["done"].shape[0]
        state = {k: torch.zeros(n, 1, dtype=torch.int64) for k in self.counters}
        state.update({out: torch.zeros(n, 1, dtype=torch.float32) for _, out in self.sums})
        return state

    def advance(self, state: dict[str, torch.Tensor], step: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The counters after ``step``: step count + 1, running sums + this step's value."""
        nxt = {k: state[k] + 1 for k in self.counters}
        nxt.update({out: state[out] + step[key] for key, out in self.sums})
        return nxt


class LeanCollector:
    """Endless iterator of ``[num_envs, frames_per_batch / num_envs]`` TensorDicts; see the module docstring.

    Same surface as the ``Collector`` the training loop uses: iteration, ``update_policy_weights_()`` (a no-op: the
    policy runs the agent's own modules), ``reset()``, ``shutdown()``, plus ``state_dict()`` / ``load_state_dict()``
    (the carried observation and counters, for exact resume)."""

    def __init__(self, env: Any, policy: Policy, frames_per_batch: int) -> None:
        self.env, self.policy = env, policy
        self.base = env.base_env if isinstance(env, TransformedEnv) else env
        if not hasattr(self.base, "step_tensors"):
            raise ValueError(
                f"train.collector=lean needs an env with step_tensors/reset_tensors, got {type(self.base).__name__}; "
                "use train.collector=torchrl"
            )
        self.num_envs = int(env.batch_size.numel())
        if frames_per_batch % self.num_envs:
            raise ValueError(f"frames_per_batch {frames_per_batch} is not a multiple of num_envs {self.num_envs}")
        self.steps = frames_per_batch // self.num_envs
        self.transforms = _Transforms(env)
        self._obs_keys: list[str] = []
        self._carrier: dict[str, torch.Tensor] = {}
        self._next_traj = 0
        self.reset()

    # --- state --------------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Full reset of every sub-env (a fresh trajectory id each), as the Collector's first iteration does."""
        reset = self.transforms.observe(self.base.reset_tensors(partial=False))
        self._obs_keys = [k for k in reset if k not in _FLAGS]
        self._carrier = {**{k: reset[k] for k in self._obs_keys}, **self.transforms.start(reset)}
        self._carrier["traj_ids"] = torch.arange(self._next_traj, self._next_traj + self.num_envs)
        self._next_traj += self.num_envs

    def state_dict(self) -> dict[str, Any]:
        return {"carrier": {k: v.clone() for k, v in self._carrier.items()}, "next_traj": self._next_traj}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._carrier = {k: v.clone() for k, v in state["carrier"].items()}
        self._next_traj = int(state["next_traj"])

    def update_policy_weights_(self, *args: Any, **kwargs: Any) -> None:
        """Nothing to do: the policy calls the agent's live networks."""

    def shutdown(self) -> None:
        if not self.env.is_closed:
            self.env.close()

    # --- rollout ------------------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[TensorDict]:
        while True:
            yield self.rollout()

    def rollout(self) -> TensorDict:
        """``frames_per_batch`` env steps under the current policy, as one TensorDict ``[num_envs, T]``."""
        # inference mode (no autograd bookkeeping) for the step loop; the stacking below runs outside it, so the
        # batch holds ordinary tensors the update can differentiate through
        with torch.inference_mode():
            root, nxt = self._steps()
        n = self.num_envs
        fields: dict[Any, Any] = {k: torch.stack(v, 1) for k, v in root.items()}
        fields["collector"] = {"traj_ids": fields.pop("traj_ids")}
        false = torch.zeros(n, self.steps, 1, dtype=torch.bool)
        fields.update({flag: false.clone() for flag in _FLAGS})
        fields["next"] = {k: torch.stack(v, 1) for k, v in nxt.items()}
        # one constructor call for the nested dict: a fraction of the per-key ``set`` calls' checks
        return TensorDict(fields, batch_size=[n, self.steps])

    def _steps(self) -> tuple[dict[Any, list[torch.Tensor]], dict[str, list[torch.Tensor]]]:
        """The step loop: per key, the list of per-step root values and ``next`` values."""
        root: dict[Any, list[torch.Tensor]] = {}
        nxt: dict[str, list[torch.Tensor]] = {}
        cur = self._carrier
        for _ in range(self.steps):
            out = self.policy(cur["observation"])
            step = self.transforms.observe(self.base.step_tensors(out["action"]))
            counters = self.transforms.advance(cur, step)
            for key, value in out.items():
                root.setdefault(key, []).append(value)
            for key, value in cur.items():
                root.setdefault(key, []).append(value)
            for key, value in (*step.items(), *counters.items()):
                nxt.setdefault(key, []).append(value)
            after = {**{k: step[k] for k in self._obs_keys}, **counters, "traj_ids": cur["traj_ids"]}
            done = step["done"].squeeze(-1)
            if done.any():
                after = self._restart(after, done)
            cur = after
        self._carrier = cur
        return root, nxt

    def _restart(self, after: dict[str, torch.Tensor], done: torch.Tensor) -> dict[str, torch.Tensor]:
        """Carry the post-reset observation and zeroed counters for the sub-envs whose episode just ended (the envs
        reset them inside the step), and give each a new trajectory id (in env order, as torchrl's pool does)."""
        reset = self.transforms.observe(self.base.reset_tensors(partial=True))
        fresh = {**reset, **self.transforms.start(reset)}
        out = {}
        for key, value in after.items():
            if key == "traj_ids":
                k = int(done.sum())
                out[key] = value.masked_scatter(done, torch.arange(self._next_traj, self._next_traj + k))
                self._next_traj += k
            else:
                out[key] = torch.where(done.view(-1, *[1] * (value.dim() - 1)), fresh[key], value)
        return out
