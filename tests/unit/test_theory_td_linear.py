"""Linearised TD closed forms (Anonymous 2023 §4, A-C) against the Bellman equation, a simulation of the linear ODE in
parameter space, the paper's own eq. 43, exact moments of a linear model, and the infinite-width kernels."""

from __future__ import annotations

import math

import pytest
import torch
from torch.func import functional_call, jacrev

from repdyn.metrics.ntk import ntk_gram
from repdyn.theory.ntk_mlp import NTKMLP, analytic_kernels
from repdyn.theory.td_linear import (
    KernelBlocks,
    dual_matrices,
    ensemble_moments,
    eval_operator,
    gaussian_nll,
    linearised_predictions,
    param_displacement,
)

F64 = torch.float64


def _setup(seed: int = 0, n: int = 6, m: int = 4, gamma: float = 0.9):
    torch.manual_seed(seed)
    model = NTKMLP(2, width=16, depth=2).to(F64)
    x, xp, xs = torch.randn(n, 2, dtype=F64), torch.randn(n, 2, dtype=F64), torch.randn(m, 2, dtype=F64)
    r = torch.randn(n, dtype=F64)
    g = torch.full((n,), gamma, dtype=F64)
    g[-1] = 0.0  # one terminal transition: no bootstrap
    params = {k: v.detach() for k, v in model.named_parameters()}

    def f(p, inp):
        return functional_call(model, p, (inp,))[0].reshape(-1)

    def jac(inp):  # explicit Jacobian, only as the test's reference
        j = jacrev(f)(params, inp)
        return torch.cat([v.reshape(inp.shape[0], -1) for v in j.values()], dim=1)

    J = {"x": jac(x), "xp": jac(xp), "s": jac(xs)}
    q0 = {"x": f(params, x).detach(), "xp": f(params, xp).detach(), "s": f(params, xs).detach()}
    allj = torch.cat([J["x"], J["xp"], J["s"]])
    blocks = KernelBlocks.from_full(allj @ allj.T, n, m)
    return model, (x, xp, xs), r, g, J, q0, blocks


def test_blocks_match_ntk_gram() -> None:
    model, (x, xp, xs), *_, blocks = _setup()
    K = ntk_gram(model, torch.cat([x, xp, xs]))
    assert torch.allclose(KernelBlocks.from_full(K, 6, 4).xpx, blocks.xpx, atol=1e-10)


@pytest.mark.parametrize(("mode", "tau"), [("single", 0.0), ("target", 0.5)])
def test_infinite_time_solution_satisfies_bellman_on_dataset(mode: str, tau: float) -> None:
    model, (x, xp, xs), r, g, J, q0, _ = _setup()
    # Evaluate at X* = [X; X'] so Q_∞(X) and Q_∞(X') come out of one prediction.
    allj = torch.cat([J["x"], J["xp"], J["x"], J["xp"]])
    blocks = KernelBlocks.from_full(allj @ allj.T, 6, 12)
    M = dual_matrices(blocks, g, 0.1, [math.inf], mode=mode, tau=tau)
    q = linearised_predictions(
        torch.cat([q0["x"], q0["xp"]]), q0["x"], q0["xp"], r, g, eval_operator(blocks, g, mode), M
    )
    q_x, q_xp = q[0, :6], q[0, 6:]
    assert torch.allclose(q_x, r + g * q_xp, atol=1e-8)  # Q(s,a) = r + γ(1 − done) Q(s', π(s'))


def test_gamma_zero_reduces_to_kernel_regression() -> None:
    model, _, r, g, J, q0, blocks = _setup()
    g0 = torch.zeros_like(g)
    allj = torch.cat([J["x"], J["xp"], J["x"]])
    blocks = KernelBlocks.from_full(allj @ allj.T, 6, 6)
    M = dual_matrices(blocks, g0, 0.1, [math.inf])
    q = linearised_predictions(q0["x"], q0["x"], q0["xp"], r, g0, eval_operator(blocks, g0), M)
    assert torch.allclose(q[0], r, atol=1e-8)  # Anonymous 2023 eq. 33


@pytest.mark.parametrize(("mode", "tau"), [("single", 0.0), ("target", 0.3), ("target", 0.0)])
def test_closed_form_matches_simulated_linear_ode(mode: str, tau: float) -> None:
    model, (x, xp, xs), r, g, J, q0, blocks = _setup()
    eta, t, dt = 0.05, 6.0, 2e-3
    U, V, Js = J["x"], J["xp"], J["s"]
    r_hat = q0["x"] - r - g * q0["xp"]
    w = torch.zeros(U.shape[1], dtype=F64)
    wb = torch.zeros_like(w)
    for _ in range(round(t / dt)):  # explicit Euler of eq. 7 (single) / eq. 37 (target) in parameter space
        if mode == "single":
            D = U - g[:, None] * V
            dw, dwb = -eta * D.T @ (r_hat + D @ w), torch.zeros_like(w)
        else:
            dw, dwb = -eta * U.T @ (r_hat + U @ w - g * (V @ wb)), tau * (w - wb)
        w, wb = w + dt * dw, wb + dt * dwb
    M = dual_matrices(blocks, g, eta, [t], mode=mode, tau=tau)
    pred = linearised_predictions(q0["s"], q0["x"], q0["xp"], r, g, eval_operator(blocks, g, mode), M)[0]
    assert torch.allclose(pred, q0["s"] + Js @ w, atol=2e-3 * (1 + w.norm()))
    omega = param_displacement(model, x, xp, M[0] @ r_hat, g, mode)
    assert torch.allclose(omega, w, atol=2e-3 * w.norm())


def test_target_network_matches_paper_eq_43() -> None:
    _, _, r, g, J, q0, blocks = _setup()
    g = torch.full_like(g, 0.9)  # eq. 43 is written for a scalar γ
    eta, tau, t, n = 0.05, 0.3, 7.0, 6
    U, V = J["x"], J["xp"]
    r_hat = q0["x"] - r - g * q0["xp"]
    mine = -U.T @ (dual_matrices(blocks, g, eta, [t], mode="target", tau=tau)[0] @ r_hat)
    UU, VU, eye = U @ U.T, V @ U.T, torch.eye(n, dtype=F64)
    big = torch.cat([torch.cat([-eta * UU, eta * 0.9 * VU], 1), torch.cat([tau * eye, -tau * eye], 1)])
    E = torch.linalg.matrix_exp(big * t)
    paper = U.T @ torch.linalg.solve(UU - 0.9 * VU, (E[:n, :n] - eye + eta * 0.9 / tau * VU @ E[n:, :n]) @ r_hat)
    assert torch.allclose(mine, paper, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("mode", ["single", "target"])
def test_ensemble_moments_exact_for_linear_model(mode: str) -> None:
    # f(x) = φ(x)ᵀθ with θ ~ N(0, I): the linearisation is exact and NNGP = NTK = ΦΦᵀ, so Q_t(X*) = Zr + Aθ with
    # A = Φ* − Z(Φ − GΦ') has mean Zr and covariance AAᵀ exactly.
    gen = torch.Generator().manual_seed(3)
    n, m, p = 5, 3, 9
    phi, phip, phis = (torch.randn(k, p, generator=gen, dtype=F64) for k in (n, n, m))
    r, g = torch.randn(n, generator=gen, dtype=F64), torch.tensor([0.9, 0.9, 0.9, 0.9, 0.0], dtype=F64)
    allp = torch.cat([phi, phip, phis])
    K = KernelBlocks.from_full(allp @ allp.T, n, m)
    M = dual_matrices(K, g, 0.2, [3.0, math.inf], mode=mode, tau=0.4)
    mean, cov = ensemble_moments(K, K, r, g, M, mode)
    Z = eval_operator(K, g, mode)[None] @ M
    A = phis[None] - Z @ (phi - g[:, None] * phip)[None]
    assert torch.allclose(mean, (Z @ r[:, None])[..., 0], atol=1e-10)
    assert torch.allclose(cov, A @ A.transpose(1, 2), atol=1e-8)
    # …and one draw of θ gives exactly the closed-form prediction linearised_predictions computes.
    theta = torch.randn(p, generator=gen, dtype=F64)
    q = linearised_predictions(phis @ theta, phi @ theta, phip @ theta, r, g, eval_operator(K, g, mode), M)
    assert torch.allclose(q, mean + A @ theta, atol=1e-8)


def test_analytic_kernels_match_wide_network() -> None:
    torch.manual_seed(0)
    x = torch.randn(5, 3, dtype=F64)
    nngp, ntk = analytic_kernels(x, depth=2, sigma_w2=1.0, sigma_b2=0.1)
    nets = [NTKMLP(3, width=1024, depth=2).to(F64) for _ in range(4)]
    emp = torch.stack([ntk_gram(net, x) for net in nets]).mean(0)
    assert torch.allclose(emp, ntk, rtol=0.08, atol=0.08 * float(ntk.abs().max()))
    # One hidden layer, one input: closed form K¹ = x²/1 + 0.1 → K² = κ₁ + 0.1 with θ = 0, κ₁ = K¹/2.
    nngp1, ntk1 = analytic_kernels(torch.tensor([[2.0]], dtype=F64), depth=1)
    k1 = 4.0 + 0.1
    assert float(nngp1) == pytest.approx(k1 / 2 + 0.1)
    assert float(ntk1) == pytest.approx(k1 / 2 + 0.1 + 0.5 * k1)
    # The NNGP is the prior covariance of the outputs: check against many (narrower) networks.
    net, outs = NTKMLP(3, width=128, depth=2).to(F64), []
    with torch.no_grad():
        for _ in range(400):
            for prm in net.parameters():  # every NTK-parameterised weight is N(0, 1): redraw = a fresh init
                prm.normal_()
            outs.append(net(x)[0][:, 0])
    outs = torch.stack(outs)
    assert torch.allclose(outs.T.cov(), nngp, atol=0.2 * float(nngp.abs().max()))


def test_gaussian_nll_known_value_and_bad_inputs() -> None:
    nll = gaussian_nll(torch.tensor([1.0]), torch.tensor([0.0]), torch.tensor([1.0]))
    assert float(nll) == pytest.approx(0.5 * math.log(2 * math.pi) + 0.5)
    _, _, r, g, _, _, blocks = _setup()
    with pytest.raises(ValueError, match="mode"):
        dual_matrices(blocks, g, 0.1, [1.0], mode="double")
    with pytest.raises(ValueError, match="eta"):
        dual_matrices(blocks, g, 0.0, [1.0])
    with pytest.raises(ValueError, match="K must be"):
        KernelBlocks.from_full(torch.zeros(3, 3), 2, 1)
