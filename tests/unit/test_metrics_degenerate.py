"""Every public metric function on degenerate input, as hypothesis property tests (issue "Reliability", item 2).

Degenerate inputs: zeros, constants, one sample, every sample identical, huge (1e30, float32 max) and tiny (1e-30)
values, NaN / ±inf sprinkled in, PPO ratios all above / all below / all inside the clip range (and exact zeros, the
collapse regime of ``agent.lr=100``), and for the model-based metrics a tiny MLP with zero weights, constant inputs or a
single sample. Each function must not raise, must return finite values for finite input, NaN exactly where its
docstring's "Degenerate input" paragraph says so, and the known answer where there is one (rank of zeros = 0, dead-unit
fraction of an all-zero ReLU layer = 1, ...).

Examples are derandomized (a fixed sequence, no example database) so CI is reproducible.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from torch import nn
from torch.func import functional_call

from repdyn.metrics.capacity import capacity_loss, fit_to_target
from repdyn.metrics.norms import (
    feature_drift,
    feature_norm,
    policy_variance,
    preact_norm,
    preact_norm_all,
    value_stats,
)
from repdyn.metrics.ntk import (
    kernel_test_alignment,
    ntk_diag,
    ntk_gram,
    ntk_metrics,
    ntk_summary,
    q_reduction,
    scalar_outputs,
)
from repdyn.metrics.ranks import RANK_KEYS, rank_metrics, rank_metrics_batched, ranks_from_svdvals
from repdyn.metrics.representation import representation_metrics
from repdyn.metrics.trust_region import RATIO_CLIP, approx_kl, clip_fraction, trust_region_metrics
from repdyn.metrics.units import DEAD_RULES, dead_units, dormant_units
from repdyn.metrics.update_rank import functional_optimizer_step, update_rank, update_rank_metrics
from repdyn.models.mlp import MLP

FAST = settings(max_examples=80, deadline=None, derandomize=True, database=None)
SLOW = settings(max_examples=20, deadline=None, derandomize=True, database=None)
F32_MAX = float(torch.finfo(torch.float32).max)
KINDS = (
    "random",
    "zeros",
    "constant",
    "constant_rows",
    "huge",
    "tiny",
    "float32_max",
    "dead_relu",
    "nan",
    "inf",
    "arbitrary",
)
CONSTANTS = (-1e30, -2.5, 1e-3, 1.0, 7.0, 1e30)


def finite(x: torch.Tensor) -> bool:
    return bool(torch.isfinite(x).all())


def all_finite(d: dict[str, float]) -> bool:
    return all(math.isfinite(v) for v in d.values())


def all_nan(d: dict[str, float]) -> bool:
    return all(math.isnan(v) for v in d.values())


@st.composite
def matrices(draw, max_n: int = 6, max_d: int = 6, square: bool = False, kinds: tuple[str, ...] = KINDS):
    """(kind, x): an [n, d] float32/float64 matrix of one degenerate kind."""
    n = draw(st.integers(1, max_n))
    d = n if square else draw(st.integers(1, max_d))
    kind = draw(st.sampled_from(kinds))
    dtype = draw(st.sampled_from((torch.float32, torch.float64)))
    if kind == "arbitrary":  # any float32, NaN, ±inf and subnormals included
        arr = draw(hnp.arrays(np.float32, (n, d), elements=st.floats(width=32)))
        return kind, torch.from_numpy(arr).to(dtype)
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    base = torch.randn(n, d, generator=g, dtype=torch.float64)
    if kind == "zeros":
        x = torch.zeros(n, d, dtype=torch.float64)
    elif kind == "constant":
        x = torch.full((n, d), draw(st.sampled_from(CONSTANTS)), dtype=torch.float64)
    elif kind == "constant_rows":  # every sample the same (a collapsed representation)
        x = base[:1].expand(n, d).clone()
    elif kind == "huge":
        x = base * 1e30
    elif kind == "tiny":
        x = base * 1e-30
    elif kind == "float32_max":
        x = base.sign() * F32_MAX
    elif kind == "dead_relu":
        x = base.clamp_min(0)
        x[:, : draw(st.integers(0, d))] = 0.0
    else:
        x = base
        i, j = draw(st.integers(0, n - 1)), draw(st.integers(0, d - 1))
        x[i, j] = float("nan") if kind == "nan" else draw(st.sampled_from((float("inf"), -float("inf"))))
    return kind, x.to(dtype)


# ----------------------------------------------------------------------------------------------------------------------
# ranks


@FAST
@given(matrices())
def test_rank_metrics_degenerate(case) -> None:
    kind, x = case
    n, d = x.shape
    out = rank_metrics(x)
    assert set(out) == set(RANK_KEYS)
    if not finite(x):
        assert all_nan(out)
        return
    assert all_finite(out), out
    k = min(n, d)
    for key in ("approx_rank", "srank", "feature_rank", "numerical_rank"):
        assert out[key] == int(out[key]) and 0 <= out[key] <= k, (key, out)
    assert 0 <= out["effective_rank"] <= k + 1e-6 and 0 <= out["stable_rank"] <= k + 1e-6
    assert out["sv_max"] >= out["sv_2"] >= 0 and out["sv_min"] >= 0
    if not x.any():  # the zero matrix: every rank 0
        assert all(v == 0 for v in out.values()), out
    else:
        assert out["approx_rank"] >= 1 and out["srank"] >= 1 and out["numerical_rank"] >= 1
        assert out["effective_rank"] >= 1 - 1e-6 and out["stable_rank"] >= 1 - 1e-6
    if kind in ("constant", "constant_rows") and x.any():  # rank one
        assert out["approx_rank"] == out["srank"] == out["numerical_rank"] == 1, out
        assert out["stable_rank"] == pytest.approx(1, rel=1e-4)
        assert out["effective_rank"] == pytest.approx(1, rel=1e-3)
    if k == 1:
        assert out["sv_2"] == 0


@FAST
@given(matrices(), st.integers(1, 3))
def test_rank_metrics_batched_matches_single(case, b) -> None:
    _, x = case
    phis = torch.stack([x * (i + 1) if finite(x) else x for i in range(b)])
    batched = rank_metrics_batched(phis)
    single = rank_metrics(x)
    for key in RANK_KEYS:
        v = batched[key][0].item()
        assert (math.isnan(v) and math.isnan(single[key])) or v == pytest.approx(single[key], rel=1e-9, abs=1e-12)


@FAST
@given(
    st.lists(st.floats(min_value=0, max_value=F32_MAX, width=32), min_size=1, max_size=6),
    st.sampled_from((torch.float32, torch.float64)),
)
def test_ranks_from_svdvals_any_non_negative_values(values, dtype) -> None:
    s = torch.tensor(sorted(values, reverse=True), dtype=dtype)
    out = {k: v.item() for k, v in ranks_from_svdvals(s, n=8, d=len(values)).items()}
    assert all_finite(out), out  # σ up to float32 max: squares overflow float32, not the float64 computation
    if s.max() > 0:
        assert 1 - 1e-6 <= out["stable_rank"] <= len(values) + 1e-6
    else:
        assert all(v == 0 for v in out.values())


def test_ranks_from_svdvals_non_finite_gives_nan() -> None:
    for bad in (float("nan"), float("inf")):
        out = ranks_from_svdvals(torch.tensor([bad, 1.0]), n=4, d=2)
        assert all(math.isnan(v.item()) for v in out.values()), out


# ----------------------------------------------------------------------------------------------------------------------
# units


@FAST
@given(matrices(), st.sampled_from(sorted(DEAD_RULES)))
def test_dead_units_degenerate(case, activation) -> None:
    kind, x = case
    n, d = x.shape
    out = dead_units(x, activation)
    assert set(out) == {"dead_units", "dead_units_frac"}
    if not finite(x):
        assert all_nan(out)
        return
    count = out["dead_units"]
    assert count == int(count) and 0 <= count <= d and out["dead_units_frac"] == count / d
    if DEAD_RULES[activation] == "zero":
        assert count == (x == 0).all(0).sum().item()
        if kind == "zeros":
            assert out["dead_units_frac"] == 1.0
    elif kind in ("zeros", "constant", "constant_rows") or n == 1:  # no unit varies across samples
        assert out["dead_units_frac"] == 1.0, out


@FAST
@given(matrices(), st.sampled_from((0.0, 0.025, 0.1)))
def test_dormant_units_degenerate(case, tau) -> None:
    kind, x = case
    d = x.shape[1]
    out = dormant_units(x, tau)
    assert set(out) == {"dormant_units", "dormant_units_frac"}
    if not finite(x):
        assert all_nan(out)
        return
    count = out["dormant_units"]
    assert count == int(count) and 0 <= count <= d and out["dormant_units_frac"] == count / d
    assert count >= (x == 0).all(0).sum().item()  # an all-zero unit is dormant (score 0 ≤ τ)
    if kind == "zeros":
        assert out["dormant_units_frac"] == 1.0
    if kind == "constant":  # every unit has the mean activity: score 1 > τ
        assert count == 0


# ----------------------------------------------------------------------------------------------------------------------
# norms


@FAST
@given(matrices())
def test_feature_and_preact_norms_degenerate(case) -> None:
    kind, x = case
    d = x.shape[1]
    fn, pn, pa = feature_norm(x), preact_norm([x]), preact_norm_all([x, x])
    if not finite(x):
        assert math.isnan(fn) and math.isnan(pn) and math.isnan(pa)
        return
    assert math.isfinite(fn) and fn >= 0 and pn == fn
    assert pa == pytest.approx(math.sqrt(2) * fn, rel=1e-6)
    if kind == "zeros":
        assert fn == 0 and pa == 0
    if kind == "constant":
        assert fn == pytest.approx(abs(x[0, 0].item()) * math.sqrt(d), rel=1e-6)


@FAST
@given(matrices(), matrices(max_n=1, max_d=1))
def test_feature_drift_degenerate(case, other) -> None:
    kind, x = case
    y = x * other[1].item() if finite(other[1]) else other[1].expand_as(x).to(x.dtype)
    out = feature_drift(x, y)
    assert set(out) == {"feature_drift_l2", "feature_drift_cos"}
    if not (finite(x) and finite(y)):
        assert all_nan(out)
        return
    assert all_finite(out), out
    assert out["feature_drift_l2"] >= 0 and -1 - 1e-6 <= out["feature_drift_cos"] <= 1 + 1e-6
    same = feature_drift(x, x)
    assert same["feature_drift_l2"] == 0
    nonzero_rows = (x != 0).any(1).double().mean().item()  # cos(φ, φ) = 1, and 0 for a zero row
    assert same["feature_drift_cos"] == pytest.approx(nonzero_rows, rel=1e-6)


@FAST
@given(matrices(), st.sampled_from(("categorical_logits", "categorical_probs", "normal", "tanh_normal")))
def test_policy_variance_degenerate(case, kind) -> None:
    mkind, x = case
    if kind == "categorical_logits":
        v = policy_variance(x, "categorical", from_logits=True)
    elif kind == "categorical_probs":
        v = policy_variance(x.abs() / x.abs().sum(1, keepdim=True).clamp_min(1e-30), "categorical")
    else:
        v = policy_variance((x, x.abs() + 1e-4), kind)
    if not finite(x):
        assert math.isnan(v)
        return
    assert math.isfinite(v) and v >= 0
    if mkind in ("zeros", "constant", "constant_rows") or x.shape[0] == 1:  # the same distribution in every state
        assert v == 0


@FAST
@given(matrices(max_d=1), st.booleans())
def test_value_stats_degenerate(case, column) -> None:
    kind, x = case
    values = x if column else x[:, 0]
    out = value_stats(values)
    assert set(out) == {"value_mean", "value_std"}
    if not finite(x):
        assert all_nan(out)
        return
    assert all_finite(out), out
    if kind in ("zeros", "constant", "constant_rows") or x.shape[0] == 1:
        assert out["value_std"] == 0 and out["value_mean"] == x[0, 0].item()


@FAST
@given(matrices(), st.sampled_from(sorted(DEAD_RULES)))
def test_representation_metrics_degenerate(case, activation) -> None:
    kind, x = case
    out = representation_metrics(x, [x, x], activation, values=x[:, 0], policy=x, policy_kind="categorical")
    expected_keys = {*RANK_KEYS, "dead_units", "dead_units_frac", "dormant_units", "dormant_units_frac"}
    expected_keys |= {"feature_norm", "preact_norm", "preact_norm_all", "value_mean", "value_std", "policy_variance"}
    assert set(out) == expected_keys
    if finite(x):
        assert all_finite(out), out
    if kind == "zeros":
        assert out["effective_rank"] == out["feature_norm"] == 0
        assert out["dormant_units_frac"] == out["dead_units_frac"] == 1


# ----------------------------------------------------------------------------------------------------------------------
# trust region


RATIO_KINDS = (
    "all_above",
    "all_below",
    "all_inside",
    "zeros",
    "mixed",
    "mixed_zero_below",
    "huge",
    "nan",
    "inf",
    "any",
)


@st.composite
def ratio_batches(draw):
    """(kind, ratios, eps): PPO ratios of one degenerate kind (margins survive float32 rounding)."""
    eps = draw(st.sampled_from((0.1, 0.2, 0.3)))
    kind = draw(st.sampled_from(RATIO_KINDS))
    n = draw(st.integers(1, 24))
    above = st.floats(min_value=1 + eps + 1e-3, max_value=1e30)
    below = st.floats(min_value=0, max_value=1 - eps - 1e-3)
    inside = st.floats(min_value=1 - eps + 1e-3, max_value=1 + eps - 1e-3)
    lists = lambda e: st.lists(e, min_size=n, max_size=n)  # noqa: E731
    if kind == "all_above":
        r = draw(lists(above))
    elif kind == "all_below":
        r = draw(lists(below))
    elif kind == "all_inside":
        r = draw(lists(inside))
    elif kind == "zeros":
        r = [0.0] * n
    elif kind == "mixed":
        r = draw(lists(above | below | inside))
    elif kind == "mixed_zero_below":  # the agent.lr=100 collapse: π_θ(a|s) underflowed to 0 below the clip range
        r = [*draw(lists(above | inside)), 0.0]
    elif kind == "huge":
        r = draw(lists(st.floats(min_value=1e20, max_value=F32_MAX)))
    elif kind in ("nan", "inf"):
        r = draw(lists(above | below | inside))
        bad = [float("nan")] if kind == "nan" else [float("inf"), -float("inf")]
        r[draw(st.integers(0, n - 1))] = draw(st.sampled_from(bad))
    else:
        r = draw(lists(st.floats(width=32)))
    dtype = draw(st.sampled_from((torch.float32, torch.float64)))
    return kind, torch.tensor(r, dtype=dtype), eps


def test_zero_ratios_below_the_clip_range_do_not_divide_by_zero() -> None:
    """The reported crash: discrete ratios of exactly 0 make ratio_below_mean 0 and excess_ratio a 1/0."""
    out = trust_region_metrics(torch.tensor([1.5, 0.0, 0.0]), eps=0.2, continuous=False)
    assert out["ratio_below_mean"] == 0.0
    assert out["excess_ratio"] == pytest.approx(1.5 / RATIO_CLIP[0])


@FAST
@given(ratio_batches(), st.booleans())
def test_trust_region_metrics_degenerate(case, continuous) -> None:
    kind, r, eps = case
    out = trust_region_metrics(r, eps, continuous)
    split = trust_region_metrics([r[:1], r[1:]], eps, continuous)
    assert split.keys() == out.keys()
    n_above, n_below = out["n_above"], out["n_below"]
    assert n_above == int(n_above) and n_below == int(n_below) and n_above + n_below <= r.numel()
    assert ("ratio_above_mean" in out) == (n_above > 0) and ("ratio_below_mean" in out) == (n_below > 0)
    assert ("excess_ratio" in out) == (n_above > 0 and n_below > 0)
    cf = clip_fraction(r, eps)
    assert math.isfinite(cf) and cf == pytest.approx((n_above + n_below) / r.numel())  # NaN ratios: in neither set
    if kind == "all_above":
        assert n_above == r.numel() and n_below == 0
    if kind in ("all_below", "zeros"):
        assert n_below == r.numel() and n_above == 0
    if kind == "all_inside":
        assert out == {"n_above": 0.0, "n_below": 0.0} and cf == 0
    if kind == "zeros":
        assert out["ratio_below_mean"] == (RATIO_CLIP[0] if continuous else 0.0)
    if finite(r) and bool((r >= 0).all()):
        assert all_finite(out), out  # excess_ratio too, even when every ratio below the range is 0
        if "excess_ratio" in out:
            expected = out["ratio_above_mean"] / max(out["ratio_below_mean"], RATIO_CLIP[0])
            assert out["excess_ratio"] == pytest.approx(expected, rel=1e-12)


@FAST
@given(
    st.sampled_from(("zeros", "constant", "bounded", "nan", "inf", "any")),
    st.integers(1, 16),
    st.data(),
)
def test_approx_kl_degenerate(kind, n, data) -> None:
    if kind == "zeros":
        lr = [0.0] * n
    elif kind == "constant":
        lr = [data.draw(st.floats(-700, 700))] * n
    elif kind == "bounded":
        lr = data.draw(st.lists(st.floats(-700, 700), min_size=n, max_size=n))
    elif kind in ("nan", "inf"):
        lr = data.draw(st.lists(st.floats(-10, 10), min_size=n, max_size=n))
        lr[data.draw(st.integers(0, n - 1))] = float("nan") if kind == "nan" else -float("inf")
    else:
        lr = data.draw(st.lists(st.floats(width=32), min_size=n, max_size=n))
    x = torch.tensor(lr, dtype=torch.float64)
    k1, k3 = approx_kl(x)
    if not finite(x):
        assert math.isnan(k1) and math.isnan(k3)
    elif x.abs().max() <= 700:  # e^x is representable in float64
        assert math.isfinite(k1) and math.isfinite(k3) and k3 >= 0
    if kind == "zeros":
        assert (k1, k3) == (0.0, 0.0)
    if kind == "constant":
        c = lr[0]
        assert k1 == pytest.approx(-c, abs=1e-12) and k3 == pytest.approx(math.expm1(c) - c, rel=1e-9, abs=1e-12)


# ----------------------------------------------------------------------------------------------------------------------
# NTK summaries


@FAST
@given(matrices(square=True), matrices(max_d=1), st.booleans())
def test_ntk_metrics_degenerate(kcase, ycase, with_y) -> None:
    kkind, K = kcase
    y = torch.zeros(K.shape[0], dtype=K.dtype)
    y_finite = True
    if with_y:
        y = (ycase[1][:, 0].repeat(K.shape[0])[: K.shape[0]]).to(K.dtype)
        y_finite = finite(y)
    out = ntk_metrics(K, y if with_y else None)
    assert set(out) == ({"trace", "entropy", "kernel_alignment"} if with_y else {"trace", "entropy"})
    if not finite(K):
        assert all_nan(out)
        return
    if not y_finite:
        assert math.isfinite(out["trace"]) and math.isfinite(out["entropy"]) and math.isnan(out["kernel_alignment"])
        return
    assert all_finite(out), out
    assert -1e-9 <= out["entropy"] <= math.log(K.shape[0]) + 1e-6
    if with_y:
        assert -1 - 1e-6 <= out["kernel_alignment"] <= 1 + 1e-6
        if not y.any():
            assert out["kernel_alignment"] == 0
    if kkind == "zeros":
        assert out["trace"] == 0 and out["entropy"] == 0 and out.get("kernel_alignment", 0) == 0
    if kkind == "constant" or K.shape[0] == 1:  # one non-zero eigenvalue (or none)
        assert out["entropy"] == pytest.approx(0, abs=1e-6)


@FAST
@given(matrices(), matrices(max_d=1), matrices(max_d=1))
def test_kernel_test_alignment_degenerate(kcase, acase, bcase) -> None:
    kkind, K = kcase
    y_a = acase[1][:, 0].repeat(K.shape[1])[: K.shape[1]].to(K.dtype)
    y_b = bcase[1][:, 0].repeat(K.shape[0])[: K.shape[0]].to(K.dtype)
    v = kernel_test_alignment(K, y_a, y_b)
    if not (finite(K) and finite(y_a) and finite(y_b)):
        assert math.isnan(v)
        return
    assert math.isfinite(v) and -1 - 1e-6 <= v <= 1 + 1e-6
    if kkind == "zeros" or not y_a.any() or not y_b.any():
        assert v == 0


# ----------------------------------------------------------------------------------------------------------------------
# metrics that need a model: a tiny MLP with zero weights, constant inputs or one sample

SCENARIOS = ("random", "zero_weights", "constant_inputs", "zero_inputs", "nan_inputs")


def tiny_model(scenario: str, activation: str, out_dim: int = 1, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = MLP(3, (4,), out_dim, activation=activation, init="default")
    if scenario == "zero_weights":
        with torch.no_grad():
            for p in model.parameters():
                p.zero_()
    return model


def tiny_inputs(scenario: str, n: int, seed: int = 1) -> torch.Tensor:
    x = torch.randn(n, 3, generator=torch.Generator().manual_seed(seed))
    if scenario == "constant_inputs":
        x = x[:1].expand(n, 3).clone()
    elif scenario == "zero_inputs":
        x = torch.zeros(n, 3)
    elif scenario == "nan_inputs":
        x[0, 0] = float("nan")
    return x


@SLOW
@given(
    st.sampled_from(SCENARIOS),
    st.sampled_from(("relu", "tanh")),
    st.integers(1, 4),
    st.sampled_from(("value", "q_max", "q_mean", "q_taken")),
    st.sampled_from(("auto", "jacobian", "structured")),
)
def test_ntk_gram_diag_and_summary_on_degenerate_models(scenario, activation, n, output, method) -> None:
    model = tiny_model(scenario, activation, out_dim=1 if output == "value" else 2)
    x = tiny_inputs(scenario, n)
    aux = torch.zeros(n, dtype=torch.long) if output == "q_taken" else None
    output_fn = None if output == "value" else q_reduction(output.removeprefix("q_"))
    y = scalar_outputs(model, x, output_fn, aux).detach()
    K = ntk_gram(model, x, output_fn=output_fn, aux1=aux, method=method)
    diag = ntk_diag(model, x, output_fn=output_fn, aux=aux, method=method)
    summary = ntk_summary(model, x, y=y, output_fn=output_fn, aux=aux)
    assert K.shape == (n, n) and diag.shape == (n,) and set(summary) == {"trace", "entropy", "kernel_alignment"}
    if scenario == "nan_inputs":
        assert math.isnan(summary["trace"]) and math.isnan(summary["entropy"])
        return
    assert finite(K) and all_finite(summary), summary
    assert torch.allclose(diag, torch.diagonal(K), rtol=1e-5, atol=1e-6)
    if scenario == "zero_weights":  # only the output bias moves the output: the same ∇f for every input
        assert torch.equal(K, K[0, 0].expand(n, n)) and K[0, 0] > 0
        if output == "value":
            assert torch.equal(K, torch.ones(n, n)) and summary["trace"] == 1
        assert summary["entropy"] == pytest.approx(0, abs=1e-6)
    if scenario in ("constant_inputs", "zero_inputs"):  # identical inputs: identical gradients
        assert torch.allclose(K, K[0, 0].expand(n, n), rtol=1e-5, atol=1e-6)
        assert summary["entropy"] == pytest.approx(0, abs=1e-5)


def squared_error_loss(model: nn.Module):
    def loss_fn(params, buffers, sample):
        out = functional_call(model, (params, buffers), (sample["x"].unsqueeze(0),))[0]
        return (out.reshape(()) - sample["y"]) ** 2

    return loss_fn


def policy_loss(model: nn.Module):
    def loss_fn(params, buffers, sample):
        logits = functional_call(model, (params, buffers), (sample["x"].unsqueeze(0),))[0]
        return -torch.log_softmax(logits, -1).gather(-1, sample["a"].reshape(1, 1)).reshape(())

    return loss_fn


@SLOW
@given(
    st.sampled_from(SCENARIOS),
    st.sampled_from(("relu", "tanh")),
    st.integers(1, 4),
    st.integers(1, 4),
    st.sampled_from(("value", "policy")),
    st.sampled_from((torch.optim.SGD, torch.optim.Adam)),
)
def test_update_rank_on_degenerate_models(scenario, activation, k, n, output, opt_cls) -> None:
    model = tiny_model(scenario, activation, out_dim=1 if output == "value" else 3)
    opt = opt_cls(model.parameters(), lr=0.1)
    x = tiny_inputs(scenario, k, seed=2)
    batch = {"x": x, "y": torch.ones(k), "a": torch.zeros(k, dtype=torch.long)}
    probe = tiny_inputs(scenario, n, seed=3)
    loss_fn = squared_error_loss(model) if output == "value" else policy_loss(model)
    res = update_rank_metrics(model, loss_fn, batch, opt, probe, output=output)
    assert res.matrix.shape == (k, n)
    if scenario == "nan_inputs":
        assert math.isnan(res.rank)
        return
    assert finite(res.matrix) and res.rank == int(res.rank) and 0 <= res.rank <= min(k, n)
    if scenario in ("constant_inputs", "zero_inputs"):  # identical samples and probes: A is constant, rank ≤ 1
        assert res.rank <= 1


@FAST
@given(matrices(), st.sampled_from((0.0, 0.1, 0.5)))
def test_update_rank_of_degenerate_matrices(case, threshold) -> None:
    kind, A = case
    r = update_rank(A, threshold)
    if not finite(A):
        assert math.isnan(r)
        return
    assert r == int(r) and 0 <= r <= min(A.shape)
    if kind == "zeros":
        assert r == 0
    if kind in ("constant", "constant_rows") and A.any() and threshold > 0:  # (threshold 0 also counts round-off σ)
        assert r == 1


@pytest.mark.parametrize("opt_cls", [torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW])
def test_functional_optimizer_step_with_zero_gradients_is_identity(opt_cls) -> None:
    model = tiny_model("zero_weights", "relu")
    opt = opt_cls(model.parameters(), lr=0.1, weight_decay=0.0)
    params = {k: v.detach() for k, v in model.named_parameters()}
    names = {id(p): k for k, p in model.named_parameters()}
    grads = {k: torch.zeros(2, *v.shape) for k, v in params.items()}
    new = functional_optimizer_step(opt, params, grads, names)
    for k, v in params.items():
        assert torch.equal(new[k], v.expand_as(new[k]))


# ----------------------------------------------------------------------------------------------------------------------
# capacity


@FAST
@given(matrices(), st.sampled_from(("actor_categorical", "actor_normal", "actor_tanh_normal", "critic")))
def test_capacity_loss_of_identical_outputs_is_zero(case, kind) -> None:
    _, x = case
    if kind == "actor_categorical":
        fit = x
    elif kind == "critic":
        x = x[:, 0]
        fit = x
    else:
        fit = (x, x.abs() + 1e-4)
    loss = capacity_loss(kind, fit, fit).item()
    if not finite(x):
        assert math.isnan(loss)
    else:
        assert loss == pytest.approx(0, abs=1e-5)


@FAST
@given(matrices(), matrices(), st.sampled_from(("actor_categorical", "actor_normal", "critic")))
def test_capacity_loss_degenerate_pairs(case_f, case_t, kind) -> None:
    (_, f), (_, t) = case_f, case_t
    n, d = min(f.shape[0], t.shape[0]), min(f.shape[1], t.shape[1])
    f, t = f[:n, :d].double(), t[:n, :d].double()
    if kind == "critic":
        f, t = f[:, 0], t[:, 0]
    if kind != "actor_normal":
        loss = capacity_loss(kind, f, t).item()
    else:
        loss = capacity_loss(kind, (f, f.abs() + 1e-4), (t, t.abs() + 1e-4)).item()
    if finite(f) and finite(t):
        assert math.isfinite(loss) and loss >= -1e-6, loss  # float64: float32-range outputs never overflow
    else:
        assert math.isnan(loss)


class HugeCritic(nn.Module):
    """A finite critic whose values (1e25) square beyond float32: the loss must still be finite."""

    def __init__(self) -> None:
        super().__init__()
        self.body = MLP(3, (4,), 1, init="default")
        with torch.no_grad():
            self.body.head.bias.fill_(1e25)

    def forward(self, x):
        return self.body(x)


@SLOW
@given(
    st.sampled_from(SCENARIOS),
    st.sampled_from(("relu", "tanh")),
    st.integers(1, 4),
    st.sampled_from(("actor_categorical", "critic", "huge_target")),
)
def test_fit_to_target_on_degenerate_models(scenario, activation, n, kind) -> None:
    fit_kw = {"epochs": 1, "minibatch_size": 2, "lr": 1e-3, "eps": 1e-5}
    obs = tiny_inputs(scenario, n)
    if kind == "huge_target":
        model, target, kind = tiny_model(scenario, activation), HugeCritic(), "critic"
    else:
        out_dim = 3 if kind == "actor_categorical" else 1
        model = tiny_model(scenario, activation, out_dim)
        target = tiny_model(scenario, activation, out_dim, seed=1)
    loss = fit_to_target(model, target, obs, kind=kind, **fit_kw)
    same = fit_to_target(model, model, obs, kind=kind, **fit_kw)
    if scenario == "nan_inputs":
        assert math.isnan(loss) and math.isnan(same)
        return
    assert math.isfinite(loss) and loss >= 0 and same == pytest.approx(0, abs=1e-6)
