"""DQN (Mnih et al. 2015) on torchrl parts: ``DQNLoss`` (TD(0) targets from a delayed target network), ``HardUpdate`` /
``SoftUpdate``, a uniform ``ReplayBuffer`` on ``LazyTensorStorage`` and ε-greedy exploration via ``EGreedyModule``.

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

Cost of torchrl's loss: ``python -m repdyn.bench dqn`` measured a DQNLoss + HardUpdate step at 1.7× a hand-written
TD(0) step on the 2×64 net (1.27 vs 0.74 ms, minibatch 128) — about 0.5 ms per gradient step, negligible next to
the Nature CNN; kept for its target-network handling, double DQN and value estimators.

Choices: ε is set from the closed-form linear schedule at each batch (``EGreedyModule.step(frames)`` loops once per
frame); torchrl's ``HardUpdate`` copies on every (interval + 1)-th call of ``step()``, so it gets ``interval − 1``
and ``target_update_interval`` means what it says (tested). The representation metrics (docs/metrics.md) run on
``metrics.replay_samples`` replay states (:meth:`DQNAgent.representation_data`), the eNTK and the update-rank matrix
on replay samples too (Jansson 2025 §3.3: "1000 data points from the replay buffer"), see
:meth:`DQNAgent.probe_data`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn
from torch.func import functional_call
from torchrl.data import Categorical, ReplayBuffer
from torchrl.data.replay_buffers.writers import RoundRobinWriter, Writer
from torchrl.modules import EGreedyModule, QValueModule
from torchrl.objectives import DQNLoss, HardUpdate, SoftUpdate

from repdyn.agents.networks import CriticNet, build_body, rep_keys
from repdyn.agents.ppo import Diverged, UpdateResult
from repdyn.agents.replay_memory import check_replay_fits, make_storage, transition_bytes
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
_LOSSES = {"huber": "smooth_l1", "l2": "l2"}


def epsilon_at(env_steps: int, eps_init: float, eps_end: float, eps_frames: int) -> float:
    """Linear ε schedule: ``eps_init`` at step 0 down to ``eps_end`` at ``eps_frames`` env steps, then constant."""
    if eps_frames <= 0:
        return eps_end
    frac = min(1.0, env_steps / eps_frames)
    return eps_init + frac * (eps_end - eps_init)


class DQNAgent:
    """ε-greedy DQN with one Q-network ``qnet`` (model contract: MLP or Nature CNN) and its own Adam."""

    def __init__(self, cfg: Any, env: Any) -> None:
        self.cfg, self.acfg = cfg, cfg.agent
        a = self.acfg
        spec = env.action_spec
        if spec.domain != "discrete":
            raise ValueError(f"agent=dqn needs discrete actions; env.id={cfg.env.id} has {spec.domain} actions")
        self.continuous = False
        self.n_actions = int(spec.space.n)
        # Unbatched spec: the exploration module then works for any number of envs (e.g. the capacity-probe rollout).
        self.action_spec = Categorical(self.n_actions, dtype=spec.dtype)
        obs_shape = tuple(env.observation_spec["observation"].shape[len(env.batch_size) :])
        self.qnet = CriticNet(build_body(cfg.model, obs_shape, self.n_actions, 1.0))
        qmod = TensorDictModule(self.qnet, in_keys=["observation"], out_keys=["action_value", *rep_keys("qnet")])
        self.actor = TensorDictSequential(
            qmod, QValueModule(action_space="categorical", action_value_key="action_value")
        )
        self.egreedy = EGreedyModule(self.action_spec, a.eps_init, a.eps_end, max(1, a.eps_frames))
        self.policy = TensorDictSequential(self.actor, self.egreedy)
        self.loss = DQNLoss(
            self.actor, loss_function=_LOSSES[a.loss], delay_value=True, double_dqn=a.double_dqn,
            action_space="categorical",
        )  # fmt: skip
        self.loss.make_value_estimator(gamma=a.gamma)
        if a.target_update == "hard":
            self.target_updater: HardUpdate | SoftUpdate = HardUpdate(
                self.loss, value_network_update_interval=a.target_update_interval - 1
            )
        else:
            self.target_updater = SoftUpdate(self.loss, tau=a.tau)
        self.optimizers: dict[str, torch.optim.Optimizer] = {
            "qnet": torch.optim.Adam(self.qnet.parameters(), lr=a.lr, betas=tuple(a.betas), eps=a.adam_eps)
        }
        self.networks: dict[str, nn.Module] = {"qnet": self.qnet}
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
        self.nan_at_step: int | None = cfg.debug.inject_nan_at_step
        self._uses_extra_loss: bool | None = None

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> dict[Any, torch.Tensor]:
        """The ε-greedy collector policy on plain tensors (for :class:`repdyn.lean_collector.LeanCollector`): the keys
        and random draws of :attr:`policy` (greedy action, then a uniform coin and a uniform action per env)."""
        q, *reps = self.qnet(obs)
        greedy = q.argmax(-1)
        explore = torch.rand(greedy.shape) < self.egreedy.eps
        action = torch.where(explore, torch.randint(0, self.n_actions, greedy.shape), greedy)
        return {
            "action_value": q,
            **dict(zip(rep_keys("qnet"), reps, strict=True)),
            "action": action,
            "chosen_action_value": q.gather(-1, greedy.unsqueeze(-1)),
        }

    # --- replay ---------------------------------------------------------------------------------------------
    def make_replay(self, capacity: int, writer: Writer | None = None) -> ReplayBuffer:
        """Uniform replay of ``capacity`` transitions; ``writer`` decides the slot of each new one (FIFO default)."""
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
        data = batch.select(*REPLAY_KEYS).reshape(-1).clone()
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

    # --- update ---------------------------------------------------------------------------------------------
    def _hooks_add_loss(self, hooks: Any) -> bool:
        from repdyn.interventions import Intervention

        if self._uses_extra_loss is None:
            items = getattr(hooks, "items", [])
            self._uses_extra_loss = any(type(i).extra_loss is not Intervention.extra_loss for i in items)
        return self._uses_extra_loss

    def update(self, batch: TensorDict, env_steps: int, hooks: Any) -> UpdateResult:
        """``replay_ratio`` gradient steps per collected env step on uniform replay minibatches; sets the ε of the
        next collection from the schedule."""
        a = self.acfg
        eps = epsilon_at(env_steps, a.eps_init, a.eps_end, a.eps_frames)
        self.egreedy.eps.fill_(eps)
        if len(self.buffer) >= max(a.learning_starts, a.minibatch_size):
            self.grad_credit += batch.numel() * a.replay_ratio
        n_steps = int(self.grad_credit)
        self.grad_credit -= n_steps
        opt = self.optimizers["qnet"]
        poison = self.nan_at_step is not None and env_steps >= self.nan_at_step
        extra_loss = self._hooks_add_loss(hooks)
        sums: dict[str, torch.Tensor] = {}
        for _ in range(n_steps):
            mb = self._with_next_obs(self.buffer.sample())
            loss = self.loss(mb)["loss"]
            stats = {"loss/td": loss.detach()}
            if extra_loss:  # one more forward only when an intervention asks for the Q-network's outputs
                for k, v in hooks.extra_loss(mb, {"qnet": self.qnet(mb["observation"])}).items():
                    loss = loss + v
                    stats[f"loss/{k}"] = v.detach()
            if poison:
                loss = loss * float("nan")
                poison = False
            if not torch.isfinite(loss):
                raise Diverged("loss/td")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            gn = nn.utils.clip_grad_norm_(self.qnet.parameters(), a.max_grad_norm)
            if not torch.isfinite(gn):
                raise Diverged("opt/qnet/grad_norm")
            opt.step()
            self.target_updater.step()
            stats["opt/qnet/grad_norm"] = gn
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + v
        self.grad_steps += n_steps
        scalars = {k: float(v) / n_steps for k, v in sums.items()}
        scalars.update(
            {
                "dqn/epsilon": eps,
                "dqn/gradient_steps": float(self.grad_steps),
                "dqn/replay_size": float(len(self.buffer)),
                "opt/qnet/lr": opt.param_groups[0]["lr"],
            }
        )
        writer_stats = getattr(self.buffer._writer, "stats", None)
        if callable(writer_stats):
            scalars.update(writer_stats())
        return UpdateResult(scalars)

    # --- TD targets (for metrics; the training loss is DQNLoss) ------------------------------------------------
    @torch.no_grad()
    def td_targets(self, td: TensorDict) -> torch.Tensor:
        """y = r + γ (1 − terminated) Q_target(s', a*) with a* = argmax_a Q_target(s', a), or argmax_a Q(s', a) for
        double DQN: the targets ``DQNLoss`` regresses on (same target parameters), shape [n]."""
        next_obs = td["next", "observation"]
        with self.loss.target_value_network_params.to_module(self.loss.value_network):
            q_next_target = self.qnet(next_obs)[0]
        if self.acfg.double_dqn:
            a_star = self.qnet(next_obs)[0].argmax(-1, keepdim=True)
            q_next = q_next_target.gather(-1, a_star).squeeze(-1)
        else:
            q_next = q_next_target.max(-1).values
        r = td["next", "reward"].reshape(-1)
        not_term = (~td["next", "terminated"]).reshape(-1).to(r.dtype)
        return r + self.acfg.gamma * not_term * q_next

    # --- metric views (used by repdyn.monitor) ---------------------------------------------------------------
    def rollout_outputs(self, flat: TensorDict, net: str) -> tuple[torch.Tensor, ...]:
        """The collector's stored Q-values and representations of ``qnet`` (no recomputation); replay samples do not
        store them (see ``REPLAY_KEYS``), so those get one forward pass under the current (pre-update) network."""
        if (net, "features") not in flat.keys(include_nested=True):
            return self.networks[net](flat["observation"])
        return (flat["action_value"], flat[net, "features"], flat[net, "preact"], flat[net, "preacts_all"])

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
        kind = self.cfg.metrics.ntk_q_reduction
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

        kind = self.cfg.metrics.update_rank_q_reduction
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
            "loss": self.loss.state_dict(),  # online and target parameters
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "egreedy": self.egreedy.state_dict(),
            "target_counter": getattr(self.target_updater, "counter", None),
            "grad_credit": self.grad_credit,
            "grad_steps": self.grad_steps,
        }
        if self.acfg.checkpoint_replay:
            state["replay"] = self.buffer.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.qnet.load_state_dict(state["qnet"])
        self.loss.load_state_dict(state["loss"])
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        self.egreedy.load_state_dict(state["egreedy"])
        if state["target_counter"] is not None:
            self.target_updater.counter = state["target_counter"]
        self.grad_credit, self.grad_steps = state["grad_credit"], state["grad_steps"]
        if "replay" in state:
            self.buffer.load_state_dict(state["replay"])
