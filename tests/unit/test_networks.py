"""The per-env-step network paths give the full forward pass's numbers bit for bit (they only skip work)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from repdyn.agents.networks import ActorNet, body_output
from repdyn.models.cnn import NatureCNN
from repdyn.models.mlp import MLP


@pytest.mark.parametrize("activation", ["tanh", "relu", "gelu", "crelu"])
@pytest.mark.parametrize("norm", ["none", "layer"])
def test_mlp_output_is_forward_output(activation, norm) -> None:
    torch.manual_seed(0)
    mlp = MLP(11, (64, 64), 6, activation=activation, norm=norm)
    x = torch.randn(5, 11) * 3
    assert torch.equal(mlp.output(x), mlp(x)[0])
    trunk = MLP(11, (32,), None, activation=activation, norm=norm)  # no head: the features are the output
    assert torch.equal(trunk.output(x), trunk(x)[1])


def test_replaced_head_is_called() -> None:
    """A head an intervention swapped in (not a plain nn.Linear) still runs, through its own forward."""
    torch.manual_seed(1)
    mlp = MLP(4, (8,), 2)
    mlp.head = nn.Sequential(nn.Linear(8, 2), nn.Tanh())
    x = torch.randn(3, 4)
    assert torch.equal(body_output(mlp, x), mlp(x)[0])
    assert body_output(mlp, x).abs().max() < 1  # the Tanh of the replaced head ran


@pytest.mark.parametrize("continuous", [True, False])
def test_actor_step_outputs(continuous) -> None:
    torch.manual_seed(2)
    actor = ActorNet(MLP(11, (64, 64), 6), continuous)
    x = torch.randn(7, 11)
    step, full = actor.step_outputs(x), actor(x)
    assert actor.step_keys == (["loc", "scale"] if continuous else ["logits"])
    assert len(step) == len(actor.step_keys)
    for a, b in zip(step, full, strict=False):
        assert torch.equal(a, b)


def test_cnn_actor_steps_keep_only_the_logits() -> None:
    """The collector stores the Nature CNN actor's logits per step, not its representations (the metrics evaluate
    those on the batches they measure), and the logits are the full forward pass's."""
    torch.manual_seed(3)
    actor = ActorNet(NatureCNN(in_channels=4, out_dim=6), continuous=False)
    x = torch.randint(0, 255, (2, 4, 84, 84), dtype=torch.uint8)
    (logits,) = actor.step_outputs(x)
    assert actor.step_keys == ["logits"] and torch.equal(logits, actor(x)[0])


def test_cnn_output_paths_are_forward_outputs() -> None:
    """The output-only paths of PPO's update (no intervention loss) give the full forward's numbers bit for bit, for
    a batch with two leading dims, and a head an intervention swapped in still runs."""
    from repdyn.agents.networks import CriticNet

    torch.manual_seed(5)
    x = torch.randint(0, 255, (2, 3, 4, 84, 84), dtype=torch.uint8)
    actor = ActorNet(NatureCNN(in_channels=4, out_dim=6), continuous=False)
    (logits,) = actor.dist_outputs(x)
    assert logits.shape == (2, 3, 6) and torch.equal(logits, actor(x)[0])
    critic = CriticNet(NatureCNN(in_channels=4, out_dim=1))
    (value,) = critic.value_output(x.float() / 255)  # float frames: PPO converts once for both networks
    assert value.shape == (2, 3, 1) and torch.equal(value, critic(x)[0])
    critic.body.head = nn.Sequential(nn.Linear(512, 1), nn.Tanh())
    assert torch.equal(critic.value_output(x)[0], critic(x)[0]) and critic.value_output(x)[0].abs().max() < 1


def test_step_keys_are_fixed_when_an_intervention_wraps_the_body() -> None:
    """shared_trunk swaps the MLP actor's body for a trunk + head after the collector policy was built: the per-step
    keys (the policy's out_keys) stay the parameters, and the values still match the full forward pass."""
    from repdyn.interventions.shared_trunk import SharedTrunkBody

    torch.manual_seed(4)
    actor = ActorNet(MLP(11, (64, 64), 6), continuous=True)
    keys = actor.step_keys
    head, actor.body.head = actor.body.head, None
    actor.body = SharedTrunkBody(actor.body, head)
    x = torch.randn(3, 11)
    assert actor.step_keys == keys == ["loc", "scale"]
    for a, b in zip(actor.step_outputs(x), actor(x), strict=False):
        assert torch.equal(a, b)
