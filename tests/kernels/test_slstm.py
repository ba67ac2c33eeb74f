"""Tests of the sLSTM kernels against the float64 recurrent ground truth."""

from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F

from biolm.kernels import registry
from biolm.kernels.slstm import SLSTMState, slstm, slstm_step
from biolm.kernels.slstm.chunkwise import slstm_fused
from biolm.kernels.slstm.reference import slstm_recurrent
from tests.kernels.helpers import rel_rms, run_with_grads

F64 = torch.float64

# (B, S, H, D): odd and non-power-of-two head dims, S=1, a single head.
SHAPES = [(2, 23, 3, 12), (1, 1, 2, 5), (3, 16, 1, 8), (2, 9, 2, 7)]


def grad_errors(grads, refs, names) -> dict[str, float]:
    """rel_rms per gradient, with a floor of 1e-3 of the largest reference norm in the denominator.

    A gradient that is tiny by construction (e.g. that of ``m_0``, which ``h`` does not depend on)
    measures only rounding noise relative to its own norm.
    """
    floor = 1e-3 * max(r.detach().to(F64).norm().item() for r in refs)
    return {
        name: (a.to(F64) - r.to(F64)).norm().item() / max(r.to(F64).norm().item(), floor)
        for name, a, r in zip(names[: len(grads)], grads, refs, strict=True)
    }


def make_inputs(b, s, h, d, seed=0, dtype=F64):
    """gates_x, R, bias: gate inputs ~ N(0, 1) except i ~ N(0, 3) and f ~ N(3, 2); R ~ N(0, 1/D)."""
    g = torch.Generator().manual_seed(seed)
    gx = torch.randn(b, s, h, 4, d, generator=g, dtype=F64)
    gx[..., 0, :] *= 3
    gx[..., 1, :] = 3 + 2 * gx[..., 1, :]
    r = torch.randn(h, 4, d, d, generator=g, dtype=F64) * d**-0.5
    bias = 0.5 * torch.randn(h, 4, d, generator=g, dtype=F64)
    return [x.to(dtype) for x in (gx, r, bias)]


def make_state(b, h, d, seed=1) -> SLSTMState:
    """A realistic state: the final state of the reference after a random prefix."""
    gx, r, bias = make_inputs(b, 6, h, d, seed=seed)
    _, st = slstm_recurrent(gx, r, bias=bias)
    return SLSTMState(*(x.detach() for x in st))


def fused_fn(gx, r, bias, st):
    return slstm_fused(gx, r, state=st, bias=bias)


def reference_fn(gx, r, bias, st):
    return slstm_recurrent(gx, r, state=st, bias=bias)


NAMES = ("gates_x", "R", "bias", "h0", "c0", "n0", "m0")


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny per-step matmuls gain nothing from threads, and on a busy machine they lose a lot."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("with_state", [False, True])
def test_fused_matches_reference_float64(shape, with_state):
    b, s, h, d = shape
    inputs = make_inputs(b, s, h, d)
    state = make_state(b, h, d) if with_state else None
    h_ref, st_ref, g_ref = run_with_grads(reference_fn, inputs, state)
    h_fu, st_fu, g_fu = run_with_grads(fused_fn, inputs, state)
    assert h_fu.shape == (b, s, h, d)
    assert rel_rms(h_fu, h_ref) < 1e-12
    for a, r in zip(st_fu, st_ref, strict=True):
        assert a.shape == (b, h, d)
        assert rel_rms(a, r) < 1e-12
    errors = grad_errors(g_fu, g_ref, NAMES)
    assert max(errors.values()) < 1e-10, errors


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("with_state", [False, True])
def test_fused_float32_close_to_float64_reference(shape, with_state):
    b, s, h, d = shape
    inputs = make_inputs(b, s, h, d, seed=2)
    state = make_state(b, h, d) if with_state else None
    h_ref, st_ref, g_ref = run_with_grads(reference_fn, inputs, state)
    state32 = None if state is None else SLSTMState(*(x.float() for x in state))
    h32, st32, g32 = run_with_grads(fused_fn, [x.float() for x in inputs], state32)
    assert h32.dtype == torch.float32 and all(x.dtype == torch.float32 for x in st32)
    assert rel_rms(h32, h_ref) < 1e-5
    for a, r in zip(st32, st_ref, strict=True):
        assert rel_rms(a, r) < 1e-5
    errors = grad_errors(g32, g_ref, NAMES)
    assert max(errors.values()) < 1e-4, errors


def test_gradcheck_fused():
    gx, r, bias = make_inputs(2, 5, 2, 3, seed=7)
    state = make_state(2, 2, 3)
    leaves = [x.clone().requires_grad_() for x in (gx, r, bias, *state)]

    def with_state(gx, r, bias, h0, c0, n0, m0):
        h, st = slstm_fused(gx, r, state=SLSTMState(h0, c0, n0, m0), bias=bias)
        return h, *st

    def from_empty(gx, r, bias):
        h, st = slstm_fused(gx, r, bias=bias)
        return h, *st

    assert torch.autograd.gradcheck(with_state, leaves)
    assert torch.autograd.gradcheck(from_empty, leaves[:3])


@pytest.mark.parametrize("fn", [fused_fn, reference_fn], ids=["fused", "reference"])
@pytest.mark.parametrize("split", [1, 7, 12])
def test_split_state_equals_one_call(fn, split):
    gx, r, bias = make_inputs(2, 19, 2, 6, seed=5)
    state = make_state(2, 2, 6)
    h_full, st_full = fn(gx, r, bias, state)
    h1, st1 = fn(gx[:, :split], r, bias, state)
    h2, st2 = fn(gx[:, split:], r, bias, st1)
    assert rel_rms(torch.cat([h1, h2], dim=1), h_full) < 1e-12
    for a, ref in zip(st2, st_full, strict=True):
        assert rel_rms(a, ref) < 1e-12


def test_step_continues_sequence():
    b, s, extra, h, d = 2, 13, 5, 2, 6
    gx, r, bias = make_inputs(b, s + extra, h, d, seed=19)
    h_long, st_long = slstm(gx, r, bias=bias, return_state=True)
    _, st = slstm(gx[:, :s], r, bias=bias, return_state=True)
    for t in range(s, s + extra):
        h_t, st = slstm_step(gx[:, t], r, st, bias=bias)
        assert rel_rms(h_t, h_long[:, t]) < 1e-12
    for x, ref in zip(st, st_long, strict=True):
        assert rel_rms(x, ref) < 1e-12


def test_step_matches_literal_formula():
    b, h, d = 3, 2, 5
    gx, r, bias = make_inputs(b, 1, h, d, seed=17)
    gx = gx[:, 0]
    h0, c0, n0, m0 = make_state(b, h, d)
    h_step, (h1, c1, n1, m1) = slstm_step(gx, r, SLSTMState(h0, c0, n0, m0), bias=bias)
    pre = [gx[:, :, g] + torch.einsum("bhd,hde->bhe", h0, r[:, g]) + bias[:, g] for g in range(4)]
    log_f = F.logsigmoid(pre[1])
    m = torch.maximum(log_f + m0, pre[0])
    i_gate, f_gate = torch.exp(pre[0] - m), torch.exp(log_f + m0 - m)
    c = f_gate * c0 + i_gate * torch.tanh(pre[2])
    n = f_gate * n0 + i_gate
    h_lit = torch.sigmoid(pre[3]) * c / n
    assert rel_rms(h_step, h_lit) < 1e-13
    for x, ref in zip((h1, c1, n1, m1), (h_lit, c, n, m), strict=True):
        assert rel_rms(x, ref) < 1e-13


def test_empty_state_starts_with_unit_normalizer():
    # m_0 = 0 taken literally would underflow i' = exp(-1e4 - 0) and give h = 0 / 0.
    gx, r, _ = make_inputs(2, 3, 2, 4, seed=3, dtype=torch.float32)
    gx[:, 0, :, 0] = -1e4
    gx[:, 0, :, 1] = 1e4
    for fn in (slstm_fused, slstm_recurrent):
        h, st = fn(gx, r)
        assert torch.isfinite(h).all()
        z, o = gx[:, 0, :, 2], gx[:, 0, :, 3]
        assert torch.allclose(h[:, 0], torch.sigmoid(o) * torch.tanh(z), rtol=1e-6, atol=1e-7)
        assert (st.n >= 1).all()


def _gate_patterns(shape):
    g = torch.Generator().manual_seed(11)
    big = torch.full(shape, 1e4)
    sign = torch.where(torch.rand(shape, generator=g) < 0.5, -1.0, 1.0)
    return {
        "i+f+": (big, big),
        "i-f-": (-big, -big),
        "i+f-": (big, -big),
        "i-f+": (-big, big),
        "random_signs": (big * sign, big * sign.roll(1, dims=1)),
        "uniform": (
            torch.empty(shape).uniform_(-1e4, 1e4, generator=g),
            torch.empty(shape).uniform_(-1e4, 1e4, generator=g),
        ),
        "mixed_scales": (big * sign * torch.rand(shape, generator=g) ** 4, -big * sign),
    }


@pytest.mark.parametrize("pattern", list(_gate_patterns((1, 1))))
@pytest.mark.parametrize("with_state", [False, True])
def test_extreme_gates_are_finite_float32(pattern, with_state):
    b, s, h, d = 2, 30, 2, 6
    gx, r, bias = make_inputs(b, s, h, d, dtype=torch.float32)
    i, f = _gate_patterns((b, s, h, d))[pattern]
    gx[..., 0, :], gx[..., 1, :] = i, f
    # z and o at +-1e4 as well: tanh and sigmoid saturate, with zero derivatives.
    gx[..., 2, :] = 1e4 * torch.sign(gx[..., 2, :])
    gx[:, ::2, :, 3] = -1e4
    state = SLSTMState(*(x.float() for x in make_state(b, h, d))) if with_state else None
    h_out, st, grads = run_with_grads(fused_fn, [gx, r, bias], state)
    assert torch.isfinite(h_out).all()
    assert all(torch.isfinite(x).all() for x in st)
    for name, g in zip(NAMES, grads, strict=False):
        assert torch.isfinite(g).all(), name
    h_ref, _ = slstm_recurrent(gx.double(), r.double(), state=state, bias=bias.double())
    # Loose: float32 rounding of pre-activations ~1e4 (ulp ~1e-3) moves the exponential gates.
    assert (h_out.double() - h_ref).norm() <= 1e-2 * h_ref.norm() + 1e-30


def test_bfloat16_inputs():
    leaves = [x.to(torch.bfloat16).requires_grad_() for x in make_inputs(2, 17, 2, 8, seed=9)]
    h_ref, _ = slstm_recurrent(*(x.detach().to(F64) for x in leaves[:2]), bias=leaves[2].detach().double())
    h, st = slstm(leaves[0], leaves[1], bias=leaves[2], return_state=True)
    assert h.dtype == torch.bfloat16 and st.c.dtype == torch.float32
    assert rel_rms(h, h_ref) < 3e-2
    h.float().square().sum().backward()
    for x in leaves:
        assert x.grad.dtype == torch.bfloat16 and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("lengths", [[5, 11, 1, 8], [7, 0, 9]])
@pytest.mark.parametrize("with_state", [False, True])
def test_cu_seqlens_equals_separate_sequences(lengths, with_state):
    total, n_seq, h, d = sum(lengths), len(lengths), 2, 5
    gx, r, bias = make_inputs(1, total, h, d, seed=13)
    state = make_state(n_seq, h, d) if with_state else None
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32)
    h_packed, st_packed = slstm(gx, r, bias=bias, state=state, cu_seqlens=cu, return_state=True)
    assert h_packed.shape == (1, total, h, d) and st_packed.c.shape == (n_seq, h, d)
    for j in range(n_seq):
        a, b = cu[j].item(), cu[j + 1].item()
        seg_state = None if state is None else SLSTMState(*(x[j : j + 1] for x in state))
        h_ref, st_ref = slstm_recurrent(gx[:, a:b], r, state=seg_state, bias=bias)
        if b > a:
            assert rel_rms(h_packed[:, a:b], h_ref) < 1e-12
        for x, ref in zip(st_packed, st_ref, strict=True):
            assert torch.allclose(x[j : j + 1], ref, rtol=1e-12, atol=1e-14)


def test_bad_input_is_rejected():
    gx, r, bias = make_inputs(2, 10, 2, 4)
    with pytest.raises(ValueError, match="batch size 1"):
        slstm(gx, r, cu_seqlens=torch.tensor([0, 4, 10]))
    with pytest.raises(ValueError, match="rise from 0"):
        slstm(gx[:1], r, cu_seqlens=torch.tensor([0, 4, 9]))
    with pytest.raises(ValueError, match="gates_x must be"):
        slstm(gx[..., :3, :], r)
    with pytest.raises(ValueError, match="R must be"):
        slstm(gx, r[:, :, :3])
    with pytest.raises(ValueError, match="bias must be"):
        slstm(gx, r, bias=bias[:1])


@pytest.mark.parametrize("dim", [64, 96, 128])
def test_large_head_dims_run(dim):
    gx, r, bias = make_inputs(2, 4, 2, dim, seed=21)
    h_ref, _, g_ref = run_with_grads(reference_fn, [gx, r, bias])
    h32, _, g32 = run_with_grads(fused_fn, [x.float() for x in (gx, r, bias)])
    assert rel_rms(h32, h_ref) < 1e-5
    errors = grad_errors(g32, g_ref, NAMES)
    assert max(errors.values()) < 1e-4, errors


def test_public_api_backends_agree():
    gx, r, bias = make_inputs(2, 11, 2, 4, seed=23, dtype=torch.float32)
    h_t = slstm(gx, r, bias=bias, backend="torch")
    h_r = slstm(gx, r, bias=bias, backend="reference")
    assert h_t.shape == (2, 11, 2, 4) and h_t.dtype == torch.float32
    assert rel_rms(h_t, h_r) < 1e-5
    assert rel_rms(slstm(gx, r, bias=bias), h_r) < 1e-5
    h_empty, st = slstm(gx[:, :0], r, return_state=True)
    assert h_empty.shape == (2, 0, 2, 4) and not st.n.any()


def test_registry_auto_is_torch_on_cpu(caplog, monkeypatch):
    monkeypatch.setattr(registry, "_DECISIONS", {})
    with caplog.at_level(logging.INFO, logger="biolm.kernels"):
        assert registry.resolve_backend("slstm", "auto", torch.device("cpu")) == "torch"
        assert registry.resolve_backend("slstm", "auto", torch.device("cpu")) == "torch"
    assert len([r for r in caplog.records if "slstm" in r.getMessage()]) == 1
    assert ("slstm", "torch") in {(op, be) for op, be, _ in registry.backend_report("cpu")}
    gx, r, _ = make_inputs(1, 3, 1, 2)
    with pytest.raises(RuntimeError, match="triton"):
        slstm(gx, r, backend="triton")
