"""Adam's second-moment decay set to the first's: betas (0.9, 0.9) (Moalla et al. 2024 §4, App. B Tables 2-3).

Dohare et al. (2023b) and Lyle et al. (2023), as cited by Moalla et al., decay the second moment faster under
non-stationarity. Applied at ``on_agent_built`` to every optimizer's parameter groups and defaults, so optimizers that
later interventions build by copying those defaults (shared trunk, InFeR heads) inherit it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from repdyn.interventions import Intervention, RunFacts, register


@register
class AdamBeta2(Intervention):
    name: ClassVar[str] = "adam_beta2"

    @dataclasses.dataclass
    class Config:
        beta2: float = 0.9  # Moalla et al. 2024: equal to the default β1

    @staticmethod
    def check(cfg: Any, run: RunFacts) -> str | None:
        if not 0.0 <= cfg.beta2 < 1.0:
            return f"beta2 must be in [0, 1), got {cfg.beta2}"
        return None

    def on_agent_built(self, agent: Any) -> None:
        for opt in agent.optimizers.values():
            beta1 = opt.defaults["betas"][0]
            opt.defaults["betas"] = (beta1, self.cfg.beta2)
            for group in opt.param_groups:
                group["betas"] = (group["betas"][0], self.cfg.beta2)
