"""PPO-Clip (Moalla et al. 2024 §2, App. B, arXiv:2405.00662) on torchrl parts: collector policy, GAE, replay buffer.

The update loop is written out here instead of using ``torchrl.objectives.ClipPPOLoss`` because the paper's metrics need
per-sample probability ratios of every minibatch of every epoch and the actor's pre-activations under θ for
PFO from the same forward pass; ClipPPOLoss returns neither. The surrogate itself is
:func:`repdyn.agents.losses.ppo_clip_objective`, shared with the theory toy. ``python -m repdyn.bench ppo`` measures
this update against ClipPPOLoss on the same batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from tensordict import TensorDict
from torch import nn
from torchrl.objectives.value.functional import vec_generalized_advantage_estimate

from repdyn.agents.adam_step import step_all, zero_grads
from repdyn.agents.base import Diverged, UpdateResult, hooks_add_loss
from repdyn.agents.compiled_step import CompiledStep, call
from repdyn.agents.distributions import (
    categorical_entropy,
    categorical_log_prob,
    categorical_sample,
    tanh_normal_entropy_mc,
    tanh_normal_log_prob,
    tanh_normal_sample,
)
from repdyn.agents.losses import ppo_clip_objective
from repdyn.agents.networks import ActorNet, CriticNet, build_body, build_collector_policy, make_dist, rep_keys
from repdyn.metrics.trust_region import trust_region_metrics
from repdyn.models.cnn import frames_to_float

_STEP_STATS = ("loss/policy", "loss/value", "ppo/entropy", "loss/total", "ppo/approx_kl_k1", "ppo/approx_kl_k3")
UPDATE_KEYS = ("observation", "action", "action_log_prob", "advantage", "value_target", "actor", "critic")


@dataclass(frozen=True)
class LossSettings:
    """The loss's hyperparameters (the ``agent`` section's values)."""

    clip_eps: float
    value_coef: float
    entropy_coef: float
    normalize_advantage: bool


class PPOAgent:
    """Separate actor and critic (each its own Adam), TanhNormal or categorical policy (docs/experiments.md)."""

    on_policy = True

    def __init__(
        self,
        acfg: Any,
        model_cfg: Any,
        env: Any,
        *,
        batch_size: int,
        compile_step: bool = False,
        nan_at_step: int | None = None,
    ) -> None:
        """``acfg``: the ``agent`` section (PPOConfig), ``model_cfg``: the ``model`` section, ``batch_size``: env steps
        per collected batch, ``compile_step``: take the compiled minibatch step (``train.compile``,
        repdyn.agents.compiled_step) where it applies, ``nan_at_step``: test-only, poison the loss once env steps
        reach it."""
        self.acfg, self.activation = acfg, model_cfg.activation
        obs_shape = tuple(env.observation_spec["observation"].shape[len(env.batch_size) :])
        spec = env.action_spec
        self.action_spec = spec  # the env's (batched) action spec; interventions read the action space from it
        self.continuous = spec.domain == "continuous"
        act_dim = spec.shape[-1] if self.continuous else int(spec.space.n)
        self.low = spec.space.low[0] if self.continuous else None
        self.high = spec.space.high[0] if self.continuous else None
        # the written-out TanhNormal skips the affine map for the box [-1, 1] (as torchrl's TanhNormal does)
        trivial = self.continuous and bool((self.low == -1).all() and (self.high == 1).all())
        self.box = (None, None) if trivial else (self.low, self.high)
        out_dim = 2 * act_dim if self.continuous else act_dim
        self.actor = ActorNet(build_body(model_cfg, obs_shape, out_dim, 0.01), self.continuous, model_cfg.min_scale)
        self.critic = CriticNet(build_body(model_cfg, obs_shape, 1, 1.0))
        self.policy = build_collector_policy(self.actor, spec)
        self.optimizers: dict[str, torch.optim.Optimizer] = {
            "actor": self._adam(self.actor.parameters()),
            "critic": self._adam(self.critic.parameters()),
        }
        self.networks: dict[str, nn.Module] = {"actor": self.actor, "critic": self.critic}
        self.minibatches_per_epoch = batch_size // self.acfg.minibatch_size
        self.nan_at_step = nan_at_step
        self.obs_shape = obs_shape
        # the batch keys the update's minibatches carry: an intervention whose loss needs more (the aux-task TD heads
        # read ("next", "observation")) adds them in on_agent_built, so the plain update indexes no extra tensors
        self.update_keys: tuple[Any, ...] = UPDATE_KEYS
        # whether the batch keeps π_old's and V_old's representations (PFO sets it in on_agent_built: its loss reads
        # them on every minibatch); without it the metrics evaluate them only on the batches they measure
        self.keep_rollout_reps = False
        # plain values: read on every minibatch (an OmegaConf lookup costs microseconds; compiled code cannot trace it)
        self.loss_settings = LossSettings(acfg.clip_eps, acfg.value_coef, acfg.entropy_coef, acfg.normalize_advantage)
        self.compiled = CompiledStep(self._compiled_loss, acfg.max_grad_norm) if compile_step else None

    def _adam(self, params: Any) -> torch.optim.Adam:
        a = self.acfg
        # fused: one kernel per Adam step (measured 166 us vs 261 foreach vs 506 for the default loop, 2x64 MLP)
        return torch.optim.Adam(params, lr=a.lr, betas=tuple(a.betas), eps=a.adam_eps, fused=True)

    def act(self, obs: torch.Tensor) -> dict[Any, torch.Tensor]:
        """The collector policy on plain tensors (for :class:`repdyn.lean_collector.LeanCollector`): the keys and the
        random draws of :attr:`policy` — :attr:`ActorNet.step_keys` and a sampled action. The rest (the
        log-probability, the critic, the representations where read) is evaluated once per batch in
        :meth:`evaluate_rollout`.
        Runs inside the collector's ``torch.inference_mode``, so no grad-mode decorator of its own (its enter/exit
        costs ~5 µs per env step)."""
        out = self.actor.step_outputs(obs)
        action = tanh_normal_sample(out[0], out[1], *self.box) if self.continuous else categorical_sample(out[0])
        return {**dict(zip(self.actor.step_keys, out, strict=True)), "action": action}

    @torch.no_grad()
    def evaluate_rollout(self, batch: TensorDict) -> None:
        """log π_old(a|s) and V_old(s) of every collected state, and with :attr:`keep_rollout_reps` both networks'
        features and pre-activations, in one pass over the batch instead of one per env step: neither network
        changes during a rollout, so these are the per-step numbers (up to float rounding of a batched matrix
        product), for a fraction of the per-call overhead (the 2-env Hopper rollout spent a third of its
        non-simulator time in such per-step calls). The log-probability is of the per-step distribution parameters
        the actions were drawn from. Sets ``action_log_prob``, ``state_value`` (and ``("actor", ...)``,
        ``("critic", ...)``).

        Image observations go through in chunks of the minibatch size: their float copies and conv activations then
        reuse the memory the update's minibatch steps allocate, instead of fresh ~120 MB buffers every batch."""
        flat_obs = batch["observation"].reshape(-1, *self.obs_shape)
        lead = batch.batch_size
        chunk = self.acfg.minibatch_size if len(self.obs_shape) > 1 else flat_obs.shape[0]
        parts = [self._rollout_pass(flat_obs[i : i + chunk]) for i in range(0, flat_obs.shape[0], chunk)]
        value, *reps = (torch.cat(p) if len(parts) > 1 else p[0] for p in zip(*parts, strict=True))
        batch.set("state_value", value.reshape(*lead, *value.shape[1:]))
        for key, rep in zip([*rep_keys("critic"), *rep_keys("actor")] if reps else [], reps, strict=True):
            batch.set(key, rep.reshape(*lead, *rep.shape[1:]))
        batch.set("action_log_prob", self.log_prob(tuple(batch[k] for k in self.actor.param_keys), batch["action"]))

    def _rollout_pass(self, obs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(V, and with :attr:`keep_rollout_reps` the critic's then the actor's representations) on ``obs``."""
        obs = frames_to_float(obs)  # once for both networks
        if not self.keep_rollout_reps:
            return self.critic.value_output(obs)
        return (*self.critic(obs), *self.actor(obs)[len(self.actor.param_keys) :])

    @torch.no_grad()
    def process_batch(self, batch: TensorDict) -> None:
        """:meth:`evaluate_rollout`, then GAE(γ, λ) on the [num_envs, T] batch, with rewards as left by the
        ``on_batch_collected`` hooks."""
        self.evaluate_rollout(batch)
        adv, target = vec_generalized_advantage_estimate(
            self.acfg.gamma,
            self.acfg.gae_lambda,
            batch["state_value"],
            self.next_values(batch),
            batch["next", "reward"],
            batch["next", "done"],
            batch["next", "terminated"],
        )
        batch.set("advantage", adv)
        batch.set("value_target", target)

    @torch.no_grad()
    def next_values(self, batch: TensorDict) -> torch.Tensor:
        """V(s_{t+1}) for every transition ``[num_envs, T, 1]``: the critic's rollout value of the next state where
        the episode goes on (the same network, as the update has not run yet), a forward pass only for the last
        step and for truncated steps (their next state is the final observation, not a stored one). Terminated steps
        keep the reset state's value, which GAE multiplies by 0. Saves re-running the critic on the whole batch
        (for the Nature CNN a third of the rollout's network compute)."""
        values = batch["state_value"]
        nxt = torch.empty_like(values)
        nxt[:, :-1] = values[:, 1:]
        need = batch["next", "truncated"].squeeze(-1).clone()
        need[:, -1] = True
        nxt[need] = self.critic.value_output(batch["next", "observation"][need])[0]
        return nxt

    def log_prob(self, actor_out: tuple[torch.Tensor, ...], action: torch.Tensor) -> torch.Tensor:
        """log π(action | s) from an actor output (written-out distribution math, see agents/distributions.py)."""
        if self.continuous:
            return tanh_normal_log_prob(action, actor_out[0], actor_out[1], *self.box)
        return categorical_log_prob(actor_out[0], action)

    def entropy(self, actor_out: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Per-state policy entropy: analytic (categorical) or a 1-sample Monte-Carlo estimate (TanhNormal)."""
        if self.continuous:
            return tanh_normal_entropy_mc(actor_out[0], actor_out[1], *self.box)
        return categorical_entropy(actor_out[0])

    def update(self, batch: TensorDict, env_steps: int, hooks: Any) -> UpdateResult:
        """``epochs`` passes of minibatch Adam steps over the batch (minibatches: consecutive slices of a fresh
        permutation each epoch, the last partial one dropped); returns logged scalars and all ratios."""
        a = self.acfg
        flat = batch.select(*self.update_keys, strict=False).reshape(-1)
        # plain tensors looked up once: a TensorDict lookup per minibatch costs more than the arithmetic
        data = (flat["observation"], flat["action"], flat["action_log_prob"], flat["advantage"].squeeze(-1))
        data = (*data, flat["value_target"])
        extra_hooks = hooks if hooks_add_loss(hooks) else None
        size = a.minibatch_size
        ratios, rows, extra_sums = [], [], {}
        poison = self.nan_at_step is not None and env_steps >= self.nan_at_step
        for _ in range(a.epochs):
            perm = torch.randperm(flat.shape[0])
            for i in range(self.minibatches_per_epoch):
                idx = perm[i * size : (i + 1) * size]
                row, ratio, extras, objective = self._minibatch_step(data, idx, flat, extra_hooks, poison)
                poison = False
                ratios.append(ratio)
                rows.append(row)
                for k, v in extras.items():
                    extra_sums[k] = extra_sums.get(k, 0.0) + v.detach()
        return self._update_result(rows, torch.cat(ratios), extra_sums, objective)

    def _loss_terms(
        self,
        actor_out: tuple[torch.Tensor, ...],
        critic_out: tuple[torch.Tensor, ...],
        action: torch.Tensor,
        old_log_prob: torch.Tensor,
        adv: torch.Tensor,
        target: torch.Tensor,
    ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """L = −mean(min(ρA, clip(ρ)A)) + c_v·MSE(V, V_targ) − c_e·H on one minibatch's network outputs. Returns
        (L, the step's statistics in ``_STEP_STATS`` order, the ratios ρ, the per-sample surrogate)."""
        a = self.loss_settings
        log_prob = self.log_prob(actor_out, action)
        if a.normalize_advantage:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        objective, ratio = ppo_clip_objective(log_prob, old_log_prob, adv, a.clip_eps)
        policy_loss = -objective.mean()
        with torch.set_grad_enabled(a.entropy_coef != 0):  # without a bonus it is only logged
            entropy = self.entropy(actor_out).mean()
        value_loss = (critic_out[0] - target).pow(2).mean()
        loss = policy_loss + a.value_coef * value_loss - a.entropy_coef * entropy
        log_ratio = log_prob.detach() - old_log_prob
        kl = [(-log_ratio).mean(), ((log_ratio.exp() - 1) - log_ratio).mean()]
        return loss, [policy_loss, value_loss, entropy, loss, *kl], ratio, objective

    def _compiled_loss(
        self, params: dict[str, dict[str, torch.Tensor]], *data: torch.Tensor
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """:meth:`_loss_terms` on the minibatch ``idx`` (the last argument) of the batch's columns, as a function of
        the networks' parameters, for :class:`CompiledStep` (the gather is part of the compiled graph: one fused
        kernel instead of five indexing calls per step)."""
        *columns, idx = data
        obs, action, old_log_prob, adv, target = (x[idx] for x in columns)
        actor_out = call(self.actor, params["actor"], obs)
        critic_out = call(self.critic, params["critic"], obs)
        loss, stats, ratio, objective = self._loss_terms(actor_out, critic_out, action, old_log_prob, adv, target)
        return loss, (torch.stack([t.detach() for t in stats]), ratio, objective)

    def _minibatch_step(
        self, data: tuple[torch.Tensor, ...], idx: torch.Tensor, flat: TensorDict, hooks: Any, poison: bool
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """One clipped-surrogate Adam step on minibatch ``idx`` (:meth:`_loss_terms`, + intervention losses), compiled
        when it can be. Returns (the step's stacked statistics, its ratios ρ, the intervention losses, the surrogate
        objective)."""
        done = (
            self.compiled(*self._trained(), *data, idx)
            if self.compiled is not None and hooks is None and not poison
            else None
        )
        if done is not None:
            loss, norms, (stats, ratio, objective) = done
            row = torch.cat([stats, norms])
            if not torch.isfinite(row).all():
                raise Diverged(self._non_finite_key(loss, norms))
            return row, ratio, {}, objective
        obs, action, old_log_prob, advantage, target = (x[idx] for x in data)
        obs = frames_to_float(obs)  # once for both networks (a no-op on vector observations)
        if hooks is None:  # the loss reads the outputs only: no representations kept alive through the backward
            actor_out, critic_out = self.actor.dist_outputs(obs), self.critic.value_output(obs)
        else:  # an intervention loss may read features and pre-activations (PFO)
            actor_out, critic_out = self.actor(obs), self.critic(obs)
        loss, stats, ratio, objective = self._loss_terms(actor_out, critic_out, action, old_log_prob, advantage, target)
        extras = hooks.extra_loss(flat[idx], {"actor": actor_out, "critic": critic_out}) if hooks is not None else {}
        for v in extras.values():
            loss = loss + v
        if poison:
            loss = loss * float("nan")
        if not torch.isfinite(loss):
            raise Diverged("loss/total")
        zero_grads(self.optimizers.values())
        loss.backward()
        grad_norms = self._clip_grads()
        step_all(self.optimizers.values())
        stats[3] = loss  # with the intervention losses
        # one stacked row per step, summed once at the end (instead of a dozen scalar adds per step)
        row = torch.stack([t.detach() for t in stats] + list(grad_norms))
        return row, ratio.detach(), extras, objective

    def _trained(self) -> tuple[dict[str, nn.Module], dict[str, torch.optim.Optimizer]]:
        """(networks, optimizers) as the compiled step sees them: actor and critic, in the optimizers' order."""
        return {k: self.networks[k] for k in self.optimizers if k in self.networks}, dict(self.optimizers)

    def _non_finite_key(self, loss: torch.Tensor, norms: torch.Tensor) -> str:
        """The key the eager step would have named for a non-finite compiled step: the loss, else the first norm."""
        if not torch.isfinite(loss):
            return "loss/total"
        bad = [k for k, n in zip(self.optimizers, norms.tolist(), strict=True) if not math.isfinite(n)]
        return f"opt/{bad[0]}/grad_norm"

    def _update_result(
        self,
        rows: list[torch.Tensor],
        all_ratios: torch.Tensor,
        extra_sums: dict[str, torch.Tensor],
        objective: torch.Tensor,
    ) -> UpdateResult:
        """Means over the batch's steps, the clip fraction, learning rates and the trust-region metrics."""
        a = self.acfg
        n = a.epochs * self.minibatches_per_epoch
        means = (torch.stack(rows).sum(0) / n).tolist()
        names = [*_STEP_STATS, *(f"opt/{k}/grad_norm" for k in self.optimizers)]
        scalars = dict(zip(names, means, strict=True))
        scalars.update({f"loss/{k}": float(v) / n for k, v in extra_sums.items()})
        scalars["ppo/clip_fraction"] = float(((all_ratios - 1).abs() > a.clip_eps).float().mean())
        scalars["ppo/objective_last"] = float(objective.detach().mean())
        for name, opt in self.optimizers.items():
            scalars[f"opt/{name}/lr"] = opt.param_groups[0]["lr"]
        tr = trust_region_metrics(all_ratios, a.clip_eps, self.continuous)
        scalars.update({f"trust_region/{k}": v for k, v in tr.items()})
        return UpdateResult(scalars, all_ratios)

    def _clip_grads(self) -> list[torch.Tensor]:
        """Clip per optimizer, not per network: with a shared trunk (or InFeR heads) a network's parameters span
        several optimizers, and clipping by network would rescale the shared ones twice. Returns the norms before
        clipping; a non-finite one ends the run."""
        norms = []
        for name, opt in self.optimizers.items():
            params = [p for g in opt.param_groups for p in g["params"]]
            gn = nn.utils.clip_grad_norm_(params, self.acfg.max_grad_norm, foreach=True)
            if not torch.isfinite(gn):
                raise Diverged(f"opt/{name}/grad_norm")
            norms.append(gn)
        return norms

    # --- metric views (used by repdyn.metrics.scheduled) ----------------------------------------------------
    def rollout_outputs(self, flat: TensorDict, net: str) -> tuple[torch.Tensor, ...]:
        """The rollout-time outputs of ``net`` in the layout of its forward pass: the stored values and
        distribution parameters, and the representations :meth:`evaluate_rollout` kept, else those of ``net``'s
        forward pass on the batch now (the metrics ask before the update: the networks are still the rollout's)."""
        if (net, "features") in flat.keys(include_nested=True):
            reps = (flat[net, "features"], flat[net, "preact"], flat[net, "preacts_all"])
        else:
            reps = self.networks[net](flat["observation"])[-3:]
        if net == "critic":
            return (flat["state_value"], *reps)
        if self.continuous:
            return (flat["loc"], flat["scale"], *reps)
        return (flat["logits"], *reps)

    def ntk_views(self) -> dict[str, tuple[nn.Module, Any]]:
        """Scalar-output networks for the empirical NTK (docs/metrics.md#empirical-ntk): the critic, output = V(x)."""
        return {"critic": (self.critic, None)}

    def update_rank_views(self, flat: TensorDict) -> dict[str, dict[str, Any]]:
        """Per-sample losses and outputs for the update-rank matrix (docs/metrics.md#update-rank) over ``flat`` [k]:
        critic — (V − target)², output V; actor — the PPO-Clip loss of one sample (batch-normalised advantage),
        output the action distribution's parameters (probabilities, or [loc, scale]), A_ij = L2 norm of their change."""
        from torch.func import functional_call

        a = self.acfg
        adv = flat["advantage"].squeeze(-1)
        adv = (adv - adv.mean()) / (adv.std() + 1e-8) if a.normalize_advantage else adv

        def critic_loss(params, buffers, sample):
            v = functional_call(self.critic, (params, buffers), (sample["obs"].unsqueeze(0),))[0]
            return (v.squeeze() - sample["target"].squeeze()).pow(2)

        def actor_loss(params, buffers, sample):
            out = functional_call(self.actor, (params, buffers), (sample["obs"].unsqueeze(0),))
            dist = make_dist(self.actor, out, self.low, self.high)
            obj, _ = ppo_clip_objective(
                dist.log_prob(sample["action"].unsqueeze(0)), sample["logp"], sample["adv"], a.clip_eps
            )
            return -obj.sum()

        obs = flat["observation"]
        return {
            "critic": {
                "model": self.critic,
                "loss_fn": critic_loss,
                "optimizer": self.optimizers["critic"],
                "batch": {"obs": obs, "target": flat["value_target"]},
                "output": "value",
            },
            "actor": {
                "model": self.actor,
                "loss_fn": actor_loss,
                "optimizer": self.optimizers["actor"],
                "batch": {"obs": obs, "action": flat["action"], "logp": flat["action_log_prob"], "adv": adv},
                "output": lambda out: self.actor.dist_params(out),
            },
        }

    def capacity_kinds(self) -> dict[str, str]:
        """Networks probed for capacity loss and their fitting loss kind (docs/metrics.md#capacity-loss)."""
        actor = "actor_tanh_normal" if self.continuous else "actor_categorical"
        return {"actor": actor, "critic": "critic"}

    def metric_kwargs(self, net: str, outs: tuple[torch.Tensor, ...]) -> dict[str, Any]:
        """Extra arguments of ``representation_metrics`` for ``net``: values, or the policy's parameters."""
        if net == "critic":
            return {"values": outs[0]}
        if self.continuous:
            return {"policy": (outs[0], outs[1]), "policy_kind": "tanh_normal"}
        return {"policy": outs[0], "policy_kind": "categorical", "from_logits": True}

    def state_dict(self) -> dict[str, Any]:
        return {
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
