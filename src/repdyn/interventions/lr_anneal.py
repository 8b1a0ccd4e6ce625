"""Linear learning-rate decay to 0 over the training budget (docs/interventions.md#lr-anneal; off in Moalla 2024).

After the update of a batch ending at env step t, every optimizer's learning rate becomes lr₀ · (1 − t / T) with T =
``train.total_frames``: the first batch trains at lr₀ and the lr is exactly 0 once the budget is spent (the schedule of
the PPO reference implementations, e.g. CleanRL's ``anneal_lr``). lr₀ is kept in each parameter group as
``initial_lr`` (the key torch's schedulers use), so it travels with the optimizer state through checkpoints.
"""

from __future__ import annotations

from typing import Any, ClassVar

from repdyn.interventions import Intervention, register


@register
class LRAnneal(Intervention):
    name: ClassVar[str] = "lr_anneal"

    def after_batch_update(self, agent: Any, progress: float) -> None:
        if not 0.0 <= progress <= 1.0:
            raise ValueError(f"progress must be in [0, 1], got {progress}")
        for opt in agent.optimizers.values():
            for group in opt.param_groups:
                group.setdefault("initial_lr", group["lr"])  # first call: nothing has been annealed yet
                group["lr"] = group["initial_lr"] * (1.0 - progress)
