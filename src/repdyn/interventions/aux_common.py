"""Shared parts of the auxiliary-task interventions ``aux_random_cumulants``, ``aux_ensemble`` and ``aux_multi_gamma``
(Lyle et al. 2021, "On the Effect of Auxiliary Tasks on Representation Dynamics", AISTATS 2021, arXiv:2102.13089;
docs/interventions.md#auxiliary-tasks).

Each task is M linear heads h_m on the penultimate features φ(s) of an agent network, trained with

    loss/aux_<task> = coef · Σ_net mean_n mean_m (h_m(φ(s_n)) − y_{n,m})²

added to the agent's loss. The heads read the features of the agent's own forward pass on the minibatch, so the
gradient reaches the trunk: shaping the representation is what an auxiliary task is for. Targets y carry no gradient
(semi-gradient TD, like the agent's own value losses). Heads are a single ``nn.Linear`` with M (or M × |A|) outputs:
every output row is drawn independently by PyTorch's default initialisation, i.e. M heads with independent inits,
from a generator seeded by the run seed, so the agent's own random stream is the one it would have without the task.
The heads get their own optimizer (named like the task) with the settings of the attached network's optimizer; the
agent checkpoints it with its own optimizers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from repdyn.interventions import Intervention, RunFacts

AGENT_NETWORKS: dict[str, tuple[str, ...]] = {"ppo": ("actor", "critic"), "dqn": ("qnet",)}
DEFAULT_NETWORKS: dict[str, list[str]] = {"ppo": ["critic"], "dqn": ["qnet"]}
NEXT_KEYS: tuple[tuple[str, str], ...] = (("next", "observation"), ("next", "reward"), ("next", "terminated"))


def td_targets(
    cumulants: torch.Tensor, gammas: torch.Tensor, terminated: torch.Tensor, next_pred: torch.Tensor
) -> torch.Tensor:
    """TD(0) targets of M heads: y_{n,m} = c_{n,m} + γ_m (1 − terminated_n) h_m(s'_n).

    ``cumulants`` and ``next_pred`` [N, M] (each head's cumulant and its own prediction at the next state),
    ``gammas`` [M], ``terminated`` [N] or [N, 1] (bool or 0/1): a terminal transition has no bootstrap, a truncated one
    keeps it (its next observation is the real final state)."""
    if cumulants.shape != next_pred.shape or cumulants.dim() != 2:
        raise ValueError(f"cumulants and next_pred must both be [N, M], got {cumulants.shape} and {next_pred.shape}")
    alive = 1.0 - terminated.reshape(-1, 1).to(cumulants.dtype)
    return cumulants + gammas.to(cumulants.dtype) * alive * next_pred.detach()


def head_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """mean_n mean_m (h_m(x_n) − y_{n,m})² for ``pred`` and ``target`` [N, M]; no gradient through the target."""
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {pred.shape} and {target.shape}")
    return (pred - target.detach()).pow(2).mean()


def check_networks(networks: list[str] | None, agent: str) -> str | None:
    """An error message if ``networks`` names a network ``agent`` does not have (None = the agent's default)."""
    if networks is None:
        return None
    have = AGENT_NETWORKS[agent]
    if not networks or any(n not in have for n in networks) or len(set(networks)) != len(networks):
        names = list(have)
        return f"networks must be a non-empty list of distinct names from {names} for agent={agent}, got {networks}"
    return None


@dataclasses.dataclass
class AuxConfig:
    coef: float = 1.0  # loss weight (our choice)
    networks: list[str] | None = None  # null: [critic] for PPO (the critic trunk), [qnet] for DQN


class AuxHeads(Intervention):
    """Linear heads on the features of ``networks``, their optimizer, the loss and the checkpoint. Subclasses give the
    number of outputs per network (:meth:`head_outputs`) and the predictions/targets (:meth:`pred_and_target`)."""

    seed_offset: ClassVar[int]
    needs_next: ClassVar[bool] = False  # the loss reads NEXT_KEYS from the minibatch

    @staticmethod
    def check_common(cfg: Any, run: RunFacts) -> str | None:
        if cfg.coef < 0:
            return f"coef must be ≥ 0, got {cfg.coef}"
        return check_networks(None if cfg.networks is None else list(cfg.networks), run.agent)

    def __init__(self, cfg: Any, run: RunFacts) -> None:
        super().__init__(cfg, run)
        nets = cfg.networks if cfg.networks is not None else DEFAULT_NETWORKS[run.agent]
        self.networks: list[str] = list(nets)
        self.heads = nn.ModuleDict()

    def head_outputs(self, agent: Any) -> int:
        raise NotImplementedError

    def build_extra(self, agent: Any) -> None:
        """Task-specific modules drawn from the same seeded generator, after the heads (random cumulant network)."""

    def on_agent_built(self, agent: Any) -> None:
        self.agent = agent
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.run.seed) + self.seed_offset)
            for net in self.networks:
                self.heads[net] = nn.Linear(agent.networks[net].body.feature_dim, self.head_outputs(agent))
            self.build_extra(agent)
        ref = agent.optimizers.get(self.networks[0]) or next(iter(agent.optimizers.values()))
        agent.optimizers[self.name] = type(ref)(self.heads.parameters(), **ref.defaults)
        if self.needs_next and hasattr(agent, "update_keys"):  # PPO minibatches carry only the keys asked for
            agent.update_keys = tuple(dict.fromkeys((*agent.update_keys, *NEXT_KEYS)))

    @torch.no_grad()
    def next_predictions(self, minibatch: Any, net: str) -> torch.Tensor:
        """h(φ(s')) of the current network and heads on the minibatch's next observations (the heads' own bootstrap)."""
        return self.heads[net](self.agent.networks[net](minibatch["next", "observation"])[-3])

    def pred_and_target(self, minibatch: Any, net: str, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def extra_loss(self, minibatch: Any, outputs: Mapping[str, tuple[torch.Tensor, ...]]) -> dict[str, torch.Tensor]:
        total = 0.0
        for net in self.networks:
            pred, target = self.pred_and_target(minibatch, net, outputs[net][-3])
            total = total + head_loss(pred, target)
        return {self.name: self.cfg.coef * total}

    def state_dict(self) -> dict[str, Any]:
        return {"heads": self.heads.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            self.heads.load_state_dict(state["heads"])
