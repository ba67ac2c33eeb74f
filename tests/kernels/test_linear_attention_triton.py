"""Tests of the triton linear-attention kernels against the torch chunkwise path and the float64 reference.

Without CUDA the kernels run on the triton CPU interpreter: this module sets ``TRITON_INTERPRET=1``
(``setdefault``, before triton is imported) so that plain ``pytest`` exercises them; shapes are tiny
because the interpreter is slow. With CUDA the same tests run on the GPU (TF32 tolerances), and the
``gpu``-marked tests add bfloat16 and larger shapes. Every kernel output is allocated NaN-filled.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

pytest.importorskip("triton", reason="triton is not installed (pip install biolm[gpu])")

from biolm.kernels import registry  # noqa: E402
from biolm.kernels.linear_attention import LinearAttentionState, linear_attention  # noqa: E402
from biolm.kernels.linear_attention.chunkwise import linear_attention_chunkwise  # noqa: E402
from biolm.kernels.linear_attention.reference import (  # noqa: E402
    linear_attention_recurrent,
    linear_attention_step,
)
from biolm.kernels.linear_attention.triton import (  # noqa: E402
    linear_attention_chunkwise_triton,
    linear_attention_step_triton,
)
from biolm.kernels.mlstm.triton import common  # noqa: E402
from tests.kernels.helpers import rel_rms, run_with_grads  # noqa: E402
from tests.kernels.test_linear_attention import (  # noqa: E402
    _decay_patterns,
    grad_errors,
    make_inputs,
    make_state,
)

DEV = torch.device("cuda" if torch.cuda.is_available() else "cpu")
if DEV.type == "cpu" and not common.interpreting():
    pytest.skip("no CUDA and TRITON_INTERPRET is not 1", allow_module_level=True)
# Interpreter dots are exact float32; GPU dots are TF32 (DESIGN.md tolerances).
FWD_TOL, GRAD_TOL = (1e-5, 1e-4) if common.interpreting() else (2e-3, 2e-3)
F32 = torch.float32
MODES = [(False, False), (True, False), (False, True), (True, True)]
MODE_IDS = ["plain", "gated", "plain-norm", "gated-norm"]


@pytest.fixture(autouse=True)
def _nan_filled_outputs(monkeypatch):
    monkeypatch.setattr(common, "FILL_NAN", True)


def _on(xs, dtype=F32):
    return [x.to(device=DEV, dtype=dtype) for x in xs]


def _state_on(state, dtype=F32):
    return None if state is None else LinearAttentionState(*_on(state, dtype))


def _fn(impl, gated, normalize, **kwargs):
    """``fn(q, k, v, [g,] state)`` for :func:`run_with_grads`."""

    def fn(q, k, v, *rest):
        g = rest[0] if gated else None
        return impl(q, k, v, log_decay=g, state=rest[-1], normalize=normalize, **kwargs)

    return fn


# (B, S, H, Dk, Dv, chunk, with_state): S=1, S=chunk, tails, Dk != Dv, non-power-of-two dims.
CASES = [
    (1, 1, 2, 12, 20, 16, True),
    (1, 16, 2, 8, 8, 16, False),
    (2, 37, 2, 12, 20, 16, True),
    (1, 37, 1, 8, 20, 64, False),
]


@pytest.mark.parametrize(("gated", "normalize"), MODES, ids=MODE_IDS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: "B{}-S{}-H{}-Dk{}-Dv{}-L{}-st{:d}".format(*c))
def test_forward_and_grads_match_reference_and_torch(case, gated, normalize):
    b, s, h, dk, dv, chunk, with_state = case
    q, k, v, g = make_inputs(b, s, h, dk, dv)
    inputs, names = ([q, k, v, g], "qkvg") if gated else ([q, k, v], "qkv")
    names += "Sz" if with_state else ""
    state = make_state(b, h, dk, dv) if with_state else None
    tri = _fn(linear_attention_chunkwise_triton, gated, normalize, chunk_size=chunk)
    h_t, fin_t, g_t = run_with_grads(tri, _on(inputs), _state_on(state))
    h_r, fin_r, g_r = run_with_grads(_fn(linear_attention_recurrent, gated, normalize), inputs, state)
    ck = _fn(linear_attention_chunkwise, gated, normalize, chunk_size=chunk)
    h_c, fin_c, g_c = run_with_grads(ck, _on(inputs), _state_on(state))
    assert h_t.shape == (b, s, h, dv) and h_t.dtype == F32 and all(x.dtype == F32 for x in fin_t)
    assert torch.isfinite(h_t).all() and all(torch.isfinite(x).all() for x in g_t)
    assert rel_rms(h_t.cpu(), h_r) < FWD_TOL and rel_rms(h_t, h_c) < FWD_TOL
    for a, r, c in zip(fin_t, fin_r, fin_c, strict=True):
        assert rel_rms(a.cpu(), r) < FWD_TOL and rel_rms(a, c) < FWD_TOL
    errs_ref = grad_errors([x.cpu() for x in g_t], g_r, names)
    errs_torch = grad_errors(g_t, g_c, names)
    assert max(errs_ref.values()) < GRAD_TOL, errs_ref
    assert max(errs_torch.values()) < GRAD_TOL, errs_torch


@pytest.mark.parametrize("pattern", list(_decay_patterns((1, 40, 1))))
@pytest.mark.parametrize("normalize", [False, True])
def test_extreme_decays_finite_and_exact(pattern, normalize):
    """log_decay down to -1e4: finite everywhere, and forward and gradients (log_decay's included) exact."""
    b, s, h, dk, dv = 1, 40, 2, 8, 12
    q, k, v, _ = make_inputs(b, s, h, dk, dv, seed=3)
    g = _decay_patterns((b, s, h))[pattern].double()
    inputs, state = [q, k, v, g], make_state(b, h, dk, dv)
    tri = _fn(linear_attention_chunkwise_triton, True, normalize, chunk_size=16)
    h_t, fin_t, g_t = run_with_grads(tri, _on(inputs), _state_on(state))
    h_r, fin_r, g_r = run_with_grads(_fn(linear_attention_recurrent, True, normalize), inputs, state)
    assert torch.isfinite(h_t).all() and all(torch.isfinite(x).all() for x in (*fin_t, *g_t))
    assert rel_rms(h_t.cpu(), h_r) < FWD_TOL
    for a, r in zip(fin_t, fin_r, strict=True):
        assert rel_rms(a.cpu(), r) < FWD_TOL
    errs = grad_errors([x.cpu() for x in g_t], g_r, "qkvgSz")
    assert max(errs.values()) < GRAD_TOL, errs


@pytest.mark.parametrize("normalize", [False, True])
def test_state_passing_equals_one_call(normalize):
    b, s, h, dk, dv = 2, 29, 2, 8, 12
    q, k, v, g = _on(make_inputs(b, s, h, dk, dv, seed=5))
    kw = dict(normalize=normalize, chunk_size=16)
    h_full, st_full = linear_attention_chunkwise_triton(q, k, v, log_decay=g, **kw)
    cut = 11
    h1, st1 = linear_attention_chunkwise_triton(
        q[:, :cut], k[:, :cut], v[:, :cut], log_decay=g[:, :cut], **kw
    )
    h2, st2 = linear_attention_chunkwise_triton(
        q[:, cut:], k[:, cut:], v[:, cut:], log_decay=g[:, cut:], state=st1, **kw
    )
    assert rel_rms(torch.cat([h1, h2], dim=1), h_full) < FWD_TOL
    for a, r in zip(st2, st_full, strict=True):
        assert rel_rms(a, r) < FWD_TOL
    # The chunk length changes speed only, never the function.
    h_32, _ = linear_attention_chunkwise_triton(q, k, v, log_decay=g, normalize=normalize, chunk_size=32)
    assert rel_rms(h_32, h_full) < FWD_TOL


@pytest.mark.parametrize(("gated", "normalize"), MODES, ids=MODE_IDS)
@pytest.mark.parametrize("with_state", [False, True])
def test_step_kernel_matches_linear_attention_step(gated, normalize, with_state):
    b, h, dk, dv = 2, 3, 12, 20
    q, k, v, g = (x[:, 0] for x in make_inputs(b, 1, h, dk, dv, seed=6))
    state = _state_on(make_state(b, h, dk, dv, seed=7)) if with_state else None
    q, k, v, g = _on([q, k, v, g])
    kw = dict(log_decay=g if gated else None, state=state, normalize=normalize)
    h_r, st_r = linear_attention_step(q, k, v, **kw)
    h_t, st_t = linear_attention_step_triton(q, k, v, **kw)
    assert h_t.dtype == F32 and torch.isfinite(h_t).all() and all(torch.isfinite(x).all() for x in st_t)
    assert rel_rms(h_t, h_r) < FWD_TOL
    for a, r in zip(st_t, st_r, strict=True):
        assert rel_rms(a, r) < FWD_TOL


def test_registered_kernel_and_float64_route_to_torch():
    assert registry.get_triton_kernel("linear_attention") is linear_attention_chunkwise_triton
    q, k, v, g = make_inputs(1, 20, 2, 4, 6, seed=8)
    state = make_state(1, 2, 4, 6)
    kw = dict(log_decay=g, state=state, normalize=True, chunk_size=8)
    h_t, st_t = linear_attention_chunkwise_triton(q, k, v, **kw)
    h_c, st_c = linear_attention_chunkwise(q, k, v, **kw)
    assert h_t.dtype == torch.float64 and torch.equal(h_t, h_c) and torch.equal(st_t.S, st_c.S)
    h_s, _ = linear_attention_step_triton(q[:, 0], k[:, 0], v[:, 0], log_decay=g[:, 0], state=state)
    assert h_s.dtype == torch.float64


def test_importing_biolm_does_not_import_triton():
    code = (
        "import sys, biolm, biolm.kernels, biolm.kernels.linear_attention; assert 'triton' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(("gated", "normalize"), [(False, False), (True, True)], ids=["plain", "gated-norm"])
def test_gpu_larger_shapes_and_bf16(dtype, gated, normalize):
    b, s, h, dk, dv = 2, 300, 4, 64, 96
    q, k, v, g = make_inputs(b, s, h, dk, dv, seed=9)
    inputs, names = ([q, k, v, g], "qkvgSz") if gated else ([q, k, v], "qkvSz")
    state = make_state(b, h, dk, dv)
    tol = 3e-2 if dtype == torch.bfloat16 else 2e-3
    tri = _fn(linear_attention_chunkwise_triton, gated, normalize, chunk_size=64)
    h_t, fin_t, g_t = run_with_grads(tri, _on(inputs, dtype), _state_on(state))
    ref = _fn(linear_attention_recurrent, gated, normalize)
    h_r, fin_r, g_r = run_with_grads(ref, [x.to(dtype).double() for x in inputs], state)
    assert h_t.dtype == dtype
    assert rel_rms(h_t.cpu(), h_r) < tol
    for a, r in zip(fin_t, fin_r, strict=True):
        assert rel_rms(a.cpu(), r) < tol
    errs = grad_errors([x.cpu() for x in g_t], g_r, names)
    assert max(errs.values()) < tol, errs


@pytest.mark.gpu
@gpu
def test_gpu_triton_backend_matches_torch():
    q, k, v, g = _on(make_inputs(1, 40, 2, 16, 16, seed=10))
    assert registry.resolve_backend("linear_attention", "triton", DEV) == "triton"
    h = linear_attention(q, k, v, log_decay=g, normalize=True, backend="triton")
    assert rel_rms(h, linear_attention(q, k, v, log_decay=g, normalize=True, backend="torch")) < 2e-3
