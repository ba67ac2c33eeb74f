"""Tests of the triton mLSTM kernels against the torch chunkwise path and the float64 reference.

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

from biolm.kernels.mlstm.chunkwise import mlstm_chunkwise  # noqa: E402
from biolm.kernels.mlstm.reference import MLSTMState, mlstm_recurrent, mlstm_step  # noqa: E402
from biolm.kernels.mlstm.triton import common, mlstm_chunkwise_triton, mlstm_step_triton  # noqa: E402
from tests.kernels.test_mlstm import grad_errors, make_inputs, make_state, rel_rms, run_with_grads  # noqa: E402

DEV = torch.device("cuda" if torch.cuda.is_available() else "cpu")
if DEV.type == "cpu" and not common.interpreting():
    pytest.skip("no CUDA and TRITON_INTERPRET is not 1", allow_module_level=True)
# Interpreter dots are exact float32; GPU dots are TF32 (DESIGN.md tolerances).
FWD_TOL, GRAD_TOL = (1e-5, 1e-4) if common.interpreting() else (2e-3, 2e-3)
F32 = torch.float32
# The interpreter's numpy exp warns where a kernel deliberately evaluates exp(-m) = inf (m < -88).
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered in exp:RuntimeWarning")


@pytest.fixture(autouse=True)
def _nan_filled_outputs(monkeypatch):
    monkeypatch.setattr(common, "FILL_NAN", True)


def _on(xs, dtype=F32):
    return [x.to(device=DEV, dtype=dtype) for x in xs]


def _state_on(state, dtype=F32):
    return None if state is None else MLSTMState(*_on(state, dtype))


def _triton(chunk):
    return lambda q, k, v, i, f, st: mlstm_chunkwise_triton(q, k, v, i, f, state=st, chunk_size=chunk)


# (B, S, H, Dk, Dv, chunk, with_state): S=1, S=chunk, a tail, Dk != Dv, non-power-of-two dims, and
# dims over the interpreter's 16-wide tiles (several Dk and Dv tiles, the last ones partial).
CASES = [
    (1, 1, 2, 12, 20, 16, True),
    (1, 16, 2, 8, 8, 16, False),
    (2, 37, 2, 12, 20, 16, True),
    (1, 64, 2, 8, 20, 16, False),
    (1, 40, 2, 20, 36, 16, True),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "B{}-S{}-H{}-Dk{}-Dv{}-L{}-st{:d}".format(*c))
def test_forward_and_grads_match_reference_and_torch(case):
    b, s, h, dk, dv, chunk, with_state = case
    inputs = make_inputs(b, s, h, dk, dv)
    state = make_state(b, h, dk, dv) if with_state else None
    h_t, fin_t, g_t = run_with_grads(_triton(chunk), _on(inputs), _state_on(state))
    h_r, fin_r, g_r = run_with_grads(mlstm_recurrent, inputs, state)
    h_c, fin_c, g_c = run_with_grads(
        lambda *a: mlstm_chunkwise(*a[:5], state=a[5], chunk_size=chunk), _on(inputs), _state_on(state)
    )
    assert h_t.dtype == F32 and all(x.dtype == F32 for x in fin_t)
    assert torch.isfinite(h_t).all() and all(torch.isfinite(g).all() for g in g_t)
    assert rel_rms(h_t.cpu(), h_r) < FWD_TOL
    assert rel_rms(h_t, h_c) < FWD_TOL
    for a, r, c in zip(fin_t, fin_r, fin_c, strict=True):
        assert rel_rms(a.cpu(), r) < FWD_TOL and rel_rms(a, c) < FWD_TOL
    errs_ref = grad_errors([g.cpu() for g in g_t], g_r)
    errs_torch = grad_errors(g_t, g_c)
    assert max(errs_ref.values()) < GRAD_TOL, errs_ref
    assert max(errs_torch.values()) < GRAD_TOL, errs_torch


def test_extreme_gates_finite_and_exact():
    """Gates across [-1e4, 1e4]: m far below -88 (the exp(-m) floor path) and far above 0.

    dq is ill-conditioned there in float32 (the torch chunkwise path is off by ~5e-4 too), so the
    gradients must match the reference as well as the float32 torch path does, up to a factor.
    """
    b, s, h, dk, dv = 1, 24, 2, 8, 12
    q, k, v, _, _ = make_inputs(b, s, h, dk, dv, seed=3)
    g = torch.Generator().manual_seed(4)
    i = (1e4 * (2 * torch.rand(b, s, h, generator=g, dtype=torch.float64) - 1)).to(F32).double()
    f = (1e4 * (2 * torch.rand(b, s, h, generator=g, dtype=torch.float64) - 1)).to(F32).double()
    inputs = [q, k, v, i, f]
    h_t, fin_t, g_t = run_with_grads(_triton(16), _on(inputs), None)
    h_r, fin_r, g_r = run_with_grads(mlstm_recurrent, inputs, None)
    assert torch.isfinite(h_t).all() and all(torch.isfinite(x).all() for x in (*fin_t, *g_t))
    assert rel_rms(h_t.cpu(), h_r) < FWD_TOL
    assert rel_rms(fin_t[2].cpu(), fin_r[2]) < FWD_TOL
    _, _, g_c = run_with_grads(lambda *a: mlstm_chunkwise(*a[:5], chunk_size=16), _on(inputs), None)
    errs = grad_errors([x.cpu() for x in g_t], g_r)
    errs_torch = grad_errors([x.cpu() for x in g_c], g_r)
    for name, err in errs.items():
        assert err < max(GRAD_TOL, 4 * errs_torch[name]), (name, errs, errs_torch)


def test_state_passing_equals_one_call():
    b, s, h, dk, dv = 2, 29, 2, 8, 12
    q, k, v, i, f = _on(make_inputs(b, s, h, dk, dv, seed=5))
    h_full, st_full = mlstm_chunkwise_triton(q, k, v, i, f, chunk_size=16)
    cut = 11
    h1, st1 = mlstm_chunkwise_triton(
        q[:, :cut], k[:, :cut], v[:, :cut], i[:, :cut], f[:, :cut], chunk_size=16
    )
    h2, st2 = mlstm_chunkwise_triton(q[:, cut:], k[:, cut:], v[:, cut:], i[:, cut:], f[:, cut:], st1, 16)
    assert rel_rms(torch.cat([h1, h2], dim=1), h_full) < FWD_TOL
    for a, r in zip(st2, st_full, strict=True):
        assert rel_rms(a, r) < FWD_TOL


@pytest.mark.parametrize("gate_scale", [1.0, 1e4])
@pytest.mark.parametrize("with_state", [False, True])
def test_step_kernel_matches_mlstm_step(gate_scale, with_state):
    b, h, dk, dv = 2, 3, 12, 20
    q, k, v, i, f = (x[:, 0] for x in make_inputs(b, 1, h, dk, dv, seed=6))
    state = make_state(b, h, dk, dv, seed=7) if with_state else None
    xs = [q, k, v, (gate_scale * i).clamp(-1e4, 1e4), (gate_scale * f).clamp(-1e4, 1e4)]
    h_r, st_r = mlstm_step(*_on(xs), _state_on(state))
    h_t, st_t = mlstm_step_triton(*_on(xs), _state_on(state))
    assert torch.isfinite(h_t).all() and all(torch.isfinite(x).all() for x in st_t)
    assert rel_rms(h_t, h_r) < FWD_TOL
    for a, r in zip(st_t, st_r, strict=True):
        assert rel_rms(a, r) < FWD_TOL


def test_importing_biolm_does_not_import_triton():
    code = "import sys, biolm, biolm.kernels, biolm.kernels.mlstm; assert 'triton' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gpu_larger_shapes_and_bf16(dtype):
    b, s, h, dk, dv = 2, 300, 4, 64, 96
    inputs = make_inputs(b, s, h, dk, dv, seed=8)
    state = make_state(b, h, dk, dv)
    tol = 3e-2 if dtype == torch.bfloat16 else 2e-3
    h_t, fin_t, g_t = run_with_grads(_triton(64), _on(inputs, dtype), _state_on(state))
    h_r, fin_r, g_r = run_with_grads(mlstm_recurrent, [x.to(dtype).double() for x in inputs], state)
    assert h_t.dtype == dtype
    assert rel_rms(h_t.cpu(), h_r) < tol
    for a, r in zip(fin_t, fin_r, strict=True):
        assert rel_rms(a.cpu(), r) < tol
    errs = grad_errors([x.cpu() for x in g_t], g_r)
    assert max(errs.values()) < tol, errs


@pytest.mark.gpu
@gpu
def test_gpu_triton_backend_matches_torch():
    from biolm.kernels import mlstm, registry

    q, k, v, i, f = _on(make_inputs(1, 40, 2, 16, 16, seed=9))
    h = mlstm(q, k, v, i, f, backend="triton")
    assert registry.resolve_backend("mlstm", "triton", DEV) == "triton"
    assert rel_rms(h, mlstm(q, k, v, i, f, backend="torch")) < 2e-3
