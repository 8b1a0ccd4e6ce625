"""Interventions on real (tiny) CartPole PPO runs: each does what it claims, measured on the agent's own update.

Issue 5 "must show". Runs are built in-process (``repdyn.run_parts.build_run_parts``) so tests can step batch by batch
and look inside the optimizers.
"""

from __future__ import annotations

import math

import pytest
import torch

from repdyn.config import validate
from repdyn.run_parts import build_run_parts
from repdyn.train import run
from tests.conftest import history, run_cli, summary

BASE = ["env=classic/cartpole", "logger=none", "metrics=none", "train.progress=false"]
BATCH = 2 * 256  # the cartpole preset's env.num_envs × env.frames_per_env
LR = 3e-4


class Run:
    """A built run's parts and an env-step counter, stepped by hand as the training loop steps them."""

    def __init__(self, cfg, run_dir) -> None:
        parts = build_run_parts(cfg, run_dir)
        self.agent, self.hooks, self.collector, self.collector_iter = (
            parts.agent,
            parts.hooks,
            parts.collector,
            parts.batches,
        )
        self.env_steps, self.total = 0, cfg.train.total_frames


@pytest.fixture
def make_run(compose, tmp_path):
    """``make_run(["pfo"], "agent.epochs=1")`` → a built :class:`Run` (collector shut down at teardown)."""
    runs = []

    def _make(interventions: list[str], *extra: str) -> Run:
        cfg = compose([*BASE, f"intervention=[{','.join(interventions)}]", *extra])
        validate(cfg)
        r = Run(cfg, tmp_path / f"run{len(runs)}")
        runs.append(r)
        return r

    yield _make
    for r in runs:
        r.collector.shutdown()


class SpyHooks:
    """Forwards to the run's hooks and records every minibatch's extra losses."""

    def __init__(self, hooks) -> None:
        self.hooks, self.calls = hooks, []

    def extra_loss(self, minibatch, outputs):
        out = self.hooks.extra_loss(minibatch, outputs)
        self.calls.append({k: v.item() for k, v in out.items()})
        return out


def _batch(r: Run):
    """Collect one batch and prepare it as the training loop does (hooks, then advantages)."""
    batch = next(r.collector_iter)
    r.env_steps += batch.numel()
    r.hooks.on_batch_collected(batch, r.agent)
    r.agent.process_batch(batch)
    return batch


def _minibatch(batch, size: int = 64):
    """A random minibatch of the batch's transitions, as the PPO update draws them."""
    flat = batch.reshape(-1)
    return flat[torch.randperm(flat.shape[0])[:size]]


def _update(r: Run, batch, hooks=None):
    result = r.agent.update(batch, r.env_steps, hooks or r.hooks)
    r.hooks.after_batch_update(r.agent, min(1.0, r.env_steps / r.total))
    return result


def _opt_params(opt):
    return [p for g in opt.param_groups for p in g["params"]]


def _clone(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


# --- PFO ------------------------------------------------------------------------------------------------------


def test_pfo_is_zero_on_first_minibatch_then_positive_and_reaches_only_the_actor(make_run):
    r = make_run(["pfo"], "agent.epochs=2")
    batch = _batch(r)
    spy = SpyHooks(r.hooks)
    _update(r, batch, spy)
    losses = [c["pfo"] for c in spy.calls]
    assert len(losses) == 2 * BATCH // 64
    assert losses[0] < 1e-12  # θ = θ_old: stored rollout pre-activations equal the recomputed ones (up to rounding)
    assert all(v > 1e-9 for v in losses[1:]), losses
    assert losses[-1] > 1e3 * max(losses[0], 1e-15)

    # gradient of the PFO term alone, on a minibatch after the update (θ ≠ θ_old)
    mb = _minibatch(batch)
    outputs = {"actor": r.agent.actor(mb["observation"]), "critic": r.agent.critic(mb["observation"])}
    for opt in r.agent.optimizers.values():
        opt.zero_grad(set_to_none=True)
    r.hooks.extra_loss(mb, outputs)["pfo"].backward()
    assert all(p.grad is None for p in r.agent.critic.parameters())
    body = r.agent.actor.body
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in body.layers.parameters())
    assert all(p.grad is None for p in body.head.parameters())  # the penultimate pre-activation is below the head


def test_pfo_all_covers_every_layer_on_a_real_minibatch(make_run):
    r = make_run(["pfo", "pfo_all"], "agent.epochs=2")
    batch = _batch(r)
    _update(r, batch)
    mb = _minibatch(batch)
    _, _, preacts = r.agent.actor.body(mb["observation"])
    assert [z.shape[-1] for z in preacts] == [64, 64] and mb["actor", "preacts_all"].shape[-1] == 128
    stored = mb["actor", "preacts_all"].split([64, 64], -1)
    per_layer = [(z - s).pow(2).mean().item() for z, s in zip(preacts, stored, strict=True)]
    assert all(v > 0 for v in per_layer)  # both layers moved, and both are in the loss:
    with torch.no_grad():
        out = r.hooks.extra_loss(mb, {"actor": r.agent.actor(mb["observation"])})
    assert out["pfo_all"].item() == pytest.approx(sum(per_layer) / 2, rel=1e-5)  # unit mean over 2 × 64 units
    assert out["pfo"].item() == pytest.approx(per_layer[-1], rel=1e-5)


# --- shared trunk ---------------------------------------------------------------------------------------------


def test_shared_trunk_every_parameter_in_one_optimizer_stepped_once_per_minibatch(make_run):
    r = make_run(["shared_trunk"], "agent.epochs=2")
    a = r.agent
    assert a.actor.body.trunk is a.critic.body.trunk
    ids = [id(p) for o in a.optimizers.values() for p in _opt_params(o)]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in [*a.actor.parameters(), *a.critic.parameters()]}
    trunk_ids = {id(p) for p in a.actor.body.trunk.parameters()}
    assert trunk_ids == {id(p) for p in _opt_params(a.optimizers["trunk"])}

    steps: dict[int, int] = {}

    def count(opt, *_):
        for p in _opt_params(opt):
            steps[id(p)] = steps.get(id(p), 0) + 1

    for opt in a.optimizers.values():
        opt.register_step_post_hook(count)
    _update(r, _batch(r))
    n_minibatches = 2 * BATCH // 64
    assert set(steps) == set(ids) and set(steps.values()) == {n_minibatches}


def _first_step_max_change(r: Run) -> float:
    trunk = r.agent.actor.body.trunk
    before = [p.detach().clone() for p in trunk.parameters()]
    _update(r, _batch(r))
    return max((p.detach() - b).abs().max().item() for p, b in zip(trunk.parameters(), before, strict=True))


def test_shared_trunk_moves_one_adam_step_not_two(make_run):
    """One minibatch from fresh Adam moves each weight by lr·|g|/(|g|+eps) ≤ lr; a trunk stepped by two optimizers
    (the peer bug, reproduced here as the control) moves by up to 2·lr."""
    one = ["agent.epochs=1", f"agent.minibatch_size={BATCH}"]
    ours = _first_step_max_change(make_run(["shared_trunk"], *one))
    assert 0.9 * LR < ours <= LR * (1 + 1e-5)

    peer = make_run(["shared_trunk"], *one)
    trunk = peer.agent.actor.body.trunk
    peer.agent.optimizers["trunk_again"] = torch.optim.Adam(trunk.parameters(), lr=LR, eps=1e-5)
    twice = _first_step_max_change(peer)
    assert twice > 1.8 * LR


# --- Adam ---------------------------------------------------------------------------------------------------


def test_adam_reset_empties_state_after_collection_so_steps_do_not_accumulate(make_run):
    r = make_run(["adam_reset"], "agent.epochs=2")
    n = 2 * BATCH // 64
    _update(r, _batch(r))
    for opt in r.agent.optimizers.values():
        assert {int(s["step"]) for s in opt.state.values()} == {n}
    batch = next(r.collector_iter)
    r.hooks.on_batch_collected(batch, r.agent)
    assert all(len(opt.state) == 0 for opt in r.agent.optimizers.values())
    r.agent.process_batch(batch)
    _update(r, batch)
    for opt in r.agent.optimizers.values():
        assert {int(s["step"]) for s in opt.state.values()} == {n}  # 2n without the reset


@pytest.mark.parametrize("order", [["adam_beta2", "shared_trunk", "infer"], ["shared_trunk", "infer", "adam_beta2"]])
def test_adam_beta2_sets_betas_on_every_optimizer_in_any_order(make_run, order):
    r = make_run(order)
    assert set(r.agent.optimizers) == {"trunk", "actor", "critic", "infer"}
    for opt in r.agent.optimizers.values():
        assert [tuple(g["betas"]) for g in opt.param_groups] == [(0.9, 0.9)]
    baseline = make_run([])
    assert {tuple(g["betas"]) for o in baseline.agent.optimizers.values() for g in o.param_groups} == {(0.9, 0.999)}


# --- InFeR --------------------------------------------------------------------------------------------------


def test_infer_zero_at_init_positive_later_and_frozen_copy_never_changes(make_run):
    r = make_run(["infer"], "agent.epochs=2")
    init = {n: _clone(m) for n, m in r.agent.networks.items()}
    heads0 = _clone(r.hooks.items[0].heads)
    spy = SpyHooks(r.hooks)
    _update(r, _batch(r), spy)
    infer = r.hooks.items[0]
    losses = [c["infer"] for c in spy.calls]
    assert losses[0] == 0.0  # β = 1 and θ = θ₀: the same forward on the same inputs
    assert all(v > 0 for v in losses[1:])
    _update(r, _batch(r), spy)
    for n, module in infer.frozen.items():
        assert all(torch.equal(v, init[n][k]) for k, v in module.state_dict().items())
        assert any(not torch.equal(v, init[n][k]) for k, v in r.agent.networks[n].state_dict().items())
        assert all(not p.requires_grad for p in module.parameters())
    assert all(torch.equal(v, heads0[k]) for k, v in infer.frozen_heads.state_dict().items())
    assert any(not torch.equal(v, heads0[k]) for k, v in infer.heads.state_dict().items())  # the online heads train


# --- whole runs ---------------------------------------------------------------------------------------------


def test_lr_anneal_reaches_zero_at_the_end(compose, tmp_path):
    cfg = compose([*BASE, "intervention=[lr_anneal,shared_trunk]", f"train.total_frames={3 * BATCH}", "agent.epochs=1"])
    validate(cfg)
    assert run(cfg, tmp_path) == "completed"
    lrs = [rec["opt/actor/lr"] for rec in history(tmp_path) if "opt/actor/lr" in rec]
    assert lrs == pytest.approx([LR, LR * 2 / 3, LR / 3])  # the lr each batch's update used
    state = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=False)
    groups = [g for o in state["agent"]["optimizers"].values() for g in o["param_groups"]]
    assert len(groups) == 3 and all(g["lr"] == 0.0 and g["initial_lr"] == LR for g in groups)


def test_reward_mask_trains_on_masked_rewards_and_logs_raw_returns(make_run, compose, tmp_path):
    r = make_run(["reward_mask"])
    batch = next(r.collector_iter)
    r.hooks.on_batch_collected(batch, r.agent)
    reward = batch["next", "reward"]
    frac = (reward == 0).float().mean().item()
    assert abs(frac - 0.9) < 3 * math.sqrt(0.9 * 0.1 / reward.numel())
    done = batch["next", "done"].squeeze(-1)
    assert done.any()
    # CartPole pays 1 per step: the episode accumulator is unmasked, so returns equal lengths
    assert torch.equal(batch["next", "episode_reward"][done], batch["next", "step_count"][done].float())

    cfg = compose([*BASE, "intervention=[reward_mask]", f"train.total_frames={2 * BATCH}", "agent.epochs=1"])
    assert run(cfg, tmp_path / "whole") == "completed"
    rec = history(tmp_path / "whole")[-1]
    assert rec["env/return"] == rec["env/length"]
    assert abs(rec["reward_mask/masked_fraction"] - 0.9) < 3 * math.sqrt(0.09 / BATCH)


def test_cli_intervention_lists_and_multirun(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli(
        "-m",
        *BASE,
        f"train.total_frames={BATCH}",
        "intervention=[],[pfo,adam_reset],[shared_trunk]",
        f"hydra.sweep.dir={sweep}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    dirs = sorted((p for p in sweep.iterdir() if (p / "summary.json").exists()), key=lambda p: int(p.name))
    assert [summary(d)["status"] for d in dirs] == ["completed"] * 3
    last = [history(d)[-1] for d in dirs]
    assert "loss/pfo" not in last[0] and "opt/trunk/lr" not in last[0]
    assert last[1]["loss/pfo"] >= 0 and "opt/trunk/lr" not in last[1]
    assert {"opt/trunk/lr", "opt/actor/lr", "opt/critic/lr"} <= set(last[2]) and "loss/pfo" not in last[2]


def test_resume_with_stateful_interventions_is_exact(compose, tmp_path):
    """InFeR (heads, frozen copy, its optimizer), the reward-mask generator and the rebuilt shared-trunk optimizers
    all travel through the checkpoint: 2 batches + resume to 3 equals 3 straight batches."""
    ivs = "intervention=[infer,reward_mask,shared_trunk,adam_reset]"

    def cfg(*extra: str):
        c = compose([*BASE, ivs, f"train.total_frames={3 * BATCH}", "agent.epochs=1", *extra])
        validate(c)
        return c

    assert run(cfg(), tmp_path / "straight") == "completed"
    assert run(cfg("debug.stop_after_batches=2"), tmp_path / "resumed") == "interrupted"
    assert history(tmp_path / "resumed")[-1]["step"] == 2 * BATCH
    assert run(cfg(), tmp_path / "resumed") == "completed"
    a, b = history(tmp_path / "straight")[-1], history(tmp_path / "resumed")[-1]
    assert a["step"] == b["step"] == 3 * BATCH
    assert {k: v for k, v in a.items() if not k.startswith("perf/")} == {
        k: v for k, v in b.items() if not k.startswith("perf/")
    }
