"""Schema of the ``model`` config group (``conf/model/*.yaml``), registered in Hydra's ConfigStore by
:func:`repdyn.config.register_configs`; value checks are in :func:`repdyn.config.validate`."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ModelConfig:
    name: str = "mlp"  # mlp | cnn
    hidden: list[int] = field(default_factory=lambda: [64, 64])
    activation: str = "tanh"
    min_scale: float = 1e-4  # floor added to softplus(std) of the TanhNormal head
    norm: str = "none"  # none | layer (LayerNorm before each hidden activation, MLP only; docs/experiments.md)
