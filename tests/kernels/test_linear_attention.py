"""Tests of the linear attention kernels against the float64 recurrent ground truth."""

from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F

from biolm.kernels import registry
from biolm.kernels.linear_attention import LinearAttentionState, linear_attention, linear_attention_step
from biolm.kernels.linear_attention.chunkwise import linear_attention_chunkwise, segment_sums
from biolm.kernels.linear_attention.reference import linear_attention_recurrent
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
MODES = [(False, False), (True, False), (False, True), (True, True)]
MODE_IDS = ["plain", "gated", "plain-norm", "gated-norm"]


def grad_errors(grads, refs, names) -> dict[str, float]:
    """rel_rms per gradient, with a floor of 1e-3 of the largest reference norm in the denominator.

    Some gradients are tiny by cancellation (e.g. d/dg at S=1, where the decay only touches a zero
    state); relative to their own norm they only measure rounding noise.
    """
    floor = 1e-3 * max(r.detach().to(F64).norm().item() for r in refs)
    return {
        name: (
            (a.detach().to(F64) - r.detach().to(F64)).norm().item()
            / max(r.detach().to(F64).norm().item(), floor)
        )
        for name, a, r in zip(names, grads, refs, strict=True)
    }


def make_inputs(b, s, h, dk, dv, seed=0, dtype=F64):
    """q, k, v ~ N(0, 1); log_decay = logsigmoid(N(2, 2)): decays from ~0.5 to ~1 and a few strong."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, s, h, dk, generator=g, dtype=F64)
    k = torch.randn(b, s, h, dk, generator=g, dtype=F64)
    v = torch.randn(b, s, h, dv, generator=g, dtype=F64)
    log_decay = F.logsigmoid(2 + 2 * torch.randn(b, s, h, generator=g, dtype=F64))
    return [x.to(dtype) for x in (q, k, v, log_decay)]


def make_state(b, h, dk, dv, seed=1) -> LinearAttentionState:
    """A realistic state: the final state of the reference after a random prefix."""
    q, k, v, g = make_inputs(b, 6, h, dk, dv, seed=seed)
    _, st = linear_attention_recurrent(q, k, v, log_decay=g)
    return LinearAttentionState(*(x.detach() for x in st))


def chunkwise_fn(chunk, normalize=False):
    def fn(q, k, v, g, st):
        return linear_attention_chunkwise(
            q, k, v, log_decay=g, state=st, normalize=normalize, chunk_size=chunk
        )

    return fn


def reference_fn(normalize=False):
    def fn(q, k, v, g, st):
        return linear_attention_recurrent(q, k, v, log_decay=g, state=st, normalize=normalize)

    return fn


def _plain(fn):
    """``fn(q, k, v, g, st)`` -> ``fn(q, k, v, st)`` with no decay."""
    return lambda q, k, v, st: fn(q, k, v, None, st)


def _compare(shape, gated, normalize, with_state, dtype):
    b, s, h, dk, dv, chunk = shape
    q, k, v, g = make_inputs(b, s, h, dk, dv)
    inputs, names = ([q, k, v, g], "qkvg") if gated else ([q, k, v], "qkv")
    state = make_state(b, h, dk, dv) if with_state else None
    ref_fn, ck_fn = reference_fn(normalize), chunkwise_fn(chunk, normalize)
    if not gated:
        ref_fn, ck_fn = _plain(ref_fn), _plain(ck_fn)
    h_ref, st_ref, g_ref = run_with_grads(ref_fn, inputs, state)
    cast_state = None if state is None else LinearAttentionState(*(x.to(dtype) for x in state))
    h_ck, st_ck, g_ck = run_with_grads(ck_fn, [x.to(dtype) for x in inputs], cast_state)
    assert h_ck.shape == (b, s, h, dv) and h_ck.dtype == dtype and st_ck[0].dtype == dtype
    names = names + ("Sz" if with_state else "")
    return (
        rel_rms(h_ck, h_ref),
        [rel_rms(a, r) for a, r in zip(st_ck, st_ref, strict=True)],
        grad_errors(g_ck, g_ref, names),
    )


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("gated", "normalize"), MODES, ids=MODE_IDS)
@pytest.mark.parametrize("with_state", [False, True])
def test_chunkwise_matches_reference_float64(shape, gated, normalize, with_state):
    h_err, st_errs, g_errs = _compare(shape, gated, normalize, with_state, F64)
    assert h_err < 1e-10 and max(st_errs) < 1e-10
    assert max(g_errs.values()) < 1e-10, g_errs


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("gated", "normalize"), MODES, ids=MODE_IDS)
@pytest.mark.parametrize("with_state", [False, True])
def test_chunkwise_float32_close_to_float64_reference(shape, gated, normalize, with_state):
    h_err, st_errs, g_errs = _compare(shape, gated, normalize, with_state, torch.float32)
    assert h_err < 1e-5 and max(st_errs) < 1e-5
    assert max(g_errs.values()) < 1e-4, g_errs


def test_segment_sums_are_the_spanned_sums():
    g = -torch.rand(2, 7, dtype=F64) * 10
    seg = segment_sums(g)
    for t in range(7):
        for s in range(7):
            want = g[:, s + 1 : t + 1].sum(-1) if s <= t else torch.full((2,), -torch.inf, dtype=F64)
            assert torch.allclose(seg[:, t, s], want, rtol=1e-14, atol=0)


@pytest.mark.parametrize("fn", [chunkwise_fn(8, True), reference_fn(True)], ids=["chunkwise", "reference"])
@pytest.mark.parametrize("split", [1, 8, 13])
def test_split_state_equals_one_call(fn, split):
    q, k, v, g = make_inputs(2, 29, 2, 6, 10, seed=5)
    state = make_state(2, 2, 6, 10)
    h_full, st_full = fn(q, k, v, g, state)
    h1, st1 = fn(q[:, :split], k[:, :split], v[:, :split], g[:, :split], state)
    h2, st2 = fn(q[:, split:], k[:, split:], v[:, split:], g[:, split:], st1)
    assert rel_rms(torch.cat([h1, h2], dim=1), h_full) < 1e-12
    for a, r in zip(st2, st_full, strict=True):
        assert rel_rms(a, r) < 1e-12


def test_unnormalized_call_hands_a_valid_state_to_a_normalized_one():
    # z is tracked regardless of `normalize`, so the state means the same thing either way.
    q, k, v, g = make_inputs(1, 23, 2, 5, 6, seed=31)
    h_full = linear_attention(q, k, v, log_decay=g, normalize=True, chunk_size=8)
    _, st = linear_attention(q[:, :10], k[:, :10], v[:, :10], log_decay=g[:, :10], return_state=True)
    h2 = linear_attention(q[:, 10:], k[:, 10:], v[:, 10:], log_decay=g[:, 10:], state=st, normalize=True)
    assert rel_rms(h2, h_full[:, 10:]) < 1e-12


@pytest.mark.parametrize("seq", [1, 17, 37, 63])
def test_padding_leaves_final_state_untouched(seq):
    q, k, v, g = make_inputs(2, seq, 2, 5, 3, seed=29)
    h_ref, st_ref = linear_attention_recurrent(q, k, v, log_decay=g, normalize=True)
    h, st = linear_attention_chunkwise(q, k, v, log_decay=g, normalize=True, chunk_size=16)
    assert rel_rms(h, h_ref) < 1e-10
    for a, r in zip(st, st_ref, strict=True):
        assert rel_rms(a, r) < 1e-10


@pytest.mark.parametrize(
    ("gated", "normalize", "fast"), [(True, True, False), (False, False, True)], ids=["gated-norm", "plain"]
)
def test_gradcheck_chunkwise(gated, normalize, fast):
    # The full check on the richest case; fast mode (random projections) keeps the plain one cheap.
    q, k, v, g = make_inputs(1, 7, 1, 3, 2, seed=7)
    s0, z0 = make_state(1, 1, 3, 2)
    leaves = [x.requires_grad_() for x in (q, k, v, g, s0, z0)]

    def fn(q, k, v, g, s0, z0):
        state = LinearAttentionState(s0, z0)
        h, st = linear_attention_chunkwise(
            q, k, v, log_decay=g if gated else None, state=state, normalize=normalize, scale=0.7, chunk_size=3
        )
        return h, st.S, st.z

    if not gated:
        leaves[3].requires_grad_(False)
    assert torch.autograd.gradcheck(fn, leaves, fast_mode=fast)


def test_positive_log_decay_is_not_clamped():
    q, k, v, g = make_inputs(2, 30, 2, 4, 5, seed=37)
    g = g.abs() * 0.1  # growth, outside the expected range but exact
    h_ref, st_ref = linear_attention_recurrent(q, k, v, log_decay=g)
    h, st = linear_attention_chunkwise(q, k, v, log_decay=g, chunk_size=8)
    assert rel_rms(h, h_ref) < 1e-10 and rel_rms(st.S, st_ref.S) < 1e-10


def _decay_patterns(shape):
    gen = torch.Generator().manual_seed(11)
    big = torch.full(shape, -1e4)
    choice = torch.randint(0, 4, shape, generator=gen)
    levels = torch.tensor([-1e4, -30.0, -1e-3, 0.0])
    return {
        "all_closed": big,
        "alternating": torch.where(torch.arange(shape[1])[None, :, None] % 2 == 0, big, -1e-2),
        "mix": levels[choice],
        "uniform": torch.empty(shape).uniform_(-1e4, 0.0, generator=gen),
        "one_reset": torch.zeros(shape).index_fill(1, torch.tensor([13]), -1e4) - 0.05,
    }


@pytest.mark.parametrize("pattern", list(_decay_patterns((1, 40, 1))))
@pytest.mark.parametrize("normalize", [False, True])
def test_extreme_decays_are_finite_float32(pattern, normalize):
    b, s, h, dk, dv = 2, 40, 2, 8, 6
    q, k, v, _ = make_inputs(b, s, h, dk, dv, dtype=torch.float32)
    g = _decay_patterns((b, s, h))[pattern]
    state = LinearAttentionState(*(x.float() for x in make_state(b, h, dk, dv)))
    h_out, st, grads = run_with_grads(chunkwise_fn(16, normalize), [q, k, v, g], state)
    assert torch.isfinite(h_out).all()
    assert all(torch.isfinite(x).all() for x in st)
    for name, grad in zip("qkvgSz", grads, strict=True):
        assert torch.isfinite(grad).all(), name
    ref = [x.double() for x in (q, k, v, g)]
    h_ref, _ = linear_attention_recurrent(*ref[:3], log_decay=ref[3], state=state, normalize=normalize)
    assert rel_rms(h_out, h_ref) < 1e-5


@pytest.mark.parametrize("normalize", [False, True])
def test_bfloat16_inputs_close_to_reference(normalize):
    leaves = [x.to(torch.bfloat16).requires_grad_() for x in make_inputs(2, 45, 2, 16, 24, seed=9)]
    # The reference sees the same (bf16-rounded) inputs, so only the kernel's own error is measured.
    q, k, v, g = (x.detach().to(F64) for x in leaves)
    h_ref, _ = linear_attention_recurrent(q, k, v, log_decay=g, normalize=normalize)
    h, st = linear_attention(
        *leaves[:3], log_decay=leaves[3], normalize=normalize, chunk_size=16, return_state=True
    )
    assert h.dtype == torch.bfloat16 and st.S.dtype == torch.float32 and st.z.dtype == torch.float32
    assert rel_rms(h, h_ref) < 3e-2
    h.float().square().sum().backward()
    for x in leaves:
        assert x.grad.dtype == torch.bfloat16 and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("lengths", [[5, 17, 1, 30], [9, 0, 16]])
@pytest.mark.parametrize("with_state", [False, True])
def test_cu_seqlens_equals_separate_sequences(lengths, with_state):
    total, n_seq, h, dk, dv = sum(lengths), len(lengths), 2, 6, 5
    q, k, v, g = make_inputs(1, total, h, dk, dv, seed=13)
    state = make_state(n_seq, h, dk, dv) if with_state else None
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32)
    h_packed, st_packed = linear_attention(
        q, k, v, log_decay=g, state=state, normalize=True, cu_seqlens=cu, chunk_size=8, return_state=True
    )
    assert h_packed.shape == (1, total, h, dv) and st_packed.S.shape == (n_seq, h, dk, dv)
    for j in range(n_seq):
        a, b = cu[j].item(), cu[j + 1].item()
        seg_state = None if state is None else LinearAttentionState(*(x[j : j + 1] for x in state))
        h_ref, st_ref = linear_attention_recurrent(
            q[:, a:b], k[:, a:b], v[:, a:b], log_decay=g[:, a:b], state=seg_state, normalize=True
        )
        if b > a:
            assert rel_rms(h_packed[:, a:b], h_ref) < 1e-10
        for x, r in zip(st_packed, st_ref, strict=True):
            assert torch.allclose(x[j : j + 1], r, rtol=1e-10, atol=1e-12)


def test_cu_seqlens_rejects_bad_input():
    q, k, v, _ = make_inputs(2, 10, 1, 4, 4)
    with pytest.raises(ValueError, match="batch size 1"):
        linear_attention(q, k, v, cu_seqlens=torch.tensor([0, 4, 10]))
    q, k, v = (x[:1] for x in (q, k, v))
    with pytest.raises(ValueError, match="rise from 0"):
        linear_attention(q, k, v, cu_seqlens=torch.tensor([0, 4, 9]))


@pytest.mark.parametrize("normalize", [False, True])
def test_step_matches_literal_formula(normalize):
    b, h, dk, dv, scale = 3, 2, 5, 7, 0.3
    q, k, v, g = (x[:, 0] for x in make_inputs(b, 1, h, dk, dv, seed=17))
    s0, z0 = make_state(b, h, dk, dv)
    h_step, (s1, z1) = linear_attention_step(
        q, k, v, log_decay=g, state=LinearAttentionState(s0, z0), normalize=normalize, scale=scale
    )
    a = torch.exp(g)
    s = a[..., None, None] * s0 + torch.einsum("bhk,bhv->bhkv", k, v)
    z = a[..., None] * z0 + k
    h_lit = torch.einsum("bhk,bhkv->bhv", scale * q, s)
    if normalize:
        h_lit = h_lit / torch.maximum((scale * q * z).sum(-1).abs(), torch.ones(()))[..., None]
    assert rel_rms(h_step, h_lit) < 1e-13
    assert rel_rms(s1, s) < 1e-13 and rel_rms(z1, z) < 1e-13


@pytest.mark.parametrize(("gated", "normalize"), MODES, ids=MODE_IDS)
def test_step_loop_continues_chunkwise(gated, normalize):
    b, s, extra, h, dk, dv = 2, 21, 5, 2, 6, 9
    q, k, v, g = make_inputs(b, s + extra, h, dk, dv, seed=19)
    g = g if gated else None
    h_long, st_long = linear_attention(
        q, k, v, log_decay=g, normalize=normalize, chunk_size=8, return_state=True
    )
    _, st = linear_attention(
        q[:, :s],
        k[:, :s],
        v[:, :s],
        log_decay=None if g is None else g[:, :s],
        normalize=normalize,
        chunk_size=8,
        return_state=True,
    )
    for t in range(s, s + extra):
        g_t = None if g is None else g[:, t]
        h_t, st = linear_attention_step(
            q[:, t], k[:, t], v[:, t], log_decay=g_t, state=st, normalize=normalize
        )
        assert rel_rms(h_t, h_long[:, t]) < 1e-12
    for x, r in zip(st, st_long, strict=True):
        assert rel_rms(x, r) < 1e-12


def test_public_api_backends_agree():
    q, k, v, g = make_inputs(2, 19, 2, 4, 6, seed=23, dtype=torch.float32)
    h_t = linear_attention(q, k, v, log_decay=g, normalize=True, scale=0.4, backend="torch", chunk_size=4)
    h_r = linear_attention(q, k, v, log_decay=g, normalize=True, scale=0.4, backend="reference")
    assert h_t.shape == (2, 19, 2, 6) and h_t.dtype == torch.float32
    assert rel_rms(h_t, h_r) < 1e-5
    for chunk in (1, 7, 64):
        h_c = linear_attention(q, k, v, log_decay=g, normalize=True, scale=0.4, chunk_size=chunk)
        assert rel_rms(h_c, h_r) < 1e-5
    with pytest.raises(ValueError, match="v must be"):
        linear_attention(q, k, v[:, :3])
    with pytest.raises(ValueError, match="log_decay must be"):
        linear_attention(q, k, v, log_decay=g[:, :3])
    with pytest.raises(ValueError, match="chunk_size"):
        linear_attention(q, k, v, chunk_size=0)


def test_registry_auto_is_torch_on_cpu(caplog, monkeypatch):
    monkeypatch.setattr(registry, "_DECISIONS", {})
    cpu = torch.device("cpu")
    with caplog.at_level(logging.INFO, logger="biolm.kernels"):
        assert registry.resolve_backend("linear_attention", "auto", cpu) == "torch"
        assert registry.resolve_backend("linear_attention", "auto", cpu) == "torch"
    assert len([r for r in caplog.records if "linear_attention" in r.getMessage()]) == 1
    assert ("linear_attention", "torch") in {(op, be) for op, be, _ in registry.backend_report("cpu")}


def test_triton_backend_is_a_clear_error():
    q, k, v, _ = make_inputs(1, 3, 1, 2, 2)
    with pytest.raises(RuntimeError, match="triton"):
        linear_attention(q, k, v, backend="triton")
