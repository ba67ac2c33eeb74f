"""The hand-written chunkwise backward against plain autograd on the same forward and the reference."""

from __future__ import annotations

import pytest
import torch

from biolm.kernels.mlstm import chunkwise_backward
from biolm.kernels.mlstm.chunkwise import mlstm_chunkwise
from biolm.kernels.mlstm.reference import MLSTMState, mlstm_chunkwise_autograd, mlstm_recurrent
from tests.kernels.test_mlstm import (
    _gate_patterns,
    grad_errors,
    make_inputs,
    make_state,
    rel_rms,
    run_with_grads,
)

F64 = torch.float64

# (B, S, H, Dk, Dv, chunk): S a chunk multiple or not, one chunk or many, S < chunk, Dk != Dv.
SHAPES = [
    (2, 64, 2, 8, 8, 16),
    (1, 45, 3, 12, 20, 16),
    (2, 33, 1, 16, 6, 8),
    (1, 5, 2, 4, 9, 16),
    (1, 1, 1, 3, 2, 4),
    (1, 70, 2, 5, 7, 64),
]


def custom_fn(chunk):
    return lambda q, k, v, i, f, st: mlstm_chunkwise(q, k, v, i, f, state=st, chunk_size=chunk)


def autograd_fn(chunk):
    return lambda q, k, v, i, f, st: mlstm_chunkwise_autograd(q, k, v, i, f, state=st, chunk_size=chunk)


def reference_fn(q, k, v, i, f, st):
    return mlstm_recurrent(q, k, v, i, f, state=st)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("with_state", [False, True])
def test_custom_backward_matches_autograd_and_reference_float64(shape, with_state):
    b, s, h, dk, dv, chunk = shape
    inputs = make_inputs(b, s, h, dk, dv, seed=31)
    state = make_state(b, h, dk, dv) if with_state else None
    h_new, st_new, g_new = run_with_grads(custom_fn(chunk), inputs, state)
    h_ag, st_ag, g_ag = run_with_grads(autograd_fn(chunk), inputs, state)
    h_ref, st_ref, g_ref = run_with_grads(reference_fn, inputs, state)
    assert rel_rms(h_new, h_ag) < 1e-12 and rel_rms(h_new, h_ref) < 1e-10
    for a, x, r in zip(st_new, st_ag, st_ref, strict=True):
        assert rel_rms(a, x) < 1e-12 and rel_rms(a, r) < 1e-10
    errors_ag = grad_errors(g_new, g_ag)
    assert max(errors_ag.values()) < 1e-11, errors_ag
    errors_ref = grad_errors(g_new, g_ref)
    assert max(errors_ref.values()) < 1e-10, errors_ref


@pytest.mark.parametrize("chunk", [1, 3, 16])
def test_custom_backward_state_only_and_output_only_losses(chunk):
    # Unused outputs reach backward as zero gradients; both halves of the loss must still be exact.
    inputs = [x.requires_grad_() for x in make_inputs(1, 11, 2, 4, 3, seed=37)]
    state = MLSTMState(*(x.requires_grad_() for x in make_state(1, 2, 4, 3)))
    leaves = inputs + list(state)
    for pick in (lambda h, st: h.square().sum(), lambda h, st: st.C.sum() + st.n.sum() + st.m.sum()):
        g_new = torch.autograd.grad(pick(*mlstm_chunkwise(*inputs, state=state, chunk_size=chunk)), leaves)
        g_ag = torch.autograd.grad(
            pick(*mlstm_chunkwise_autograd(*inputs, state=state, chunk_size=chunk)),
            leaves,
            allow_unused=True,
        )
        g_ag = [torch.zeros_like(x) if g is None else g for g, x in zip(g_ag, leaves, strict=True)]
        errors = grad_errors(g_new, g_ag)
        assert max(errors.values()) < 1e-11, errors


@pytest.mark.parametrize("pattern", list(_gate_patterns((1, 1, 1))))
def test_custom_backward_extreme_gates(pattern):
    b, s, h, dk, dv = 2, 40, 2, 8, 6
    q, k, v, _, _ = make_inputs(b, s, h, dk, dv, dtype=torch.float32)
    i, f = _gate_patterns((b, s, h))[pattern]
    state = MLSTMState(*(x.float() for x in make_state(b, h, dk, dv)))
    inputs64, state64 = [x.double() for x in (q, k, v, i, f)], MLSTMState(*(x.double() for x in state))
    h_new, st_new, g_new = run_with_grads(custom_fn(16), [q, k, v, i, f], state)
    h64, _, g64 = run_with_grads(custom_fn(16), inputs64, state64)
    assert torch.isfinite(h_new).all() and all(torch.isfinite(x).all() for x in (*st_new, *g_new))
    # Ties among gates at +-1e4 are common here; autograd's tie rules live in the shared cheap part.
    h_ag64, _, g_ag64 = run_with_grads(autograd_fn(16), inputs64, state64)
    assert (h64 - h_ag64).norm() <= 1e-12 * h_ag64.norm() + 1e-30  # i = f = -1e4 makes h exactly 0
    errors = grad_errors(g64, g_ag64)
    assert max(errors.values()) < 1e-10, errors
    # float32 rounds gates of 1e4 coarsely: ask for no more error than plain autograd in float32 has.
    _, _, g_ag32 = run_with_grads(autograd_fn(16), [q, k, v, i, f], state)
    err_new, err_ag = grad_errors(g_new, g_ag64), grad_errors(g_ag32, g_ag64)
    assert max(err_new.values()) <= 3 * max(err_ag.values()) + 1e-4, (err_new, err_ag)


def test_gradcheck_custom_backward():
    q, k, v, i, f = make_inputs(1, 7, 2, 3, 2, seed=41)
    c0, n0, m0 = make_state(1, 2, 3, 2, seed=2)
    leaves = [x.requires_grad_() for x in (q, k, v, i, f, c0, n0, m0)]

    def fn(q, k, v, i, f, c0, n0, m0):
        h, st = mlstm_chunkwise(q, k, v, i, f, state=MLSTMState(c0, n0, m0), chunk_size=3)
        return h, st.C, st.n, st.m

    assert torch.autograd.gradcheck(fn, leaves)


def test_gradcheck_custom_backward_normalizer_floor():
    # Closed input gates and a negative initial m put the normalizer on its exp(-m) floor.
    q, k, v, i, f = make_inputs(1, 6, 1, 2, 3, seed=43)
    i = i / 3 - 6
    c0, n0, m0 = make_state(1, 1, 2, 3, seed=3)
    leaves = [x.requires_grad_() for x in (q, k, v, i, f, c0 * 1e-3, n0 * 1e-3, m0 - 4)]

    def fn(q, k, v, i, f, c0, n0, m0):
        return mlstm_chunkwise(q, k, v, i, f, state=MLSTMState(c0, n0, m0), chunk_size=4)[0]

    assert torch.autograd.gradcheck(fn, leaves)


@pytest.mark.parametrize("segment_tokens", [1, 8, 20])
@pytest.mark.parametrize("with_state", [False, True])
def test_custom_backward_segments_match_one_segment(monkeypatch, segment_tokens, with_state):
    # Long sequences run forward and backward in segments of chunks; force several at a small S.
    b, s, h, dk, dv, chunk = 2, 45, 2, 6, 5, 4
    inputs = make_inputs(b, s, h, dk, dv, seed=47)
    state = make_state(b, h, dk, dv) if with_state else None
    h_one, st_one, g_one = run_with_grads(custom_fn(chunk), inputs, state)
    monkeypatch.setattr(chunkwise_backward, "SEGMENT_TOKENS", segment_tokens)
    h_seg, st_seg, g_seg = run_with_grads(custom_fn(chunk), inputs, state)
    h_ref, _, g_ref = run_with_grads(reference_fn, inputs, state)
    assert rel_rms(h_seg, h_one) < 1e-13 and rel_rms(h_seg, h_ref) < 1e-10
    for a, x in zip(st_seg, st_one, strict=True):
        assert rel_rms(a, x) < 1e-13
    errors = grad_errors(g_seg, g_one)
    assert max(errors.values()) < 1e-12, errors
    errors_ref = grad_errors(g_seg, g_ref)
    assert max(errors_ref.values()) < 1e-10, errors_ref
