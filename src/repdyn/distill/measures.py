"""What a distillation record measures on the fixed probe batch: feature ranks (Lyle et al. 2022b, arXiv:2206.02126,
§4), the student's update rank (§5.1, App. B.1), greedy-action agreement with the teacher, and the robustness probes
(:mod:`repdyn.distill.probes`). Keys: docs/distillation.md#logged-keys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from repdyn.distill.objectives import agreement, objective_loss
from repdyn.distill.probes import feature_std, interpolation_pairs, probe_record
from repdyn.metrics.ranks import rank_metrics
from repdyn.metrics.update_rank import update_rank_metrics

RANK_KEYS = ("feature_rank", "srank", "effective_rank", "approx_rank")


@dataclass
class ProbeBatch:
    """The fixed teacher states of every record, their per-feature std and the interpolation pairs."""

    states: Tensor
    std: Tensor
    pairs: tuple[Tensor, Tensor]

    @classmethod
    def of(cls, states: Tensor, generator: torch.Generator) -> ProbeBatch:
        if states.dtype == torch.uint8:
            # ALE frames: the Nature CNN scales uint8 input by 1/255 and float input not at all, so noisy and
            # interpolated (float) frames must already be in [0, 1]
            states = states.float() / 255.0
        return cls(states, feature_std(states), interpolation_pairs(states.shape[0], generator))

    def state_dict(self) -> dict[str, Tensor]:
        return {"states": self.states, "std": self.std, "first": self.pairs[0], "second": self.pairs[1]}

    @classmethod
    def from_state(cls, s: dict[str, Tensor]) -> ProbeBatch:
        return cls(s["states"], s["std"], (s["first"], s["second"]))


def output_fn(net: nn.Module) -> Any:
    return lambda x: net(x)[0]


@torch.no_grad()
def network_record(
    prefix: str, net: nn.Module, probe: ProbeBatch, scales: list[float], ts: list[float], delta: float, seed: int
) -> dict[str, float]:
    """Feature ranks and both robustness probes of one network (``teacher`` or ``student``). The probe noise is drawn
    from a generator seeded with ``seed``: the teacher and the student see the same noise at every record."""
    features = net(probe.states)[1]
    ranks = rank_metrics(features, delta)
    rec = {f"ranks/{prefix}/{k}": float(ranks[k]) for k in RANK_KEYS}
    gen = torch.Generator().manual_seed(seed)
    rec.update(
        probe_record(f"robustness/{prefix}", output_fn(net), probe.states, probe.std, probe.pairs, scales, ts, gen)
    )
    return rec


@torch.no_grad()
def agreement_record(student: nn.Module, teacher: nn.Module, states: Tensor) -> dict[str, float]:
    """``distill/agreement``: fraction of probe states where student and teacher take the same greedy action."""
    return {"distill/agreement": agreement(student(states)[0], teacher(states)[0])}


def student_update_rank(
    student: nn.Module,
    optimizer: torch.optim.Optimizer,
    objective: str,
    samples: dict[str, Tensor],
    probe_x: Tensor,
    *,
    output: str,
    entropy_coef: float,
) -> float:
    """The student's update rank: one Adam step per sample on that sample's distillation loss (``samples`` holds
    ``observation``, ``action``, ``teacher_out`` and ``target`` — the double-Q target, zeros otherwise)."""

    def sample_loss(params: dict, buffers: dict, sample: dict) -> Tensor:
        out = functional_call(student, (params, buffers), (sample["obs"].unsqueeze(0),))[0]
        return objective_loss(
            objective,
            out,
            sample["teacher"].unsqueeze(0),
            {"action": sample["action"].reshape(1)},
            entropy_coef=entropy_coef,
            double_q_y=sample["target"].reshape(1),
        )

    batch = {
        "obs": samples["observation"],
        "action": samples["action"].long(),
        "teacher": samples["teacher_out"],
        "target": samples["target"],
    }
    return float(update_rank_metrics(student, sample_loss, batch, optimizer, probe_x, output=output).rank)
