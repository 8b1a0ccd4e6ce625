"""Schema of the ``logger`` config group (``conf/logger/*.yaml``), registered in Hydra's ConfigStore by
:func:`repdyn.config.register_configs`."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class LoggerConfig:
    backend: str = "wandb"  # wandb | none
    mode: str = "offline"  # offline | online | disabled
    project: str = "repdyn"
    entity: str | None = None
    group: str | None = None  # default: the experiment name
    tags: list[str] = field(default_factory=list)
