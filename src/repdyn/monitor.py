"""Representation metrics of a PPO batch at "start" (stored at rollout), "end" (after the epochs) and "diff" (SPEC §1).

"start" reads the features/pre-activations the collector stored (π_old's forward), so it costs no network pass; "end"
runs one no-grad forward of the same observations through the updated networks.
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDict

from repdyn.metrics.norms import feature_drift
from repdyn.metrics.representation import representation_metrics


def _split(preacts_all: torch.Tensor, preact: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(earlier layers, penultimate) from the stored concatenation, as the metrics expect a per-layer sequence."""
    d = preact.shape[-1]
    return (preacts_all[..., :-d], preact) if preacts_all.shape[-1] > d else (preact,)


def _network_metrics(
    net: str, outs: tuple[torch.Tensor, ...], agent: Any, mcfg: Any
) -> dict[str, float]:
    """``outs`` = the network's forward outputs (ActorNet / CriticNet tuple, flattened over the batch)."""
    features, preact, preacts_all = outs[-3:]
    kwargs: dict[str, Any] = {}
    if net == "critic":
        kwargs["values"] = outs[0]
    elif agent.continuous:
        kwargs.update(policy=(outs[0], outs[1]), policy_kind="tanh_normal")
    else:
        kwargs.update(policy=outs[0], policy_kind="categorical", from_logits=True)
    return representation_metrics(
        features, _split(preacts_all, preact), agent.cfg.model.activation, delta=mcfg.delta, tau=mcfg.dormant_tau,
        **kwargs,
    )


def stored_outputs(flat: TensorDict, net: str, agent: Any) -> tuple[torch.Tensor, ...]:
    """The rollout-time outputs of ``net`` in the same tuple layout as a forward pass."""
    reps = (flat[net, "features"], flat[net, "preact"], flat[net, "preacts_all"])
    if net == "critic":
        return (flat["state_value"], *reps)
    if agent.continuous:
        return (flat["loc"], flat["scale"], *reps)
    return (flat["logits"], *reps)


@torch.no_grad()
def batch_metrics(batch: TensorDict, agent: Any, mcfg: Any, phase: str) -> tuple[dict[str, float], dict]:
    """Metrics for ``phase`` in {"start", "end"}; returns (log record, per-network outputs for the diff)."""
    flat = batch.reshape(-1)
    obs = flat["observation"]
    record, outs = {}, {}
    for net, module in agent.networks.items():
        outs[net] = stored_outputs(flat, net, agent) if phase == "start" else module(obs)
        for k, v in _network_metrics(net, outs[net], agent, mcfg).items():
            record[f"batch_{phase}/{net}/{k}"] = v
    return record, outs


def drift_metrics(start: dict, end: dict) -> dict[str, float]:
    record = {}
    for net in start:
        for k, v in feature_drift(start[net][-3], end[net][-3]).items():
            record[f"batch_diff/{net}/{k}"] = v
    return record
