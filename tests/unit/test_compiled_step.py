"""The pieces of the compiled gradient step that need no compilation: when a run compiles, and the written-out
clipping + Adam against ``clip_grad_norm_`` + ``torch.optim.Adam`` (tests/integration/test_compiled_update.py
compiles the PPO and DQN steps and compares them with the eager ones)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from repdyn.agents.compiled_step import (
    AUTO_MIN_GRAD_STEPS,
    _adam_state,
    clipped_adam_,
    hyper_tensor,
    plain_adam,
    use_compile,
)


def test_auto_compiles_only_long_mlp_runs() -> None:
    assert use_compile("auto", AUTO_MIN_GRAD_STEPS, "mlp")
    assert not use_compile("auto", AUTO_MIN_GRAD_STEPS - 1, "mlp")
    assert not use_compile("auto", 10 * AUTO_MIN_GRAD_STEPS, "cnn")
    assert use_compile("on", 1, "cnn") and not use_compile("off", 10**9, "mlp")
    with pytest.raises(ValueError, match="train.compile"):
        use_compile("yes", 1, "mlp")


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 2))


def test_clipped_adam_matches_clip_grad_norm_and_torch_adam() -> None:
    ref, ours = _net(), _net()
    opt_ref = torch.optim.Adam(ref.parameters(), lr=1e-2, betas=(0.8, 0.95), eps=1e-5)
    opt_ours = torch.optim.Adam(ours.parameters(), lr=1e-2, betas=(0.8, 0.95), eps=1e-5, fused=True)
    gen = torch.Generator().manual_seed(1)
    for scale in (0.1, 10.0, 0.5, 30.0):  # both sides of the clip threshold
        grads = [torch.randn(p.shape, generator=gen) * scale for p in ref.parameters()]
        for p, g in zip(ref.parameters(), grads, strict=True):
            p.grad = g.clone()
        norm_ref = nn.utils.clip_grad_norm_(list(ref.parameters()), 1.0)
        opt_ref.step()
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        coef = torch.clamp(1.0 / (norm + 1e-6), max=1.0)
        params = [p.detach() for p in ours.parameters()]
        states = [_adam_state(opt_ours, p) for p in ours.parameters()]
        clipped_adam_(params, grads, states, hyper_tensor([opt_ours])[0], coef, torch.tensor(True))
        torch.testing.assert_close(norm, norm_ref)
        for a, b in zip(ours.parameters(), ref.parameters(), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    for p, q in zip(ref.parameters(), ours.parameters(), strict=True):
        s_ref, s_ours = opt_ref.state[p], opt_ours.state[q]
        assert float(s_ours["step"]) == float(s_ref["step"]) == 4
        torch.testing.assert_close(s_ours["exp_avg_sq"], s_ref["exp_avg_sq"])


def test_a_non_finite_step_changes_nothing() -> None:
    net = _net()
    opt = torch.optim.Adam(net.parameters())
    before = [p.detach().clone() for p in net.parameters()]
    params = [p.detach() for p in net.parameters()]
    states = [_adam_state(opt, p) for p in net.parameters()]
    grads = [torch.full_like(p, float("nan")) for p in params]
    clipped_adam_(params, grads, states, hyper_tensor([opt])[0], torch.tensor(1.0), torch.tensor(False))
    for p, b in zip(net.parameters(), before, strict=True):
        assert torch.equal(p, b)
    assert all(float(s[2]) == 0 and not s[0].any() for s in states)


def test_plain_adam_refuses_what_the_compiled_update_lacks() -> None:
    net = _net()
    assert plain_adam(torch.optim.Adam(net.parameters()))
    assert not plain_adam(torch.optim.Adam(net.parameters(), weight_decay=1e-4))
    assert not plain_adam(torch.optim.Adam(net.parameters(), amsgrad=True))
    assert not plain_adam(torch.optim.SGD(net.parameters(), lr=0.1))
    two_groups = torch.optim.Adam([{"params": net[0].parameters()}, {"params": net[2].parameters(), "lr": 1e-4}])
    assert not plain_adam(two_groups)
