"""Nature-CNN (Mnih et al. 2015) + linear 512, the ALE network of Moalla et al. 2024 App. B (arXiv:2405.00662)."""

from __future__ import annotations

import torch
from torch import nn

from repdyn.models.mlp import activation_module


class NatureCNN(nn.Module):
    """Conv 32×8×8/4 → 64×4×4/2 → 64×3×3/1 → linear 512 → head, same output contract as :class:`MLP`.

    Inputs are uint8 or float frames ``[..., C, 84, 84]``; uint8 is scaled by 1/255 here (no obs normalisation,
    docs/experiments.md#ale-settings).
    ``preacts`` holds the pre-activations of the three conv layers (flattened) and of the 512 layer (the penultimate).
    """

    def __init__(
        self,
        in_channels: int = 4,
        out_dim: int | None = None,
        activation: str = "relu",
        hidden: int = 512,
        head_gain: float = 1.0,
    ) -> None:
        super().__init__()
        self.activation_name = activation
        self.convs = nn.ModuleList(
            [
                nn.Conv2d(in_channels, 32, 8, stride=4),
                nn.Conv2d(32, 64, 4, stride=2),
                nn.Conv2d(64, 64, 3, stride=1),
            ]
        )
        self.fc = nn.Linear(64 * 7 * 7, hidden)
        self.act = activation_module(activation)
        self.head = nn.Linear(hidden, out_dim) if out_dim is not None else None
        self.feature_dim, self.head_gain = hidden, head_gain
        self.init_parameters()

    def init_parameters(self, generator: torch.Generator | None = None) -> None:
        """Draw every parameter from the initial distribution (``generator``: None = the global RNG); the reset
        interventions call this on a copy for a fresh draw."""
        gain = nn.init.calculate_gain("relu")
        for m in [*self.convs, self.fc]:
            nn.init.orthogonal_(m.weight, gain, generator=generator)
            nn.init.zeros_(m.bias)
        if self.head is not None:
            nn.init.orthogonal_(self.head.weight, self.head_gain, generator=generator)
            nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
        preacts: list[torch.Tensor] = []
        out, h = self._run(x, preacts)
        return out, h, tuple(preacts)

    def output(self, x: torch.Tensor) -> torch.Tensor:
        """``forward(x)[0]`` alone: the same operations in the same order (the same numbers, bit for bit), without
        keeping the pre-activations. A loss that reads only the output (PPO's minibatch step without an intervention
        loss) then lets each conv output go as soon as its activation is computed, as a plain CNN does: keeping the
        ~20k pre-activations per frame alive for two networks made the update's convolutions ~15% slower here
        (fresh pages for every minibatch's activations)."""
        return self._run(x, None)[0]

    def _run(self, x: torch.Tensor, preacts: list[torch.Tensor] | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(output, features); appends each layer's pre-activation (as ``[*batch, -1]``) to ``preacts`` when given.
        Each pre-activation is a temporary of one expression, so with ``preacts=None`` nothing holds it."""
        x = frames_to_float(x)
        batch_shape = x.shape[:-3]

        def kept(z: torch.Tensor) -> torch.Tensor:
            if preacts is not None:
                preacts.append(z.reshape(*batch_shape, -1))
            return z

        h = x.reshape(-1, *x.shape[-3:])
        for conv in self.convs:
            h = self.act(kept(conv(h)))
        h = self.act(kept(self.fc(h.flatten(1)))).reshape(*batch_shape, -1)
        return (self.head(h) if self.head is not None else h), h


def frames_to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 frames scaled to [0, 1] as float32 (x / 255, in place on the new float copy: one 29 MB buffer per
    256-frame minibatch instead of two); any other tensor unchanged. A caller that feeds the same frames to two
    networks (PPO's actor and critic) converts once and passes the floats."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x
