"""sLSTM backward in triton: one program per (batch, head) walks the sequence in reverse.

It mirrors :class:`biolm.kernels.slstm.chunkwise._SLSTMFunction`'s backward: from the saved
pre-activations and states it recomputes the gate activations of each step, and carries the
gradients of ``c``, ``n`` and ``a = log_f + m_{t-1}`` (the ``m`` carry) per feature, plus the
recurrent gradient ``d_pre_{t+1} @ R^T`` of ``h_t``. As in the forward, the features are processed in
blocks of ``BJ``; the carries live in a small [B, H, 4, DP] scratch buffer (which also brings in the
final-state gradients and returns the initial-state ones), and barriers order its reads and writes.
``dR`` and ``d bias`` are reductions of the kernel's ``d_pre`` and are formed in PyTorch.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from biolm.kernels.mlstm.triton.common import alloc, logsigmoid, padded
from biolm.kernels.slstm.triton.fwd import block_out, gate_pre, launch_options, tanh


@triton.jit
def _slstm_bwd_kernel(
    pre_ptr, r_ptr, h_ptr, c_ptr, n_ptr, m_ptr, dh_ptr, dpre_ptr, carry_ptr,
    S, H: tl.constexpr, D: tl.constexpr, DP: tl.constexpr, BJ: tl.constexpr,
):  # fmt: skip
    """carry [B, H, 4, DP]: (d c, d n, d a, d h from the recurrence); dh [B, S, H, D]."""
    bh = tl.program_id(0)
    b_idx = bh // H
    h_idx = bh % H
    rk = tl.arange(0, DP)
    mk = rk < D
    rb = tl.arange(0, BJ)
    st_base = bh * (S + 1) * D
    r_base = h_idx * 4 * D * D
    cy = carry_ptr + bh * 4 * DP
    for s in range(S):
        t = S - 1 - s
        pre_off = ((b_idx * S + t) * H + h_idx) * 4 * D
        d_rec = tl.zeros((DP,), dtype=tl.float32)
        for j in range(DP // BJ):
            re = j * BJ + rb
            me = re < D
            prev = st_base + t * D + re
            nxt = prev + D
            i_pre, f_pre, z_pre, o_pre = gate_pre(pre_ptr, pre_off, re, me, D)
            c_prev = tl.load(c_ptr + prev, mask=me, other=0.0)
            n_prev = tl.load(n_ptr + prev, mask=me, other=0.0)
            m_prev = tl.load(m_ptr + prev, mask=me, other=0.0)
            c = tl.load(c_ptr + nxt, mask=me, other=0.0)
            n = tl.load(n_ptr + nxt, mask=me, other=1.0)
            h = tl.load(h_ptr + nxt, mask=me, other=0.0)
            a = logsigmoid(f_pre) + tl.where(n_prev == 0.0, float("-inf"), m_prev)
            m = tl.maximum(a, i_pre)
            i_gate = tl.exp(i_pre - m)
            f_gate = tl.exp(a - m)
            z_act = tanh(z_pre)
            o_gate = tl.sigmoid(o_pre)
            # torch.maximum's rule: the larger side gets the gradient, half each on a tie.
            to_a = tl.where(a > i_pre, 1.0, tl.where(a < i_pre, 0.0, 0.5))

            # The carries are written by other threads of this program: volatile loads never read a
            # stale cached copy (an H100 run at D=128 showed step-to-step errors in some programs).
            d_h = tl.load(dh_ptr + pre_off // 4 + re, mask=me, other=0.0)
            d_h += tl.load(cy + 3 * DP + re, volatile=True)
            d_c = tl.load(cy + re, volatile=True) + d_h * o_gate / n
            d_n = tl.load(cy + DP + re, volatile=True) - d_h * h / n
            d_m = tl.load(cy + 2 * DP + re, volatile=True)
            d_o_pre = d_h * (c * o_gate / n) * (1.0 - o_gate)
            d_z_pre = d_c * i_gate * (1.0 - z_act * z_act)
            d_i = d_c * i_gate * z_act + d_n * i_gate
            d_a = d_c * (f_gate * c_prev) + d_n * (f_gate * n_prev)
            d_m_tot = d_m - d_i - d_a
            d_i_pre = d_i + d_m_tot * (1.0 - to_a)
            d_m = d_a + d_m_tot * to_a
            d_f_pre = d_m * tl.sigmoid(-f_pre)
            # Padded features must not reach the recurrent product below.
            d_i_pre = tl.where(me, d_i_pre, 0.0)
            d_f_pre = tl.where(me, d_f_pre, 0.0)
            d_z_pre = tl.where(me, d_z_pre, 0.0)
            d_o_pre = tl.where(me, d_o_pre, 0.0)
            tl.store(dpre_ptr + pre_off + re, d_i_pre, mask=me)
            tl.store(dpre_ptr + pre_off + D + re, d_f_pre, mask=me)
            tl.store(dpre_ptr + pre_off + 2 * D + re, d_z_pre, mask=me)
            tl.store(dpre_ptr + pre_off + 3 * D + re, d_o_pre, mask=me)
            tl.store(cy + re, d_c * f_gate)
            tl.store(cy + DP + re, d_n * f_gate)
            tl.store(cy + 2 * DP + re, d_m)

            # d h_{t-1} += sum_g R[head, g][:, block] @ d_pre_g[block]
            rmask = mk[:, None] & me[None, :]
            r_tile = r_ptr + r_base + rk[:, None] * D + re[None, :]
            d_rec += tl.sum(tl.load(r_tile, mask=rmask, other=0.0) * d_i_pre[None, :], 1)
            d_rec += tl.sum(tl.load(r_tile + D * D, mask=rmask, other=0.0) * d_f_pre[None, :], 1)
            d_rec += tl.sum(tl.load(r_tile + 2 * D * D, mask=rmask, other=0.0) * d_z_pre[None, :], 1)
            d_rec += tl.sum(tl.load(r_tile + 3 * D * D, mask=rmask, other=0.0) * d_o_pre[None, :], 1)
        # Every block has read the old recurrent gradient before any thread overwrites it, and the
        # new one is complete before the next step reads it.
        tl.debug_barrier()
        tl.store(cy + 3 * DP + rk, d_rec)
        tl.debug_barrier()


def slstm_bwd(
    pre: torch.Tensor,
    R: torch.Tensor,
    h_all: torch.Tensor,
    c_all: torch.Tensor,
    n_all: torch.Tensor,
    m_all: torch.Tensor,
    dh: torch.Tensor,
    dc_t: torch.Tensor,
    dn_t: torch.Tensor,
    dm_t: torch.Tensor,
    block: int | None = None,
) -> tuple[torch.Tensor, ...]:
    """Run the backward kernel.

    Args:
        pre: Saved pre-activations [B, S, H, 4, D], float32.
        R: Recurrent weights [H, 4, D, D], float32.
        h_all: Saved states, each [B, H, S + 1, D] float32 (likewise c_all, n_all, m_all).
        dh: Gradient of the outputs [B, S, H, D], float32, contiguous.
        dc_t: Gradients of the final c, n and m, each [B, H, D] float32 (likewise dn_t, dm_t).
        block: Output-feature block size (None: the default; need not be the forward's).

    Returns:
        d_pre [B, S, H, 4, D] and the gradients of h0, c0, n0 and a0 = m0 (before the empty-state
        rule), each [B, H, D], float32.
    """
    batch, seq, heads, _, dim = pre.shape
    dp = padded(dim)
    bj = block_out(dp, block)
    d_pre = alloc(pre.shape, dtype=torch.float32, device=pre.device)
    carry = torch.zeros(batch, heads, 4, dp, dtype=torch.float32, device=pre.device)
    carry[:, :, 0, :dim] = dc_t
    carry[:, :, 1, :dim] = dn_t
    carry[:, :, 2, :dim] = dm_t
    # num_stages=1 (see launch_options): the steps talk through global memory.
    _slstm_bwd_kernel[(batch * heads,)](
        pre, R, h_all, c_all, n_all, m_all, dh, d_pre, carry,
        seq, heads, dim, dp, bj, **launch_options(dp, bj),
    )  # fmt: skip
    dc0, dn0, dm0, dh0 = carry[..., :dim].unbind(2)
    return d_pre, dh0, dc0, dn0, dm0
