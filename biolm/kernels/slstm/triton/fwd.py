"""sLSTM forward in triton: one program per (batch, head) walks the sequence.

Per step the program reads the full ``h_{t-1}`` and then updates the state one block of ``BJ`` output
features at a time, so that only a [DP, BJ] tile of each gate's ``R`` is live (a [128, 128] float32
tile per gate would not fit in registers). The state of every step is written to memory anyway (the
backward needs it), so the next step reads ``h_{t-1}`` and the per-block ``(c, n, m)`` back from
there; a barrier orders those writes and reads between the threads of the program.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from biolm.kernels.mlstm.triton.common import alloc, logsigmoid, padded


@triton.jit
def tanh(x):
    """``tanh`` from ``exp(-2|x|)``: no overflow for any finite ``x`` (triton has no portable tanh)."""
    e = tl.exp(-2.0 * tl.abs(x))
    t = (1.0 - e) / (1.0 + e)
    return tl.where(x < 0, -t, t)


@triton.jit
def gate_pre(pre_ptr, pre_off, re, me, D: tl.constexpr):
    """The four saved pre-activations (i, f, z, o) of one block of features."""
    i_pre = tl.load(pre_ptr + pre_off + re, mask=me, other=0.0)
    f_pre = tl.load(pre_ptr + pre_off + D + re, mask=me, other=0.0)
    z_pre = tl.load(pre_ptr + pre_off + 2 * D + re, mask=me, other=0.0)
    o_pre = tl.load(pre_ptr + pre_off + 3 * D + re, mask=me, other=0.0)
    return i_pre, f_pre, z_pre, o_pre


@triton.jit
def _recurrent_pre(gx_ptr, r_ptr, bias_ptr, hp, gx_off, r_off, rk, mk, re, me,
                   D: tl.constexpr, HAS_BIAS: tl.constexpr):  # fmt: skip
    """``gates_x + bias + h_{t-1} @ R[head, g]`` for one gate and one block of output features."""
    x = tl.load(gx_ptr + gx_off + re, mask=me, other=0.0).to(tl.float32)
    if HAS_BIAS:
        x += tl.load(bias_ptr + r_off // D + re, mask=me, other=0.0)
    r = tl.load(r_ptr + r_off + rk[:, None] * D + re[None, :], mask=mk[:, None] & me[None, :], other=0.0)
    return x + tl.sum(hp[:, None] * r, 0)


@triton.jit
def _slstm_fwd_kernel(
    gx_ptr, r_ptr, bias_ptr, pre_ptr, h_ptr, c_ptr, n_ptr, m_ptr,
    S, H: tl.constexpr, D: tl.constexpr, DP: tl.constexpr, BJ: tl.constexpr, HAS_BIAS: tl.constexpr,
):  # fmt: skip
    """States are [B, H, S + 1, D] (index 0: the initial state, already written); pre is [B, S, H, 4, D]."""
    bh = tl.program_id(0)
    b_idx = bh // H
    h_idx = bh % H
    rk = tl.arange(0, DP)
    mk = rk < D
    rb = tl.arange(0, BJ)
    st_base = bh * (S + 1) * D
    r_base = h_idx * 4 * D * D
    for t in range(S):
        hp = tl.load(h_ptr + st_base + t * D + rk, mask=mk, other=0.0)
        gx_off = ((b_idx * S + t) * H + h_idx) * 4 * D
        for j in range(DP // BJ):
            re = j * BJ + rb
            me = re < D
            prev = st_base + t * D + re
            c_prev = tl.load(c_ptr + prev, mask=me, other=0.0)
            n_prev = tl.load(n_ptr + prev, mask=me, other=0.0)
            m_prev = tl.load(m_ptr + prev, mask=me, other=0.0)
            i_pre = _recurrent_pre(gx_ptr, r_ptr, bias_ptr, hp, gx_off, r_base, rk, mk, re, me, D, HAS_BIAS)
            f_pre = _recurrent_pre(
                gx_ptr, r_ptr, bias_ptr, hp, gx_off + D, r_base + D * D, rk, mk, re, me, D, HAS_BIAS
            )
            z_pre = _recurrent_pre(
                gx_ptr, r_ptr, bias_ptr, hp, gx_off + 2 * D, r_base + 2 * D * D, rk, mk, re, me, D, HAS_BIAS
            )
            o_pre = _recurrent_pre(
                gx_ptr, r_ptr, bias_ptr, hp, gx_off + 3 * D, r_base + 3 * D * D, rk, mk, re, me, D, HAS_BIAS
            )
            tl.store(pre_ptr + gx_off + re, i_pre, mask=me)
            tl.store(pre_ptr + gx_off + D + re, f_pre, mask=me)
            tl.store(pre_ptr + gx_off + 2 * D + re, z_pre, mask=me)
            tl.store(pre_ptr + gx_off + 3 * D + re, o_pre, mask=me)
            # n == 0 is an empty memory: its m carries no information (reference.empty_aware_m).
            a = logsigmoid(f_pre) + tl.where(n_prev == 0.0, float("-inf"), m_prev)
            m = tl.maximum(a, i_pre)
            i_gate = tl.exp(i_pre - m)
            f_gate = tl.exp(a - m)
            c = f_gate * c_prev + i_gate * tanh(z_pre)
            n = f_gate * n_prev + i_gate
            h = tl.sigmoid(o_pre) * c / n
            nxt = prev + D
            tl.store(c_ptr + nxt, c, mask=me)
            tl.store(n_ptr + nxt, n, mask=me)
            tl.store(m_ptr + nxt, m, mask=me)
            tl.store(h_ptr + nxt, h, mask=me)
        # The next step reads all of h_t, written block by block by other threads.
        tl.debug_barrier()


def block_out(dim_p: int, block: int | None) -> int:
    """Output-feature block: a power of two dividing the padded dim, 32 unless asked otherwise."""
    return min(dim_p, triton.next_power_of_2(block or 32))


def launch_options(dim_p: int, block: int) -> dict:
    """``num_warps`` and ``num_stages`` of the forward and the backward kernel."""
    # num_stages=1: steps talk through global memory (barrier-ordered stores, then loads); triton's
    # software pipelining would prefetch the next step's loads ahead of this step's stores. On an H100
    # (D=128, 8 warps) that gave wrong gradients in some (batch, head) programs.
    return dict(num_warps=4 if dim_p * block <= 2048 else 8, num_stages=1)


def slstm_fwd(
    gx: torch.Tensor,
    R: torch.Tensor,
    bias: torch.Tensor | None,
    h0: torch.Tensor,
    c0: torch.Tensor,
    n0: torch.Tensor,
    m0: torch.Tensor,
    block: int | None = None,
) -> tuple[torch.Tensor, ...]:
    """Run the forward kernel.

    Args:
        gx, R, bias: ``gates_x``, ``R`` and ``bias`` of :func:`biolm.kernels.slstm.slstm`; ``gx``
            float32 or bfloat16, ``R`` and ``bias`` (or None) float32; all contiguous.
        h0, c0, n0, m0: The initial state, each [B, H, D] float32.
        block: Output-feature block size (None: the default).

    Returns:
        pre [B, S, H, 4, D] (all gate pre-activations) and h, c, n, m [B, H, S + 1, D], float32.
    """
    batch, seq, heads, _, dim = gx.shape
    f32 = dict(dtype=torch.float32, device=gx.device)
    pre = alloc((batch, seq, heads, 4, dim), **f32)
    states = [alloc((batch, heads, seq + 1, dim), **f32) for _ in range(4)]
    for buf, init in zip(states, (h0, c0, n0, m0), strict=True):
        buf[:, :, 0] = init
    dp = padded(dim)
    bj = block_out(dp, block)
    # num_stages=1 (see launch_options): the steps talk through global memory.
    _slstm_fwd_kernel[(batch * heads,)](
        gx, R, R if bias is None else bias, pre, *states,
        seq, heads, dim, dp, bj, bias is not None, **launch_options(dp, bj),
    )  # fmt: skip
    return pre, *states
