"""Record functions of the scheduled metrics: they pick a run's data, call the pure metric functions, prefix the keys.

Each takes one :class:`MetricContext` (what the training loop knows at a batch end) and returns a log record; the
entries of :data:`repdyn.metrics.registry.REGISTRY` point at them. The representation metrics are measured at "start"
(before the update, :func:`representation_start`) and "end" (after it, :func:`representation_end`) on the same states,
plus the drift between the two: "start" reads the features/pre-activations the collector stored (π_old's forward), so
it costs no network pass; "end" runs one no-grad forward of the same observations through the updated networks. The
agent supplies the views (``rollout_outputs``, ``metric_kwargs``, ``ntk_views``, ``update_rank_views``), so this works
for every agent whose networks follow the model contract.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from tensordict import TensorDict

from repdyn.metrics.norms import feature_drift, policy_variance, value_stats
from repdyn.metrics.representation import representation_metrics


@dataclass
class MetricContext:
    """What a scheduled metric's record function may read at one batch end (or at step 0, before training)."""

    batch: TensorDict | None  # the collected batch after ``agent.process_batch``; None for the step-0 record
    agent: Any
    mcfg: Any  # the run's ``metrics`` config section (MetricsConfig fields)
    generator: torch.Generator  # the run's probe generator: sample choices, saved in the checkpoint
    env_steps: int
    state: Any = None  # what the entry's ``setup`` built for this run (the CapacityProbe), else None
    carry: dict[str, Any] = field(default_factory=dict)  # handed from ``before_update`` to ``record`` (same batch)


def _split(preacts_all: torch.Tensor, preact: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(earlier layers, penultimate) from the stored concatenation: the metrics take a per-layer sequence."""
    d = preact.shape[-1]
    return (preacts_all[..., :-d], preact) if preacts_all.shape[-1] > d else (preact,)


def representation_batch(batch: TensorDict, agent: Any, mcfg: Any, generator: torch.Generator) -> TensorDict:
    """The states the representation metrics see: the collected batch for on-policy agents (Moalla App. B), or the
    agent's own sample when it has one (DQN: ``metrics.replay_samples`` replay states, as Lyle et al. 2022 measure
    feature rank on replay; its collected batch is only a few env steps). Drawn before the update, reused after it."""
    if hasattr(agent, "representation_data"):
        return agent.representation_data(batch, mcfg.replay_samples, generator)
    return batch


def shared_trunk(agent: Any) -> bool:
    """True when every network is a head on one shared trunk (``intervention=[shared_trunk]``)."""
    trunks = {id(getattr(getattr(m, "body", None), "trunk", None)) for m in agent.networks.values()}
    return len(agent.networks) > 1 and len(trunks) == 1 and id(None) not in trunks


@torch.no_grad()
def batch_metrics(batch: TensorDict, agent: Any, mcfg: Any, phase: str) -> tuple[dict[str, float], dict]:
    """Metrics for ``phase`` in {"start", "end"}; returns (log record, per-network outputs for the diff).

    With a shared trunk the representation metrics are the trunk's, logged once under ``trunk``; the actor
    and critic then keep only their head statistics (policy variance, value mean/std)."""
    flat = batch.reshape(-1)
    obs = flat["observation"]
    shared = shared_trunk(agent)
    record, outs = {}, {}
    for net, module in agent.networks.items():
        outs[net] = agent.rollout_outputs(flat, net) if phase == "start" else module(obs)
        features, preact, preacts_all = outs[net][-3:]
        kwargs = agent.metric_kwargs(net, outs[net])
        if shared:
            if "values" in kwargs:
                values = value_stats(kwargs["values"])
            else:
                values = {
                    "policy_variance": policy_variance(
                        kwargs["policy"], kwargs["policy_kind"], from_logits=kwargs.get("from_logits", False)
                    )
                }
            record.update({f"batch_{phase}/{net}/{k}": v for k, v in values.items()})
            if net != next(iter(agent.networks)):
                continue
            net, kwargs = "trunk", {}
        values = representation_metrics(
            features.flatten(1) if features.ndim > 2 else features,
            _split(preacts_all, preact),
            agent.activation,
            delta=mcfg.delta,
            tau=mcfg.dormant_tau,
            **kwargs,
        )
        record.update({f"batch_{phase}/{net}/{k}": v for k, v in values.items()})
    if shared:
        outs = {"trunk": next(iter(outs.values()))}
    return record, outs


def drift_metrics(start: dict, end: dict) -> dict[str, float]:
    """Feature drift start → end on the same observations, per network (``batch_diff/<net>/...``)."""
    record = {}
    for net in start:
        for k, v in feature_drift(start[net][-3], end[net][-3]).items():
            record[f"batch_diff/{net}/{k}"] = v
    return record


def representation_start(ctx: MetricContext) -> dict[str, float]:
    """``batch_start/*``, before the update: picks the states (:func:`representation_batch`) and keeps them, with the
    start outputs, in ``ctx.carry`` for :func:`representation_end`."""
    states = representation_batch(ctx.batch, ctx.agent, ctx.mcfg, ctx.generator)
    record, outs = batch_metrics(states, ctx.agent, ctx.mcfg, "start")
    ctx.carry.update(states=states, start=outs)
    return record


def representation_end(ctx: MetricContext) -> dict[str, float]:
    """``batch_end/*`` on the states :func:`representation_start` measured, and the drift ``batch_diff/*`` between."""
    record, outs = batch_metrics(ctx.carry["states"], ctx.agent, ctx.mcfg, "end")
    return {**record, **drift_metrics(ctx.carry["start"], outs)}


def capacity_record(ctx: MetricContext) -> dict[str, float]:
    """``capacity/<net>/loss`` (docs/metrics.md#capacity-loss) from the run's probe, ``ctx.state``."""
    return ctx.state.probe(ctx.agent, ctx.env_steps)


def probe_source(batch: TensorDict, agent: Any, n: int, generator: torch.Generator) -> TensorDict:
    """Transitions the NTK / update-rank probes draw from: the agent's own source when it has one (DQN: ``n``
    replay samples, Jansson 2025 §3.3), else the collected batch, flattened."""
    if hasattr(agent, "probe_data"):
        return agent.probe_data(batch, n, generator)
    return batch.reshape(-1)


def ntk_record(ctx: MetricContext) -> dict[str, float]:
    """eNTK trace/entropy (and alignment to the value targets) on ``ntk_samples`` states of the batch
    (docs/metrics.md#empirical-ntk; Jansson 2025 §2.3-2.6)."""
    from repdyn.metrics.ntk import ntk_summary

    batch, agent, mcfg, generator = ctx.batch, ctx.agent, ctx.mcfg, ctx.generator
    flat = probe_source(batch, agent, mcfg.ntk_samples, generator)
    idx = torch.randperm(flat.numel(), generator=generator)[: mcfg.ntk_samples]
    x = flat["observation"][idx]
    y = flat["value_target"][idx].squeeze(-1) if "value_target" in flat.keys() else None
    record = {}
    for net, (module, output_fn) in agent.ntk_views().items():
        for k, v in ntk_summary(module, x, y=y, output_fn=output_fn).items():
            record[f"ntk/{net}/{k}"] = v
    return record


def update_rank_record(ctx: MetricContext) -> dict[str, float]:
    """Update rank (docs/metrics.md#update-rank; Lyle et al. 2022b §5.1): k one-step updates from the current
    parameters and Adam state."""
    from repdyn.metrics.update_rank import update_rank_metrics

    batch, agent, mcfg, generator = ctx.batch, ctx.agent, ctx.mcfg, ctx.generator
    flat = probe_source(batch, agent, mcfg.update_rank_k + mcfg.update_rank_probe, generator)
    perm = torch.randperm(flat.numel(), generator=generator)
    sample = flat[perm[: mcfg.update_rank_k]]
    probe = flat["observation"][perm[-mcfg.update_rank_probe :]]
    record = {}
    for net, view in agent.update_rank_views(sample).items():
        res = update_rank_metrics(
            view["model"], view["loss_fn"], view["batch"], view["optimizer"], probe, output=view["output"]
        )
        record[f"update_rank/{net}/rank"] = float(res.rank)
    return record
