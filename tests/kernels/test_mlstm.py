"""Tests of the mLSTM kernels against the float64 recurrent ground truth."""

from __future__ import annotations

import logging
import math

import pytest
import torch
import torch.nn.functional as F

from biolm.kernels import MLSTMState, mlstm, mlstm_step, registry
from biolm.kernels.mlstm.chunkwise import mlstm_chunkwise
from biolm.kernels.mlstm.reference import inv_normalizer, mlstm_parallel, mlstm_recurrent
from tests.kernels.helpers import rel_rms, run_with_grads

F64 = torch.float64

# (B, S, H, Dk, Dv, chunk): tails that are not chunk multiples, S=1, S=chunk, Dk != Dv, odd dims.
SHAPES = [
    (2, 37, 3, 12, 20, 16),
    (1, 1, 2, 12, 20, 16),
    (2, 16, 2, 8, 8, 16),
    (3, 50, 1, 5, 7, 8),
    (1, 20, 2, 6, 4, 64),
]


def grad_errors(grads, refs) -> dict[str, float]:
    """rel_rms per gradient, with a floor of 1e-3 of the largest reference norm in the denominator.

    Some gradients are tiny by cancellation (at S=1 from the zero state ``h = sign(q.k) v`` up to
    eps, so dh/dq ~ eps); relative to their own norm they only measure rounding noise.
    """
    floor = 1e-3 * max(r.detach().to(F64).norm().item() for r in refs)
    return {
        name: (
            (a.detach().to(F64) - r.detach().to(F64)).norm().item()
            / max(r.detach().to(F64).norm().item(), floor)
        )
        for name, a, r in zip("qkvifCnm"[: len(grads)], grads, refs, strict=True)
    }


def make_inputs(b, s, h, dk, dv, seed=0, dtype=F64):
    """q, k, v ~ N(0, 1); i ~ N(0, 3); f ~ N(3, 2): a realistic gate spread."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, s, h, dk, generator=g, dtype=F64)
    k = torch.randn(b, s, h, dk, generator=g, dtype=F64)
    v = torch.randn(b, s, h, dv, generator=g, dtype=F64)
    i = 3 * torch.randn(b, s, h, generator=g, dtype=F64)
    f = 3 + 2 * torch.randn(b, s, h, generator=g, dtype=F64)
    return [x.to(dtype) for x in (q, k, v, i, f)]


def make_state(b, h, dk, dv, seed=1) -> MLSTMState:
    """A realistic state: the final state of the reference after a random prefix."""
    _, st = mlstm_recurrent(*make_inputs(b, 6, h, dk, dv, seed=seed))
    return MLSTMState(*(x.detach() for x in st))


def chunkwise_fn(chunk):
    return lambda q, k, v, i, f, st: mlstm_chunkwise(q, k, v, i, f, state=st, chunk_size=chunk)


def reference_fn(q, k, v, i, f, st):
    return mlstm_recurrent(q, k, v, i, f, state=st)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("with_state", [False, True])
def test_chunkwise_matches_reference_float64(shape, with_state):
    b, s, h, dk, dv, chunk = shape
    inputs = make_inputs(b, s, h, dk, dv)
    state = make_state(b, h, dk, dv) if with_state else None
    h_ref, st_ref, g_ref = run_with_grads(reference_fn, inputs, state)
    h_ck, st_ck, g_ck = run_with_grads(chunkwise_fn(chunk), inputs, state)
    assert h_ck.shape == (b, s, h, dv)
    assert rel_rms(h_ck, h_ref) < 1e-10
    for a, r in zip(st_ck, st_ref, strict=True):
        assert rel_rms(a, r) < 1e-10
    errors = grad_errors(g_ck, g_ref)
    assert max(errors.values()) < 1e-10, errors


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("with_state", [False, True])
def test_chunkwise_float32_close_to_float64_reference(shape, with_state):
    b, s, h, dk, dv, chunk = shape
    inputs = make_inputs(b, s, h, dk, dv)
    state = make_state(b, h, dk, dv) if with_state else None
    h_ref, st_ref, g_ref = run_with_grads(reference_fn, inputs, state)
    state32 = None if state is None else MLSTMState(*(x.float() for x in state))
    h32, st32, g32 = run_with_grads(chunkwise_fn(chunk), [x.float() for x in inputs], state32)
    assert h32.dtype == torch.float32 and st32[0].dtype == torch.float32
    assert rel_rms(h32, h_ref) < 1e-5
    for a, r in zip(st32, st_ref, strict=True):
        assert rel_rms(a, r) < 1e-5
    errors = grad_errors(g32, g_ref)
    assert max(errors.values()) < 1e-4, errors


@pytest.mark.parametrize("shape", SHAPES)
def test_parallel_matches_reference(shape):
    b, s, h, dk, dv, _ = shape
    inputs = make_inputs(b, s, h, dk, dv, seed=3)

    def parallel_fn(q, k, v, i, f, st):
        return mlstm_parallel(q, k, v, i, f), ()

    h_ref, _, g_ref = run_with_grads(lambda *a: (mlstm_recurrent(*a)[0], ()), inputs)
    h_par, _, g_par = run_with_grads(parallel_fn, inputs)
    assert rel_rms(h_par, h_ref) < 1e-10
    errors = grad_errors(g_par, g_ref)
    assert max(errors.values()) < 1e-10, errors


@pytest.mark.parametrize("fn", [chunkwise_fn(8), reference_fn], ids=["chunkwise", "reference"])
@pytest.mark.parametrize("split", [1, 8, 13])
def test_split_state_equals_one_call(fn, split):
    q, k, v, i, f = make_inputs(2, 29, 2, 6, 10, seed=5)
    state = make_state(2, 2, 6, 10)
    h_full, st_full = fn(q, k, v, i, f, state)
    h1, st1 = fn(q[:, :split], k[:, :split], v[:, :split], i[:, :split], f[:, :split], state)
    h2, st2 = fn(q[:, split:], k[:, split:], v[:, split:], i[:, split:], f[:, split:], st1)
    assert rel_rms(torch.cat([h1, h2], dim=1), h_full) < 1e-12
    for a, r in zip(st2, st_full, strict=True):
        assert rel_rms(a, r) < 1e-12


@pytest.mark.parametrize("seq", [1, 17, 37, 63])
def test_padding_leaves_final_state_untouched(seq):
    # Closed input gates (i << 0) make any leak of padded steps into the stabilizer visible.
    q, k, v, i, f = make_inputs(2, seq, 2, 5, 3, seed=29)
    i, f = i / 3 - 8, f + 3
    h_ref, st_ref = mlstm_recurrent(q, k, v, i, f)
    h, st = mlstm_chunkwise(q, k, v, i, f, chunk_size=16)
    assert rel_rms(h, h_ref) < 1e-10
    for a, r in zip(st, st_ref, strict=True):
        assert rel_rms(a, r) < 1e-10


def test_gradcheck_chunkwise():
    q, k, v, i, f = make_inputs(1, 7, 2, 3, 2, seed=7)
    c0, n0, m0 = make_state(1, 2, 3, 2)
    leaves = [x.requires_grad_() for x in (q, k, v, i, f, c0, n0, m0)]

    def fn(q, k, v, i, f, c0, n0, m0):
        h, st = mlstm_chunkwise(q, k, v, i, f, state=MLSTMState(c0, n0, m0), chunk_size=3)
        return h, st.C, st.n, st.m

    assert torch.autograd.gradcheck(fn, leaves)


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


@pytest.mark.parametrize("pattern", list(_gate_patterns((1, 1, 1))))
@pytest.mark.parametrize("with_state", [False, True])
def test_extreme_gates_are_finite_float32(pattern, with_state):
    b, s, h, dk, dv = 2, 40, 2, 8, 6
    q, k, v, _, _ = make_inputs(b, s, h, dk, dv, dtype=torch.float32)
    i, f = _gate_patterns((b, s, h))[pattern]
    state = MLSTMState(*(x.float() for x in make_state(b, h, dk, dv))) if with_state else None
    h_out, st, grads = run_with_grads(chunkwise_fn(16), [q, k, v, i, f], state)
    assert torch.isfinite(h_out).all()
    assert all(torch.isfinite(x).all() for x in st)
    # Loose: float32 rounding of gates ~1e4 is amplified; with i = f = -1e4 h is exactly 0.
    h_ref, _ = mlstm_recurrent(q.double(), k.double(), v.double(), i.double(), f.double(), state)
    assert (h_out.double() - h_ref).norm() <= 1e-3 * h_ref.norm() + 1e-30
    for name, g in zip("qkvifCnm"[: len(grads)], grads, strict=True):
        assert torch.isfinite(g).all(), name


def test_bfloat16_inputs_close_to_reference():
    leaves = [x.to(torch.bfloat16).requires_grad_() for x in make_inputs(2, 45, 2, 16, 24, seed=9)]
    # The reference sees the same (bf16-rounded) inputs: rounding the inputs alone moves h by ~20%
    # here, since random data puts some normalizers near their floor.
    h_ref, _ = mlstm_recurrent(*(x.detach().to(F64) for x in leaves))
    h, st = mlstm(*leaves, chunk_size=16, return_state=True)
    assert h.dtype == torch.bfloat16 and st.C.dtype == torch.float32
    assert rel_rms(h, h_ref) < 3e-2
    h.float().square().sum().backward()
    for x in leaves:
        assert x.grad.dtype == torch.bfloat16 and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("lengths", [[5, 17, 1, 30], [9, 0, 16]])
@pytest.mark.parametrize("with_state", [False, True])
def test_cu_seqlens_equals_separate_sequences(lengths, with_state):
    total, n_seq, h, dk, dv = sum(lengths), len(lengths), 2, 6, 5
    q, k, v, i, f = make_inputs(1, total, h, dk, dv, seed=13)
    state = make_state(n_seq, h, dk, dv) if with_state else None
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32)
    h_packed, st_packed = mlstm(q, k, v, i, f, state=state, cu_seqlens=cu, chunk_size=8, return_state=True)
    assert h_packed.shape == (1, total, h, dv) and st_packed.C.shape == (n_seq, h, dk, dv)
    for j in range(n_seq):
        a, b = cu[j].item(), cu[j + 1].item()
        seg_state = None if state is None else MLSTMState(*(x[j : j + 1] for x in state))
        h_ref, st_ref = mlstm_recurrent(q[:, a:b], k[:, a:b], v[:, a:b], i[:, a:b], f[:, a:b], seg_state)
        if b > a:
            assert rel_rms(h_packed[:, a:b], h_ref) < 1e-10
        for x, r in zip(st_packed, st_ref, strict=True):
            assert torch.allclose(x[j : j + 1], r, rtol=1e-10, atol=1e-12)


def test_cu_seqlens_rejects_bad_input():
    q, k, v, i, f = make_inputs(2, 10, 1, 4, 4)
    with pytest.raises(ValueError, match="batch size 1"):
        mlstm(q, k, v, i, f, cu_seqlens=torch.tensor([0, 4, 10]))
    q, k, v, i, f = (x[:1] for x in (q, k, v, i, f))
    with pytest.raises(ValueError, match="rise from 0"):
        mlstm(q, k, v, i, f, cu_seqlens=torch.tensor([0, 4, 9]))


def test_mlstm_step_matches_literal_formula():
    b, h, dk, dv = 3, 2, 5, 7
    q, k, v, i, f = (x[:, 0] for x in make_inputs(b, 1, h, dk, dv, seed=17))
    c0, n0, m0 = make_state(b, h, dk, dv)
    h_step, (c1, n1, m1) = mlstm_step(q, k, v, i, f, MLSTMState(c0, n0, m0))
    log_f = F.logsigmoid(f)
    m = torch.maximum(log_f + m0, i)
    fd, ig = torch.exp(log_f + m0 - m), torch.exp(i - m)
    c = fd[..., None, None] * c0 + ig[..., None, None] * torch.einsum("bhk,bhv->bhkv", k, v)
    n = fd[..., None] * n0 + ig[..., None] * k
    qs = q / math.sqrt(dk)
    den = torch.maximum((qs * n).sum(-1).abs(), torch.exp(-m)) + 1e-6
    h_lit = torch.einsum("bhk,bhkv->bhv", qs, c) / den[..., None]
    assert rel_rms(h_step, h_lit) < 1e-13
    for x, r in zip((c1, n1, m1), (c, n, m), strict=True):
        assert rel_rms(x, r) < 1e-13


def test_inv_normalizer_equals_max_form_and_never_overflows():
    d = torch.tensor([0.0, 1e-3, -2.0, 5.0, 0.0, 1e-30], dtype=F64)
    m = torch.tensor([0.0, 3.0, -1.0, 2.0, 5.0, -20.0], dtype=F64, requires_grad=True)
    lit = 1 / (torch.maximum(d.abs(), torch.exp(-m)) + 1e-6)
    ours = inv_normalizer(d, m)
    assert torch.allclose(ours, lit, rtol=1e-12, atol=0)
    (g_lit,) = torch.autograd.grad(lit.sum(), m)
    (g_ours,) = torch.autograd.grad(ours.sum(), m)
    assert torch.allclose(g_ours, g_lit, rtol=1e-9, atol=1e-300)
    m32 = torch.tensor([-1e8, -100.0, 1e4], requires_grad=True)
    out = inv_normalizer(torch.zeros(3), m32)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(m32.grad).all()


def test_step_loop_continues_chunkwise():
    b, s, extra, h, dk, dv = 2, 21, 5, 2, 6, 9
    q, k, v, i, f = make_inputs(b, s + extra, h, dk, dv, seed=19)
    h_long, st_long = mlstm(q, k, v, i, f, chunk_size=8, return_state=True)
    _, st = mlstm(q[:, :s], k[:, :s], v[:, :s], i[:, :s], f[:, :s], chunk_size=8, return_state=True)
    for t in range(s, s + extra):
        h_t, st = mlstm_step(q[:, t], k[:, t], v[:, t], i[:, t], f[:, t], st)
        assert rel_rms(h_t, h_long[:, t]) < 1e-12
    for x, r in zip(st, st_long, strict=True):
        assert rel_rms(x, r) < 1e-12


def test_public_api_backends_agree():
    q, k, v, i, f = make_inputs(2, 19, 2, 4, 6, seed=23, dtype=torch.float32)
    h_t = mlstm(q, k, v, i, f, backend="torch", chunk_size=4)
    h_r = mlstm(q, k, v, i, f, backend="reference")
    assert h_t.shape == (2, 19, 2, 6) and h_t.dtype == torch.float32
    assert rel_rms(h_t, h_r) < 1e-5
    for chunk in (1, 7, 64):
        assert rel_rms(mlstm(q, k, v, i, f, chunk_size=chunk), h_r) < 1e-5
    with pytest.raises(ValueError, match="v must be"):
        mlstm(q, k, v[:, :3], i, f)
    with pytest.raises(ValueError, match="chunk_size"):
        mlstm(q, k, v, i, f, chunk_size=0)


def test_registry_auto_is_torch_on_cpu(caplog, monkeypatch):
    monkeypatch.setattr(registry, "_DECISIONS", {})
    with caplog.at_level(logging.INFO, logger="biolm.kernels"):
        assert registry.resolve_backend("mlstm", "auto", torch.device("cpu")) == "torch"
        assert registry.resolve_backend("mlstm", "auto", torch.device("cpu")) == "torch"
    assert len([r for r in caplog.records if "mlstm" in r.getMessage()]) == 1
    assert "CUDA" in caplog.records[0].getMessage()
    assert ("mlstm", "torch") in {(op, be) for op, be, _ in registry.backend_report("cpu")}
    assert registry.resolve_backend("mlstm", "reference", torch.device("cpu")) == "reference"


def test_registry_errors():
    with pytest.raises(ValueError, match="auto, torch, triton, reference"):
        registry.resolve_backend("mlstm", "cuda_fast", torch.device("cpu"))
    with pytest.raises(RuntimeError, match="no CUDA"):
        registry.resolve_backend("mlstm", "triton", torch.device("cpu"))
    q, k, v, i, f = make_inputs(1, 3, 1, 2, 2)
    with pytest.raises(RuntimeError, match="triton"):
        mlstm(q, k, v, i, f, backend="triton")


def test_registry_prefers_registered_triton_kernel_on_cuda(monkeypatch):
    cuda = torch.device("cuda")
    monkeypatch.setattr(registry, "_triton_import_error", lambda: None)
    # mlstm's triton kernel is registered but opt-in until it has been validated on a GPU.
    monkeypatch.setitem(registry._TRITON_KERNELS, "mlstm", lambda *a: None)
    assert registry.resolve_backend("mlstm", "auto", cuda) == "torch"
    assert "not yet validated" in dict(((op, r) for op, _, r in registry.backend_report(cuda)))["mlstm"]
    assert registry.resolve_backend("mlstm", "triton", cuda) == "triton"
    with pytest.raises(RuntimeError, match="not implemented yet"):
        registry.resolve_backend("no_such_op", "triton", cuda)
    monkeypatch.setitem(registry._TRITON_KERNELS, "fake_op", lambda *a: None)
    monkeypatch.setattr(registry, "_TRITON_AUTO", {"fake_op"})
    assert registry.resolve_backend("fake_op", "auto", cuda) == "triton"
    monkeypatch.setitem(registry._TRITON_KERNELS, "broken_op", "no.such.module:fn")
    assert registry.resolve_backend("broken_op", "auto", cuda) == "torch"
    assert "failed to load" in registry._DECISIONS[("broken_op", "torch")]
    monkeypatch.setattr(registry, "_triton_import_error", lambda: "triton not installed")
    assert registry.resolve_backend("fake_op", "auto", cuda) == "torch"
