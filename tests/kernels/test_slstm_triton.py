"""Tests of the triton sLSTM kernels against the torch fused path and the float64 reference.

Without CUDA the kernels run on the triton CPU interpreter: this module sets ``TRITON_INTERPRET=1``
(``setdefault``, before triton is imported) so that plain ``pytest`` exercises them; shapes are tiny
because the interpreter is slow. With CUDA the same tests run on the GPU, and the ``gpu``-marked tests
add bfloat16, D = 128 and longer sequences. Every kernel output is allocated NaN-filled.
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
from biolm.kernels.mlstm.triton import common  # noqa: E402
from biolm.kernels.slstm import SLSTMState, slstm  # noqa: E402
from biolm.kernels.slstm.chunkwise import slstm_fused  # noqa: E402
from biolm.kernels.slstm.reference import slstm_recurrent, zero_state  # noqa: E402
from biolm.kernels.slstm.triton import slstm_triton  # noqa: E402
from tests.kernels.helpers import rel_rms, run_with_grads  # noqa: E402
from tests.kernels.test_slstm import NAMES, grad_errors, make_inputs, make_state  # noqa: E402

DEV = torch.device("cuda" if torch.cuda.is_available() else "cpu")
if DEV.type == "cpu" and not common.interpreting():
    pytest.skip("no CUDA and TRITON_INTERPRET is not 1", allow_module_level=True)
# The kernels use no tensor-core dots, so float32 tolerances hold on GPUs as well.
FWD_TOL, GRAD_TOL = 1e-5, 1e-4
F32 = torch.float32
# The interpreter's numpy exp warns where tl.sigmoid(-f) evaluates exp(1e4) = inf on purpose (-> 0).
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered in exp:RuntimeWarning")


@pytest.fixture(autouse=True)
def _nan_filled_outputs(monkeypatch):
    monkeypatch.setattr(common, "FILL_NAN", True)


def _on(xs, dtype=F32):
    return [x.to(device=DEV, dtype=dtype) for x in xs]


def _state_on(state):
    return None if state is None else SLSTMState(*_on(state))


def _triton(block=None):
    return lambda gx, r, bias, st: slstm_triton(gx, r, state=st, bias=bias, block=block)


def _fused(gx, r, bias, st):
    return slstm_fused(gx, r, state=st, bias=bias)


def _reference(gx, r, bias, st):
    return slstm_recurrent(gx, r, state=st, bias=bias)


def _make_state(kind, b, h, d):
    """None, a realistic state, the explicit empty state, or an empty memory with a stale m and h."""
    if kind == "none":
        return None
    if kind == "real":
        return make_state(b, h, d)
    st = zero_state(b, h, d, torch.float64, torch.device("cpu"))
    if kind == "empty":
        return st
    g = torch.Generator().manual_seed(2)
    return SLSTMState(torch.randn(b, h, d, generator=g, dtype=torch.float64), st.c, st.n, 5 + st.m)


# (B, S, D, state, block): S in {1, 7, 20}, D in {3, 8, 16}; block 8 splits D = 16 into two blocks.
CASES = [
    (1, 1, 3, "real", None),
    (2, 7, 8, "none", None),
    (1, 20, 16, "real", 8),
    (2, 7, 3, "empty", None),
    (1, 7, 16, "stale", None),
    (2, 20, 8, "real", None),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "B{}-S{}-D{}-{}-blk{}".format(*c))
def test_forward_and_grads_match_reference_and_fused(case):
    b, s, d, kind, block = case
    inputs = make_inputs(b, s, 2, d, seed=s + d)
    state = _make_state(kind, b, 2, d)
    h_t, fin_t, g_t = run_with_grads(_triton(block), _on(inputs), _state_on(state))
    h_r, fin_r, g_r = run_with_grads(_reference, inputs, state)
    h_f, fin_f, g_f = run_with_grads(_fused, _on(inputs), _state_on(state))
    assert h_t.dtype == F32 and all(x.dtype == F32 for x in fin_t)
    assert torch.isfinite(h_t).all() and all(torch.isfinite(g).all() for g in g_t)
    assert rel_rms(h_t.cpu(), h_r) < FWD_TOL and rel_rms(h_t, h_f) < FWD_TOL
    for a, r, f in zip(fin_t, fin_r, fin_f, strict=True):
        assert rel_rms(a.cpu(), r) < FWD_TOL and rel_rms(a, f) < FWD_TOL
    errs_ref = grad_errors([g.cpu() for g in g_t], g_r, NAMES)
    errs_fused = grad_errors(g_t, g_f, NAMES)
    assert max(errs_ref.values()) < GRAD_TOL, errs_ref
    assert max(errs_fused.values()) < GRAD_TOL, errs_fused
    if kind in ("empty", "stale"):
        assert (g_t[-1] == 0).all()  # no gradient reaches m_0 of an empty memory


@pytest.mark.parametrize("with_state", [False, True])
def test_extreme_gates_finite_and_match_fused(with_state):
    """Gates at +-1e4: finite everywhere; as close to the reference as the float32 torch path."""
    b, s, h, d = 1, 12, 2, 6
    gx, r, bias = make_inputs(b, s, h, d, seed=3)
    g = torch.Generator().manual_seed(4)
    gx = torch.where(torch.rand(gx.shape, generator=g) < 0.5, -1e4, 1e4).to(torch.float64)
    gx[:, 1::3] *= torch.rand(gx[:, 1::3].shape, generator=g, dtype=torch.float64)
    state = make_state(b, h, d) if with_state else None
    h_t, fin_t, g_t = run_with_grads(_triton(), _on([gx, r, bias]), _state_on(state))
    h_f, fin_f, g_f = run_with_grads(_fused, _on([gx, r, bias]), _state_on(state))
    h_r, _, _ = run_with_grads(_reference, [gx.float().double(), r, bias], state)
    assert torch.isfinite(h_t).all() and all(torch.isfinite(x).all() for x in (*fin_t, *g_t))
    assert rel_rms(h_t.cpu(), h_r) <= max(FWD_TOL, 4 * rel_rms(h_f.cpu(), h_r))
    assert rel_rms(h_t, h_f) < 1e-3
    errs = grad_errors(g_t, g_f, NAMES)
    assert max(errs.values()) < 1e-3, errs


def test_bfloat16_inputs():
    """The kernels have no dots (which the interpreter mishandles in bf16), so this runs on CPU too."""
    inputs, state = make_inputs(2, 9, 2, 8, seed=7), make_state(2, 2, 8)
    h_t, fin_t, g_t = run_with_grads(_triton(), _on(inputs, torch.bfloat16), _state_on(state))
    h_r, fin_r, g_r = run_with_grads(_reference, [x.to(torch.bfloat16).double() for x in inputs], state)
    assert h_t.dtype == torch.bfloat16 and all(x.dtype == F32 for x in fin_t)
    assert [g.dtype for g in g_t[:3]] == [torch.bfloat16] * 3
    assert rel_rms(h_t.cpu(), h_r) < 3e-2
    for a, r in zip(fin_t, fin_r, strict=True):
        assert rel_rms(a.cpu(), r) < FWD_TOL  # the state is float32 from exactly rounded inputs
    errs = grad_errors([x.cpu() for x in g_t], g_r, NAMES)
    assert max(errs.values()) < 3e-2, errs


def test_state_passing_equals_one_call():
    gx, r, bias = _on(make_inputs(2, 13, 2, 5, seed=5))
    h_full, st_full = slstm_triton(gx, r, bias=bias)
    h1, st1 = slstm_triton(gx[:, :6], r, bias=bias)
    h2, st2 = slstm_triton(gx[:, 6:], r, state=st1, bias=bias)
    assert rel_rms(torch.cat([h1, h2], dim=1), h_full) < FWD_TOL
    for a, f in zip(st2, st_full, strict=True):
        assert rel_rms(a, f) < FWD_TOL


def test_float64_and_empty_sequence_use_the_torch_path():
    gx, r, bias = make_inputs(1, 4, 2, 3, seed=6)
    h, st = slstm_triton(gx, r, bias=bias)
    assert h.dtype == torch.float64 and st.c.dtype == torch.float64
    assert torch.equal(h, slstm_fused(gx, r, bias=bias)[0])
    h0, st0 = slstm_triton(gx[:, :0].float(), r.float())
    assert h0.shape == (1, 0, 2, 3) and (st0.n == 0).all()


def test_registered_as_opt_in_triton_kernel():
    assert registry.get_triton_kernel("slstm") is slstm_triton
    assert registry.resolve_backend("slstm", "auto", DEV) == "torch"


def test_importing_biolm_does_not_import_triton():
    code = "import sys, biolm, biolm.kernels, biolm.kernels.slstm; assert 'triton' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("dim", [64, 128])
def test_gpu_large_head_dim_longer_sequence(dtype, dim):
    b, s, h = 2, 200, 2
    inputs = make_inputs(b, s, h, dim, seed=8)
    state = make_state(b, h, dim)
    tol_f, tol_g = (3e-2, 3e-2) if dtype == torch.bfloat16 else (FWD_TOL, GRAD_TOL)
    h_t, fin_t, g_t = run_with_grads(_triton(), _on(inputs, dtype), _state_on(state))
    h_r, fin_r, g_r = run_with_grads(_reference, [x.to(dtype).double() for x in inputs], state)
    assert h_t.dtype == dtype
    assert rel_rms(h_t.cpu(), h_r) < tol_f
    for a, r in zip(fin_t, fin_r, strict=True):
        assert rel_rms(a.cpu(), r) < tol_f
    errs = grad_errors([x.cpu() for x in g_t], g_r, NAMES)
    assert max(errs.values()) < tol_g, errs


@pytest.mark.gpu
@gpu
def test_gpu_triton_backend_matches_torch():
    gx, r, bias = _on(make_inputs(2, 40, 2, 16, seed=9))
    h = slstm(gx, r, bias=bias, backend="triton")
    assert registry.resolve_backend("slstm", "triton", DEV) == "triton"
    assert rel_rms(h, slstm(gx, r, bias=bias, backend="torch")) < FWD_TOL
