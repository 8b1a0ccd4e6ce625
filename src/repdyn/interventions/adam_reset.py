"""Reset Adam's moments and step count after each batch collection (Moalla et al. 2024 §4, arXiv:2405.00662).

Following Asadi et al. (2023) as Moalla et al. do: the moments are then only accumulated over the epochs on one batch.
The reset runs at ``on_batch_collected``, i.e. before that batch's optimisation phase, on every optimizer of the
agent (actor and critic, plus the trunk / auxiliary heads when other interventions add them). Clearing
``optimizer.state`` is what a fresh ``torch.optim.Adam`` holds: the next step re-creates zero moments and step 0.
"""

from __future__ import annotations

from typing import Any, ClassVar

from repdyn.interventions import Intervention, register


@register
class AdamReset(Intervention):
    name: ClassVar[str] = "adam_reset"

    def on_batch_collected(self, batch: Any, agent: Any) -> dict[str, float]:
        for opt in agent.optimizers.values():
            opt.state.clear()
        return {}
