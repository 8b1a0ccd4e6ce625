"""DQN (Mnih et al. 2015, "Human-level control through deep reinforcement learning") with the TD(0) loss, the target
network and replay sampling written out over plain tensors; torchrl supplies the replay storage and writer
(``LazyTensorStorage``, written key by key as :class:`repdyn.agents.replay_memory.KeywiseTensorStorage`, or
``LazyMemmapStorage``; FIFO ``RoundRobinWriter``), the ``Collector`` policy
(``QValueModule`` + ``EGreedyModule``) and the collector itself (``train.collector=torchrl``).

Settings. ``conf/agent/dqn.yaml`` (classic control) follows rl-baselines3-zoo's tuned ``Acrobot-v1`` DQN (lr 6.3e-4,
minibatch 128, replay 50k, target copy every 250 gradient steps, one gradient step per env step, ε 1 → 0.1, Huber
loss, grad-norm clip 10) with the 2×64 ReLU Q-network of Stable-Baselines3, which Jansson 2025 §3.1 used
("two hidden layers of width 64"). ``conf/agent/dqn_atari.yaml`` follows the Dopamine DQN of Lyle et al. 2022
(Nature CNN, 1M replay, target copy every 8,000 agent steps = 2,000 gradient steps at one step per 4 env steps,
Adam lr 6.25e-5 eps 1.5e-4, minibatch 32, 20k warm-up, ε 1 → 0.01 over 250k steps).

Loop contract (see :mod:`repdyn.agents`). A "batch" is whatever the collector returns (``env.num_envs ×
env.frames_per_env`` env steps under one fixed ε-greedy policy); ``process_batch`` puts its transitions into the replay
buffer (after the ``on_batch_collected`` hooks, so an intrinsic reward added there enters the TD targets), and
``update`` takes ``replay_ratio × batch`` gradient steps (fractional credit carried over) once the buffer holds
``learning_starts`` transitions. With ``frames_per_env=4, num_envs=1, replay_ratio=0.25`` this is SB3's
``train_freq=4, gradient_steps=1``.

Gradient step. ``minibatch_size`` replay indices drawn uniformly with replacement (``torch.randint(len, (batch,))``,
what torchrl's ``RandomSampler`` draws, from the same global RNG) index the storage's tensors directly
(:func:`repdyn.agents.replay_memory.storage_tensors`). The loss is Huber (smooth L1, β = 1) or L2 (``agent.loss``),
mean over the minibatch, between Q(s, a) of ``qnet`` and y = r + γ (1 − terminated) Q_target(s', a*), computed
without gradient: a* = argmax_a Q_target(s', a), or argmax_a Q(s', a) of the online network with
``agent.double_dqn`` (van Hasselt et al. 2016, "Deep Reinforcement Learning with Double Q-learning",
arXiv:1509.06461). Then the gradient norm is clipped at ``max_grad_norm`` and fused Adam steps through
:func:`repdyn.agents.adam_step.step_all`. The target network ``target_qnet`` is a gradient-free copy of ``qnet``:
hard-copied after gradient steps ``interval``, ``2·interval``, … (``target_update_interval`` means what it says,
tested), or soft-updated θ' ← θ' + τ (θ − θ') after every step (``agent.target_update=soft``).

Compiled (``train.compile``): the steps of one update run in calls of up to :data:`FUSED_STEPS` unrolled steps,
each followed by its target update inside the same graph (:meth:`DQNAgent.fused_steps`): with 4 gradient steps per
4-env-step batch the per-call cost (dynamo guards, argument flattening, the runtime wrapper, the Python around it),
which py-spy measured as large as the fused kernels of one 2×64 step, is paid once per batch instead of per step
(per step 1.4 vs 3.4 ms against one compiled step per call, same process, alternating, machine loaded). The same
minibatch draws and, to float32 rounding, the same numbers as the eager loop (tests/integration/
test_compiled_update.py). The unrolled graph compiles ~3× longer (once per run, cached on disk);
``python -m repdyn.bench throughput`` measures the end-to-end effect.

Why not torchrl's ``DQNLoss`` + ``HardUpdate`` + ``ReplayBuffer.sample()`` (which this agent used before): the loss
is the same (tests/unit/test_dqn.py checks the written-out loss and its gradient against ``DQNLoss`` on the same
minibatch and parameters, Huber and L2, double or not), but their TensorDict plumbing (parameter swaps for the online
and target network, key lookups, a cloned minibatch TensorDict, the sampler → storage → collate chain) costs more
than the arithmetic of a 2×64 network. Measured in one process, alternating, 2×64 ReLU Q-network, minibatch 64, one
torch thread, 5,000 stored transitions (``python -m repdyn.bench dqn``): one gradient step (sample, loss, backward,
clip, Adam, target update) took 2.64 ms with ``ReplayBuffer.sample`` + ``DQNLoss`` + Adam + ``HardUpdate`` and
0.82 ms as :meth:`DQNAgent.gradient_step` (3.2×; 2.9–3.6× over three runs on a shared, loaded 2-core machine whose
absolute times drift by 1.5×); :meth:`DQNAgent.update` on a 4-env-step batch (4 gradient steps) went from 11.3 to
3.6 ms (3.1×; 2.5–3.7× over three runs). The written-out step also beat the plain-PyTorch step of
:mod:`repdyn.bench.reference_dqn` on the same shapes (0.79 vs 1.17 ms: fused Adam, no ``Optimizer.step`` bookkeeping).

Choices: ε is set from the closed-form linear schedule at each batch (``EGreedyModule.step(frames)`` loops once per
frame) on ``egreedy.eps``, which both collectors read. The representation metrics (docs/metrics.md) run on
``metrics.replay_samples`` replay states (:meth:`DQNAgent.representation_data`), the eNTK and the update-rank matrix
on replay samples too (Jansson 2025 §3.3: "1000 data points from the replay buffer"), see
:meth:`DQNAgent.probe_data`.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn
from torch.func import functional_call
from torchrl.data import Categorical, ReplayBuffer
from torchrl.data.replay_buffers.writers import RoundRobinWriter, Writer
from torchrl.modules import EGreedyModule, QValueModule

from repdyn.agents.adam_step import step_all, zero_grads
from repdyn.agents.base import Diverged, UpdateResult, hooks_add_loss
from repdyn.agents.compiled_step import CompiledStep, call
from repdyn.agents.networks import CriticNet, NetworkOutput, body_output, build_body
from repdyn.agents.replay_memory import check_replay_fits, make_storage, storage_tensors, transition_bytes
from repdyn.metrics.ntk import q_reduction

# What a transition needs for TD(0) (and ICM / NTK eviction): nothing else is copied into the replay buffer.
REPLAY_KEYS = (
    "observation",
    "action",
    ("next", "observation"),
    ("next", "reward"),
    ("next", "done"),
    ("next", "terminated"),
)
_SAMPLED_KEYS = ("observation", "action", ("next", "reward"), ("next", "terminated"), ("next", "observation"))
_LOSSES = {"huber": nn.functional.smooth_l1_loss, "l2": nn.functional.mse_loss}
# compiled DQN steps per call (CompiledStep per_step): a 4-env-step batch with one gradient step per env step is one
# call; a longer run of steps is split into calls of at most this many (each new length compiles once)
FUSED_STEPS = 4


def epsilon_at(env_steps: int, eps_init: float, eps_end: float, eps_frames: int) -> float:
    """Linear ε schedule: ``eps_init`` at step 0 down to ``eps_end`` at ``eps_frames`` env steps, then constant."""
    if eps_frames <= 0:
        return eps_end
    frac = min(1.0, env_steps / eps_frames)
    return eps_init + frac * (eps_end - eps_init)


def td_target(
    reward: torch.Tensor,
    terminated: torch.Tensor,
    q_next_target: torch.Tensor,
    gamma: float,
    q_next_online: torch.Tensor | None = None,
) -> torch.Tensor:
    """TD(0) target y = r + γ (1 − terminated) Q_target(s', a*) of DQN (Mnih et al. 2015): a* = argmax_a
    Q_target(s', a), or argmax_a Q(s', a) of the online network when its values ``q_next_online`` are given (double
    DQN, van Hasselt et al. 2016). ``reward``, ``terminated`` [B]; Q-values [B, n_actions]."""
    if q_next_online is None:
        q_next = q_next_target.max(-1).values
    else:
        q_next = q_next_target.gather(-1, q_next_online.argmax(-1, keepdim=True)).squeeze(-1)
    return reward + gamma * (~terminated).to(reward.dtype) * q_next


@dataclass(frozen=True)
class _Settings:
    """The ``agent.*`` values the update reads, as plain Python values: every OmegaConf attribute read is several µs
    of Python (type checks, node resolution), a few dozen per update on the hot path otherwise."""

    eps_init: float
    eps_end: float
    eps_frames: int
    learning_starts: int
    replay_ratio: float
    minibatch_size: int
    max_grad_norm: float
    gamma: float
    double_dqn: bool
    hard_target: bool
    target_update_interval: int
    tau: float

    @classmethod
    def of(cls, a: Any) -> _Settings:
        return cls(
            float(a.eps_init), float(a.eps_end), int(a.eps_frames), int(a.learning_starts), float(a.replay_ratio),
            int(a.minibatch_size), float(a.max_grad_norm), float(a.gamma), bool(a.double_dqn),
            a.target_update == "hard", int(a.target_update_interval), float(a.tau),
        )  # fmt: skip


class ReplayTensors(NamedTuple):
    """The replay's columns as plain tensors over all storage rows (:func:`storage_tensors`), rewards and terminal flags
    flattened to one value per row, and ``size`` = the number of stored transitions (valid rows ``0 … size − 1``)."""

    observation: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    terminated: torch.Tensor
    next_observation: torch.Tensor
    size: int


class DQNAgent:
    """ε-greedy DQN with one Q-network ``qnet`` (model contract: MLP or Nature CNN), its target copy ``target_qnet``
    and its own fused Adam."""

    on_policy = False  # a batch is a few env steps with one gradient step each; the replay is too big to copy per batch

    def __init__(
        self,
        acfg: Any,
        model_cfg: Any,
        env: Any,
        *,
        ntk_q_reduction: str = "max",
        update_rank_q_reduction: str = "max",
        compile_step: bool = False,
        nan_at_step: int | None = None,
    ) -> None:
        """``acfg``: the ``agent`` section (DQNConfig), ``model_cfg``: the ``model`` section; the Q reductions of the
        eNTK and update-rank views (``metrics.ntk_q_reduction`` / ``metrics.update_rank_q_reduction``);
        ``compile_step``: take the compiled gradient step (``train.compile``, repdyn.agents.compiled_step) where it
        applies; ``nan_at_step``: test-only, poison the loss once env steps reach it."""
        self.acfg, self.activation = acfg, model_cfg.activation
        self.q_reductions = {"ntk": ntk_q_reduction, "update_rank": update_rank_q_reduction}
        a = self.acfg
        self._s = _Settings.of(a)
        spec = env.action_spec
        if spec.domain != "discrete":
            raise ValueError(f"agent=dqn needs discrete actions; this env has {spec.domain} actions")
        self.continuous = False
        self.n_actions = int(spec.space.n)
        # Unbatched spec: the exploration module then works for any number of envs (e.g. the capacity-probe rollout).
        self.action_spec = Categorical(self.n_actions, dtype=spec.dtype)
        obs_shape = tuple(env.observation_spec["observation"].shape[len(env.batch_size) :])
        self.qnet = CriticNet(build_body(model_cfg, obs_shape, self.n_actions, 1.0))
        qmod = TensorDictModule(NetworkOutput(self.qnet), in_keys=["observation"], out_keys=["action_value"])
        self.actor = TensorDictSequential(
            qmod, QValueModule(action_space="categorical", action_value_key="action_value")
        )
        self.egreedy = EGreedyModule(self.action_spec, a.eps_init, a.eps_end, max(1, a.eps_frames))
        self.policy = TensorDictSequential(self.actor, self.egreedy)
        # The target network: written only by update_target (and load_state_dict), never by the optimizer.
        self.target_qnet = copy.deepcopy(self.qnet).requires_grad_(False)
        self.target_steps = 0  # update_target calls so far (one per gradient step)
        self._td_loss_fn = _LOSSES[a.loss]
        # fused: one kernel per Adam step, as PPO's (agents/ppo.py); stepped through adam_step.step_all
        self.optimizers: dict[str, torch.optim.Optimizer] = {
            "qnet": torch.optim.Adam(self.qnet.parameters(), lr=a.lr, betas=tuple(a.betas), eps=a.adam_eps, fused=True)
        }
        self.networks: dict[str, nn.Module] = {"qnet": self.qnet}
        self.obs_shape = obs_shape
        self.replay_dir = Path(a.replay_dir) if a.replay_dir is not None else None
        obs_spec = env.observation_spec["observation"]
        self.next_last_frame = a.replay_next_obs == "last_frame"
        check_replay_fits(
            a.buffer_size,
            transition_bytes(obs_shape, obs_spec.dtype.itemsize, self.next_last_frame),
            a.replay_storage,
            self.replay_dir or Path.cwd(),
        )
        self.buffer = self.make_replay(a.buffer_size)
        self.grad_credit = 0.0
        self.grad_steps = 0
        self.nan_at_step = nan_at_step
        loss, target_update = self._compiled_loss, self._compiled_target_update
        self.compiled = CompiledStep(loss, self._s.max_grad_norm, target_update) if compile_step else None

    def act(self, obs: torch.Tensor) -> dict[Any, torch.Tensor]:
        """The ε-greedy collector policy on plain tensors (for :class:`repdyn.lean_collector.LeanCollector`): the keys
        and random draws of :attr:`policy` (greedy action, then a uniform coin and a uniform action per env). The
        Q-network's representations are not kept per step: the metrics evaluate them on replay samples.
        Runs inside the collector's ``torch.inference_mode``, so no grad-mode decorator of its own (its enter/exit
        costs ~5 µs per env step)."""
        q = body_output(self.qnet.body, obs)
        greedy = q.argmax(-1)
        explore = torch.rand(greedy.shape) < self.egreedy.eps
        action = torch.where(explore, torch.randint(0, self.n_actions, greedy.shape), greedy)
        return {"action_value": q, "action": action, "chosen_action_value": q.gather(-1, greedy.unsqueeze(-1))}

    # --- replay ---------------------------------------------------------------------------------------------
    def make_replay(self, capacity: int, writer: Writer | None = None) -> ReplayBuffer:
        """Uniform replay of ``capacity`` transitions; ``writer`` decides the slot of each new one (FIFO default).
        The training loop samples it through :meth:`replay_tensors`; ``sample()`` still works (same distribution)."""
        return ReplayBuffer(
            storage=make_storage(capacity, self.acfg.replay_storage, self.replay_dir),
            writer=writer if writer is not None else RoundRobinWriter(),
            batch_size=self.acfg.minibatch_size,
        )

    def replace_replay(self, capacity: int, writer: Writer | None = None) -> None:
        """Swap in a new, empty replay buffer (the ``ntk_eviction`` intervention's hook point)."""
        self.buffer = self.make_replay(capacity, writer)

    @torch.no_grad()
    def process_batch(self, batch: TensorDict) -> None:
        """Insert the batch's transitions (rewards as left by the ``on_batch_collected`` hooks) into the replay."""
        data = batch.select(*REPLAY_KEYS).reshape(-1)  # views: the storage copies the rows in
        if self.next_last_frame:
            data = self._drop_shared_frames(data)
        self.buffer.extend(data)

    @staticmethod
    def _drop_shared_frames(data: TensorDict) -> TensorDict:
        """``agent.replay_next_obs=last_frame``: a frame stack's next observation is the observation shifted by one
        frame plus a new one (also at episode ends: the final observation is that episode's next stack), so only the
        new frame is stored — 35 instead of 56 KB per ALE transition. Checked on every insert: a batch that breaks
        the shift raises instead of being stored wrong."""
        obs, nxt = data["observation"], data["next", "observation"]
        if not torch.equal(nxt[:, :-1], obs[:, 1:]):
            raise RuntimeError("agent.replay_next_obs=last_frame: a next observation is not the shifted frame stack")
        data.set(("next", "observation"), nxt[:, -1:].clone())
        return data

    def _with_next_obs(self, data: TensorDict) -> TensorDict:
        """Stored transitions as the loss reads them: the full next frame stack rebuilt when only its newest frame
        is stored (see :meth:`_drop_shared_frames`)."""
        if self.next_last_frame and data["next", "observation"].shape[1] == 1:
            data.set(("next", "observation"), torch.cat([data["observation"][:, 1:], data["next", "observation"]], 1))
        return data

    def replay_tensors(self) -> ReplayTensors:
        """The replay as plain tensors for :meth:`gradient_step` (views of the storage, no copy; valid until the
        next insertion or checkpoint load)."""
        obs, action, reward, terminated, next_obs = storage_tensors(self.buffer.storage, _SAMPLED_KEYS)
        rows = obs.shape[0]
        return ReplayTensors(
            obs, action.reshape(rows), reward.reshape(rows), terminated.reshape(rows), next_obs, len(self.buffer)
        )

    # --- update ---------------------------------------------------------------------------------------------
    def update(self, batch: TensorDict, env_steps: int, hooks: Any) -> UpdateResult:
        """``replay_ratio`` gradient steps per collected env step on uniform replay minibatches; sets the ε of the
        next collection from the schedule."""
        a = self._s
        eps = epsilon_at(env_steps, a.eps_init, a.eps_end, a.eps_frames)
        self.egreedy.eps.fill_(eps)
        if len(self.buffer) >= max(a.learning_starts, a.minibatch_size):
            self.grad_credit += batch.numel() * a.replay_ratio
        n_steps = int(self.grad_credit)
        self.grad_credit -= n_steps
        scalars: dict[str, float] = {}
        if n_steps > 0:
            replay = self.replay_tensors()
            poison = self.nan_at_step is not None and env_steps >= self.nan_at_step
            extra_hooks = hooks if hooks_add_loss(hooks) else None
            rows, extra_sums = [], {}
            done = 0
            if self.compiled is not None and extra_hooks is None and not poison:
                while done < n_steps:  # compiled: up to FUSED_STEPS steps per call
                    fused = self.fused_steps(replay, min(FUSED_STEPS, n_steps - done))
                    if fused is None:
                        break
                    rows.append(fused)
                    done += fused.shape[0]
            for _ in range(n_steps - done):
                row, extras = self.gradient_step(replay, extra_hooks, poison)
                poison = False
                rows.append(row.unsqueeze(0))
                for k, v in extras.items():
                    extra_sums[k] = extra_sums.get(k, 0.0) + v
            # one stacked row per step, summed once (as PPO's update), instead of scalar adds per step
            td_mean, gn_mean = (torch.cat(rows).sum(0) / n_steps).tolist()
            scalars["loss/td"] = td_mean
            scalars.update({f"loss/{k}": float(v) / n_steps for k, v in extra_sums.items()})
            scalars["opt/qnet/grad_norm"] = gn_mean
        self.grad_steps += n_steps
        scalars.update(
            {
                "dqn/epsilon": eps,
                "dqn/gradient_steps": float(self.grad_steps),
                "dqn/replay_size": float(len(self.buffer)),
                "opt/qnet/lr": self.optimizers["qnet"].param_groups[0]["lr"],
            }
        )
        writer_stats = getattr(self.buffer.writer, "stats", None)
        if callable(writer_stats):
            scalars.update(writer_stats())
        return UpdateResult(scalars)

    def fused_steps(self, replay: ReplayTensors, n: int) -> torch.Tensor | None:
        """``n`` compiled TD(0) steps in one call (:class:`CompiledStep` ``per_step``), each on its own uniform
        minibatch of ``replay`` and followed by its target update in the same graph; the minibatch indices are drawn
        at once, the same draws as ``n`` calls of :meth:`gradient_step` (a CPU ``randint`` of [n, B] fills its rows
        in order). Returns [n, 2] (TD loss, gradient norm before clipping), or None when the compiled step does not
        apply (nothing was drawn or changed). Raises ``Diverged`` at a non-finite step: the steps before it are
        kept, as in the eager loop."""
        nets, opts = self._trained()
        if next(self.target_qnet.buffers(), None) is not None:  # the in-graph target update copies parameters only
            return None
        if not self.compiled.applies(nets, opts):
            return None
        idx = torch.randint(replay.size, (n, self._s.minibatch_size))
        target = dict(self.target_qnet.named_parameters())
        steps = torch.tensor(self.target_steps)
        losses, norms, _ = self.compiled.run(nets, opts, target, steps, *replay[:5], per_step=(idx,))
        rows = torch.stack([losses, norms[:, 0]], 1)
        finite = torch.isfinite(rows).all(1)
        if not bool(finite.all()):  # one check on the common path; the step and the name only on failure
            j = int((~finite).nonzero()[0, 0])
            self.target_steps += j
            raise Diverged("loss/td" if not math.isfinite(float(losses[j])) else "opt/qnet/grad_norm")
        self.target_steps += n
        return rows

    def _compiled_target_update(
        self, ok: torch.Tensor, j: int, flat_params: dict[str, list[torch.Tensor]], target: dict, steps: torch.Tensor,
        *columns: torch.Tensor,
    ) -> None:  # fmt: skip
        """:meth:`update_target` inside the compiled graph after fused step ``j`` (``steps``: the updates before the
        call), applied only where the step applied (``ok``)."""
        a = self._s
        for t, p in zip(target.values(), flat_params["qnet"], strict=True):
            if a.hard_target:
                copy = ok & ((steps + j + 1) % a.target_update_interval == 0)
                t.copy_(torch.where(copy, p, t))
            else:
                t.copy_(torch.where(ok, t + a.tau * (p - t), t))

    def gradient_step(
        self, replay: ReplayTensors, hooks: Any = None, poison: bool = False
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One eager TD(0) step on a fresh uniform minibatch of ``replay``: loss, backward, clip, Adam, target
        update. ``hooks`` (only when an intervention adds a loss term) get the minibatch as a TensorDict and the
        Q-network's outputs; ``poison`` multiplies the loss by NaN (``debug.inject_nan_at_step``). Returns the stacked
        [TD loss, gradient norm before clipping] and the extra loss terms, all detached. (The compiled steps are
        :meth:`fused_steps`.)"""
        a = self._s
        idx = torch.randint(replay.size, (a.minibatch_size,))
        mb = self._minibatch(*replay[:5], idx)
        loss = self.td_loss(*mb)
        td = loss.detach()
        extras: dict[str, torch.Tensor] = {}
        if hooks is not None:  # one more forward only when an intervention asks for the Q-network's outputs
            mb = self._with_next_obs(self.buffer.storage.get(idx))
            for k, v in hooks.extra_loss(mb, {"qnet": self.qnet(mb["observation"])}).items():
                loss = loss + v
                extras[k] = v.detach()
        if poison:
            loss = loss * float("nan")
        if not math.isfinite(loss.item()):
            raise Diverged("loss/td")
        opts = self.optimizers.values()
        zero_grads(opts)
        loss.backward()
        params = [p for g in self.optimizers["qnet"].param_groups for p in g["params"]]
        gn = nn.utils.clip_grad_norm_(params, a.max_grad_norm, foreach=True)
        if not math.isfinite(gn.item()):
            raise Diverged("opt/qnet/grad_norm")
        step_all(opts)
        self.update_target()
        return torch.stack([td, gn]), extras

    def td_loss(
        self,
        obs: torch.Tensor,
        action: torch.Tensor,
        reward: torch.Tensor,
        terminated: torch.Tensor,
        next_obs: torch.Tensor,
    ) -> torch.Tensor:
        """Mean Huber / L2 loss between Q(s, a) and the TD target (:meth:`_td_target`) over a minibatch of plain
        tensors: ``action`` [B] (integer), ``reward`` and ``terminated`` [B]."""
        q = body_output(self.qnet.body, obs)  # the Q-values alone (CriticNet.forward also concatenates pre-activations)
        q_sa = q.gather(-1, action.long().unsqueeze(-1)).squeeze(-1)
        return self._td_loss_fn(q_sa, self._td_target(reward, terminated, next_obs))

    def _minibatch(
        self,
        observation: torch.Tensor,
        action: torch.Tensor,
        reward: torch.Tensor,
        terminated: torch.Tensor,
        next_observation: torch.Tensor,
        idx: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        """Rows ``idx`` of the replay's columns (:class:`ReplayTensors`), the next frame stack rebuilt when only its
        newest frame is stored: (obs, action, reward, terminated, next_obs), as :meth:`td_loss` takes them."""
        obs, next_obs = observation[idx], next_observation[idx]
        if self.next_last_frame and next_obs.shape[1] == 1:
            next_obs = torch.cat([obs[:, 1:], next_obs], 1)
        return obs, action[idx], reward[idx], terminated[idx], next_obs

    def _compiled_loss(
        self,
        params: dict[str, dict[str, torch.Tensor]],
        target: dict[str, torch.Tensor],
        steps: torch.Tensor,
        *columns: torch.Tensor,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """:meth:`td_loss` on the minibatch ``idx`` of the replay's columns (the last argument) as a function of the
        Q-network's parameters, the target network's parameters ``target`` given as tensors (updated in the graph
        between fused steps), for :class:`CompiledStep` (``steps`` is read by the target update only)."""
        obs, action, reward, terminated, next_obs = self._minibatch(*columns)
        q = call(self.qnet, params["qnet"], obs)[0]
        q_sa = q.gather(-1, action.long().unsqueeze(-1)).squeeze(-1)
        with torch.no_grad():
            q_online = call(self.qnet, params["qnet"], next_obs)[0] if self._s.double_dqn else None
            y = td_target(reward, terminated, call(self.target_qnet, target, next_obs)[0], self._s.gamma, q_online)
        return self._td_loss_fn(q_sa, y), ()

    def _trained(self) -> tuple[dict[str, nn.Module], dict[str, torch.optim.Optimizer]]:
        """(networks, optimizers) as the compiled step sees them."""
        return {"qnet": self.qnet}, dict(self.optimizers)

    @torch.no_grad()
    def _td_target(self, reward: torch.Tensor, terminated: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """y = r + γ (1 − terminated) Q_target(s', a*), a* = argmax_a Q_target(s', a) (or argmax_a Q(s', a) for
        double DQN); ``reward``, ``terminated`` [B]."""
        q_online = body_output(self.qnet.body, next_obs) if self._s.double_dqn else None
        return td_target(reward, terminated, body_output(self.target_qnet.body, next_obs), self._s.gamma, q_online)

    @torch.no_grad()
    def update_target(self) -> None:
        """The target network's part of one gradient step: a hard copy of ``qnet`` on every
        ``target_update_interval``-th call (calls interval, 2·interval, …), or θ' ← θ' + τ (θ − θ') on every call
        (``torch.lerp``, as torchrl's ``SoftUpdate``)."""
        self.target_steps += 1
        a = self._s
        if a.hard_target:
            if self.target_steps % a.target_update_interval == 0:
                torch._foreach_copy_(
                    [*self.target_qnet.parameters(), *self.target_qnet.buffers()],
                    [*self.qnet.parameters(), *self.qnet.buffers()],
                )
            return
        torch._foreach_lerp_(list(self.target_qnet.parameters()), list(self.qnet.parameters()), a.tau)
        for t, s in zip(self.target_qnet.buffers(), self.qnet.buffers(), strict=True):
            t.lerp_(s, a.tau) if t.is_floating_point() else t.copy_(s)  # e.g. BatchNorm statistics / its count

    # --- TD targets (for metrics: the targets the training loss regresses on) -----------------------------------
    @torch.no_grad()
    def td_targets(self, td: TensorDict) -> torch.Tensor:
        """y = r + γ (1 − terminated) Q_target(s', a*) with a* = argmax_a Q_target(s', a), or argmax_a Q(s', a) for
        double DQN: the targets :meth:`td_loss` regresses on (same target network), shape [n]."""
        r = td["next", "reward"].reshape(-1)
        return self._td_target(r, td["next", "terminated"].reshape(-1), td["next", "observation"])

    # --- metric views (used by repdyn.metrics.scheduled) ----------------------------------------------------
    def rollout_outputs(self, flat: TensorDict, net: str) -> tuple[torch.Tensor, ...]:
        """Q-values and representations of ``qnet`` on ``flat`` (replay samples, or the first collected batch while
        the replay is empty): one forward pass under the current (pre-update) network; neither the replay nor the
        collector keeps them."""
        return self.networks[net](flat["observation"])

    def metric_kwargs(self, net: str, outs: tuple[torch.Tensor, ...]) -> dict[str, Any]:
        """``value_mean``/``value_std`` of V(s) = max_a Q(s, a)."""
        return {"values": outs[0].max(-1).values}

    def representation_data(self, batch: TensorDict, n: int, generator: torch.Generator) -> TensorDict:
        """``n`` replay transitions drawn uniformly without replacement (all if fewer; the collected batch while the
        buffer is empty): the sample of the representation metrics, as Lyle et al. 2022 measure feature rank on
        replay; the collected batch is only a few env steps for DQN."""
        size = len(self.buffer)
        if size == 0:
            return batch.select(*REPLAY_KEYS).reshape(-1)
        return self._with_next_obs(self.buffer.storage.get(torch.randperm(size, generator=generator)[:n]))

    def probe_data(self, batch: TensorDict, n: int, generator: torch.Generator) -> TensorDict:
        """:meth:`representation_data` with the TD targets as ``value_target`` (the y of kernel alignment): the eNTK /
        update-rank sample of Jansson 2025 §3.3 ("1000 data points from the replay buffer")."""
        flat = self.representation_data(batch, n, generator).clone()
        flat.set("value_target", self.td_targets(flat).unsqueeze(-1))
        return flat

    def ntk_views(self) -> dict[str, tuple[nn.Module, Any]]:
        """The Q-network for the empirical NTK, reduced per sample by ``metrics.ntk_q_reduction`` (max | mean)."""
        kind = self.q_reductions["ntk"]
        if kind == "taken":
            raise ValueError("metrics.ntk_q_reduction='taken' is not supported for agent=dqn; use 'max' or 'mean'")
        return {"qnet": (self.qnet, q_reduction(kind))}

    def update_rank_views(self, flat: TensorDict) -> dict[str, dict[str, Any]]:
        """One-sample TD losses (the training loss function on Q(s, a) vs the frozen TD target) for the update
        matrix; output Q reduced by ``metrics.update_rank_q_reduction`` (max over actions by default).
        Gradient clipping is not part of the probed step (the functional step is Adam's update alone)."""
        targets = self.td_targets(flat)
        huber = self.acfg.loss == "huber"

        def td_loss(params: dict, buffers: dict, sample: dict) -> torch.Tensor:
            q = functional_call(self.qnet, (params, buffers), (sample["obs"].unsqueeze(0),))[0][0]
            err = q.gather(-1, sample["action"].reshape(1)).squeeze(-1) - sample["target"]
            return nn.functional.smooth_l1_loss(err, torch.zeros_like(err)) if huber else err.square()

        kind = self.q_reductions["update_rank"]
        return {
            "qnet": {
                "model": self.qnet,
                "loss_fn": td_loss,
                "optimizer": self.optimizers["qnet"],
                "batch": {"obs": flat["observation"], "action": flat["action"].long(), "target": targets},
                "output": f"q_{kind}",
            }
        }

    def capacity_kinds(self) -> dict[str, str]:
        """Capacity probe (Lyle et al. 2022; docs/metrics.md): fit all Q-values to a random target network's (L2)."""
        return {"qnet": "critic"}

    # --- checkpoint -----------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = {
            "qnet": self.qnet.state_dict(),
            "target_qnet": self.target_qnet.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "egreedy": self.egreedy.state_dict(),
            "target_steps": self.target_steps,
            "grad_credit": self.grad_credit,
            "grad_steps": self.grad_steps,
        }
        if self.acfg.checkpoint_replay:
            state["replay"] = self.buffer.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "target_qnet" not in state:
            raise ValueError(
                "this DQN checkpoint was written by the DQNLoss-based agent (target network inside 'loss'); "
                "it cannot be resumed by this version (separate target_qnet) — start the run again"
            )
        self.qnet.load_state_dict(state["qnet"])
        self.target_qnet.load_state_dict(state["target_qnet"])
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        self.egreedy.load_state_dict(state["egreedy"])
        self.target_steps = state["target_steps"]
        self.grad_credit, self.grad_steps = state["grad_credit"], state["grad_steps"]
        if "replay" in state:
            self.buffer.load_state_dict(state["replay"])
