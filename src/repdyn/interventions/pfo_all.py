"""PFO on all the actor's pre-activations up to the penultimate layer (Moalla et al. 2024 §4, App. B).

Same penalty as :mod:`repdyn.interventions.pfo` on the concatenation of every hidden layer's pre-activation
(``("actor", "preacts_all")``: the conv layers' flattened maps and the 512 layer on the Nature CNN, both hidden layers
of the MLP). Because the loss is unit-averaged, each layer weighs in proportion to its width.
"""

from __future__ import annotations

from typing import ClassVar

from repdyn.interventions import register
from repdyn.interventions.pfo import PFO


@register
class PFOAll(PFO):
    """``loss/pfo_all`` = c · L_PFO on all pre-activations; c: ALE 10 (App. B Table 2); MLP tanh 1, ReLU 10.

    The MLP values are those of the authors' MuJoCo sweep, which ran both PFO variants with one coefficient per
    activation (App. B Table 3 lists a single "feature regularization coefficient").
    """

    name: ClassVar[str] = "pfo_all"
    key: ClassVar[str] = "preacts_all"
    output_index: ClassVar[int] = -1
    cnn_coef: ClassVar[float] = 10.0
