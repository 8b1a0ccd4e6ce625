"""ReDo: recycle τ-dormant units (Sokar, Agarwal, Castro & Evci 2023, "The Dormant Neuron Phenomenon in Deep
Reinforcement Learning", ICML, arXiv:2302.12902; docs/interventions.md#redo).

For every hidden layer ℓ of every network, on a sample of states, unit i is τ-dormant when its score
s_i = mean_x |h_ℓi(x)| / mean_j mean_x |h_ℓj(x)| ≤ τ (:func:`repdyn.metrics.units.dormant_mask`, the same rule as the
``dormant_units`` metric; for a conv layer h is averaged over spatial positions, one unit per channel). A dormant
unit's incoming weights and bias (and its LayerNorm gain and bias) are drawn anew from the initial distribution,
then its outgoing weights in the next layer are set to 0 — so the network's output is unchanged at the moment of
recycling (without LayerNorm; with it, a recycled unit shifts its layer's normalisation statistics) — and the Adam
moments of every touched entry are zeroed. The output layer is never recycled.

States: the collected batch for PPO, ``samples`` replay states for DQN (``agent.representation_data``, the sample
of the representation metrics; Sokar et al. score on a replay minibatch).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from torch import nn

from repdyn.interventions import RunFacts, register
from repdyn.interventions.reinit import Layer, PeriodicReinit, adam_moments, bodies, fresh_copy, layers
from repdyn.metrics.units import dormant_mask

_SEED_OFFSET = 0x5ED0_0000


def unit_activity(h: torch.Tensor, units: int) -> torch.Tensor:
    """[N, units] activity per sample and unit: h itself for a dense layer, mean |h| over the spatial positions of
    each channel for a conv layer (its pre-activations arrive flattened, channel-major, as ``[N, C·H·W]``)."""
    return h.reshape(h.shape[0], units, -1).abs().mean(-1)


@torch.no_grad()
def recycle_units(layer: Layer, fresh: Layer, mask: torch.Tensor) -> None:
    """Re-initialise the incoming parameters (weights, bias, LayerNorm gain and bias) of the units in ``mask``
    (bool [units]) of ``layer`` from the freshly drawn ``fresh``, in place (Sokar et al. 2023, Alg. 1: θ_in ← fresh
    init); the caller then zeroes their outgoing weights (:func:`_zero_outgoing`). Every other entry is untouched."""
    pairs = [(layer.module, fresh.module)] + ([(layer.norm, fresh.norm)] if layer.norm is not None else [])
    for own, new in pairs:
        own.weight[mask] = new.weight[mask]
        own.bias[mask] = new.bias[mask]


def _zero_outgoing(weight: torch.Tensor, mask: torch.Tensor) -> None:
    """Zero the next layer's weights reading the units in ``mask``: columns of a dense or conv weight, or the block
    of columns a flattened channel feeds (conv → dense); ``view`` keeps the assignment in place."""
    weight.view(weight.shape[0], mask.shape[0], -1)[:, mask] = 0


def _zero_moments(agent: Any, layer: Layer, nxt: nn.Module, mask: torch.Tensor) -> None:
    """Zero Adam's first and second moments of the entries :func:`recycle_units` touched (step counts stay)."""
    norm = [layer.norm.weight, layer.norm.bias] if layer.norm is not None else []
    for p in [layer.module.weight, layer.module.bias, *norm]:
        for m in adam_moments(agent, p):
            m[mask] = 0
    for m in adam_moments(agent, nxt.weight):
        _zero_outgoing(m, mask)


@register
class ReDo(PeriodicReinit):
    name: ClassVar[str] = "redo"
    seed_offset: ClassVar[int] = _SEED_OFFSET

    @dataclasses.dataclass
    class Config:
        period: int = 1_000  # env steps between recyclings
        tau: float = 0.025  # dormancy threshold (the metric's default, metrics.dormant_tau)
        samples: int = 256  # states the scores are computed on

    @classmethod
    def check(cls, cfg: Any, run: RunFacts) -> str | None:
        if cfg.tau < 0:
            return f"tau must be ≥ 0, got {cfg.tau}"
        if cfg.samples < 1:
            return f"samples must be ≥ 1, got {cfg.samples}"
        if run.model.activation == "crelu":
            return "model.activation=crelu is not supported (a CReLU unit feeds two features of the next layer)"
        return cls.check_period(cfg, run)

    def on_batch_collected(self, batch: Any, agent: Any) -> dict[str, float]:
        self.batch = batch  # the states to score, read after the update
        return super().on_batch_collected(batch, agent)

    def _states(self, agent: Any) -> torch.Tensor:
        if hasattr(agent, "representation_data"):
            return agent.representation_data(self.batch, self.cfg.samples, self.generator)["observation"]
        obs = self.batch.reshape(-1)["observation"]
        return obs[torch.randperm(obs.shape[0], generator=self.generator)[: self.cfg.samples]]

    @torch.no_grad()
    def apply(self, agent: Any) -> None:
        """Score every hidden layer on one forward pass, re-initialise the incoming side of all dormant units, then
        zero their outgoing side: zeroing last keeps the network's function unchanged even when a recycled unit feeds
        a recycled unit of the next layer."""
        obs = self._states(agent)
        for body in bodies(agent).values():
            _, _, preacts = body(obs)
            own, new = layers(body), layers(fresh_copy(body, self.generator))
            masks = []
            for i, z in enumerate(preacts):
                units = own[i].module.weight.shape[0]
                masks.append(dormant_mask(unit_activity(body.act(z), units), self.cfg.tau))
            for i, mask in enumerate(masks):
                recycle_units(own[i], new[i], mask)
            for i, mask in enumerate(masks):
                _zero_outgoing(own[i + 1].module.weight, mask)
                _zero_moments(agent, own[i], own[i + 1].module, mask)
