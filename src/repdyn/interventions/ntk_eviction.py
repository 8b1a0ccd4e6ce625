"""NTK-trace replay eviction (Jansson 2025 §3.7, §4.4; docs/interventions.md): a DQN replay buffer of fixed capacity
(4000) that, once full, evicts the stored transition with the lowest K(x, x) = ‖∇_θ Q(x)‖² instead of the oldest.

Jansson §3.7: "after each step in the environment, K(x, x) is calculated for each x in the replay buffer and the point
with the lowest value is marked for expulsion. [...] its data will be removed to make room for storing the next data
point". So the newest transition is always stored, and it competes for eviction from the next env step on.

Batched but exact. The Q-network only changes in the agent's update, after a whole collected batch is inserted, so
every per-step K(x, x) of that batch is computed with the same parameters: one vectorised :func:`ntk_diag` call over
buffer ∪ new transitions (structured Linear rule / ``vmap(grad)``, no loop over samples), then the per-step
"evict argmin, insert new" sequence is replayed on those scalars (m argmins over ``capacity`` floats), and each slot
is written once with its last occupant. While the buffer is not full, writes are FIFO (round robin from slot 0).

K(x, x) of a transition x = (s, a): ``q_reduction`` ``taken`` (default) uses Q(s, a) — the output the TD update of
that transition moves; ``max`` / ``mean`` use max_a / mean_a Q(s, ·), the reductions of the NTK metrics.
The FIFO control of ``experiment=ntk_eviction_acrobot`` is plain DQN with ``agent.buffer_size`` = the same capacity.
Logged: ``ntk_eviction/evicted`` (evictions in the last batch), ``ntk_eviction/evicted_k_mean``,
``ntk_eviction/buffer_k_mean`` (mean K(x, x) over the buffer after insertion: the buffer's normalised NTK trace) and
``ntk_eviction/evicted_age_mean`` (writes since the evicted transitions were stored; FIFO would give ``capacity``).
Cost per env step: ``python -m repdyn.bench.dqn``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from tensordict import TensorDictBase
from torchrl.data.replay_buffers.writers import RoundRobinWriter

from repdyn.interventions import Intervention, RunFacts, register
from repdyn.metrics.ntk import ntk_diag, q_reduction

ScoreFn = Callable[[TensorDictBase], torch.Tensor]
_Q_KINDS = ("taken", "max", "mean")


def eviction_slots(buffer_scores: torch.Tensor, new_scores: torch.Tensor) -> torch.Tensor:
    """Slots taken by m new items arriving one per step into a full buffer that, at each arrival, evicts its lowest
    score (Jansson §3.7). Returns ``slots`` [m]: item i is written to ``slots[i]``; a later item may evict an earlier
    new one (same slot). Ties go to the lowest slot index (``torch.argmin``)."""
    scores = buffer_scores.clone()
    slots = torch.empty(new_scores.shape[0], dtype=torch.long)
    for i in range(new_scores.shape[0]):
        j = int(torch.argmin(scores))
        slots[i] = j
        scores[j] = new_scores[i]
    return slots


def qnet_ntk_diag_fn(qnet: torch.nn.Module, kind: str = "taken", chunk_size: int = 1024) -> ScoreFn:
    """K(x, x) of transitions with the Q-network ``qnet`` (model contract), reduced per sample by ``kind``."""
    if kind not in _Q_KINDS:
        raise ValueError(f"q_reduction={kind!r}; choose one of {list(_Q_KINDS)}")

    def score(td: TensorDictBase) -> torch.Tensor:
        aux = td["action"].long() if kind == "taken" else None
        return ntk_diag(qnet, td["observation"], output_fn=q_reduction(kind), aux=aux, chunk_size=chunk_size)

    return score


class NTKEvictionWriter(RoundRobinWriter):
    """torchrl replay writer: FIFO until the storage is full, then evict-the-lowest-K(x, x) (module docstring)."""

    def __init__(self, score_fn: ScoreFn) -> None:
        super().__init__()
        self.score_fn = score_fn
        self._inserted_at: torch.Tensor | None = None  # write count at which each slot's occupant was stored
        self._last: dict[str, float] = {}

    def _stamp(self, slots: torch.Tensor, counts: torch.Tensor) -> None:
        if self._inserted_at is None:
            self._inserted_at = torch.zeros(self._storage.max_size, dtype=torch.long)
        self._inserted_at[slots] = counts

    def add(self, data: Any) -> Any:
        return self.extend(data.unsqueeze(0))

    def extend(self, data: TensorDictBase) -> torch.Tensor:
        cap, size, m = self._storage.max_size, len(self._storage), len(data)
        free = min(cap - size, m)
        written = []
        if free > 0:  # filling up: plain FIFO slots
            first = self._write_count
            idx = super().extend(data[:free])
            self._stamp(idx, torch.arange(first, first + free))
            written.append(idx)
        rest = data[free:]
        if len(rest) == 0:
            self._last = {}
            return torch.cat(written)
        with torch.no_grad():
            stored = self._storage.get(torch.arange(cap))
            k = self.score_fn(torch.cat([stored.select(*rest.keys(True, True)), rest]))
        k_buffer, k_new = k[:cap], k[cap:]
        slots = eviction_slots(k_buffer, k_new)
        # Replay the per-step sequence on scalars: K and age of each evicted occupant, and each slot's final occupant.
        counts = self._write_count + torch.arange(len(rest))
        occ_k, occ_at = k_buffer.clone(), self._inserted_at.clone()
        final: dict[int, int] = {}
        evicted_k, evicted_age = 0.0, 0
        for i, j in enumerate(slots.tolist()):
            evicted_k += float(occ_k[j])
            evicted_age += int(counts[i] - occ_at[j])
            occ_k[j], occ_at[j] = k_new[i], counts[i]
            final[j] = i
        final_slots = torch.tensor(list(final.keys()), dtype=torch.long)
        self.write_at(final_slots, rest[torch.tensor(list(final.values()), dtype=torch.long)])
        self._write_count += len(rest) - len(final_slots)  # write_at counted only the surviving writes
        self._inserted_at = occ_at
        self._last = {
            "ntk_eviction/evicted": float(len(rest)),
            "ntk_eviction/evicted_k_mean": evicted_k / len(rest),
            "ntk_eviction/buffer_k_mean": float(occ_k.mean()),
            "ntk_eviction/evicted_age_mean": evicted_age / len(rest),
        }
        written.append(final_slots)
        return torch.cat(written)

    def stats(self) -> dict[str, float]:
        """Scalars of the last insertion that evicted (empty while filling); read by the agent's update."""
        return dict(self._last)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "inserted_at": self._inserted_at}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._inserted_at = state_dict.get("inserted_at")


@register
class NTKEviction(Intervention):
    name: ClassVar[str] = "ntk_eviction"
    agents: ClassVar[tuple[str, ...]] = ("dqn",)

    @dataclasses.dataclass
    class Config:
        capacity: int = 4000  # replay capacity (Jansson 2025 §3.7); the FIFO control uses agent.buffer_size = capacity
        q_reduction: str = "taken"  # taken | max | mean: the scalar output whose K(x, x) ranks transitions
        chunk_size: int = 1024  # samples per vmapped Jacobian chunk (non-Linear layers, e.g. convolutions)

    @staticmethod
    def check(cfg: Any, run: RunFacts) -> str | None:
        if cfg.q_reduction not in _Q_KINDS:
            return f"q_reduction must be one of {list(_Q_KINDS)}, got {cfg.q_reduction!r}"
        if cfg.capacity < run.minibatch_size:
            return f"capacity must be ≥ agent.minibatch_size ({run.minibatch_size}), got {cfg.capacity}"
        if cfg.chunk_size < 1:
            return f"chunk_size must be ≥ 1, got {cfg.chunk_size}"
        return None

    def on_agent_built(self, agent: Any) -> None:
        score = qnet_ntk_diag_fn(agent.qnet, self.cfg.q_reduction, self.cfg.chunk_size)
        agent.replace_replay(self.cfg.capacity, NTKEvictionWriter(score))
