"""``slstm_triton``: the triton forward and backward kernels as one autograd Function.

The forward kernel saves every step's state and gate pre-activations; the backward kernel recomputes
the gate activations from them and returns the gradient of the pre-activations and of the initial
state. What is left is a reduction over steps and batch, done here: ``dR[h, g] = sum h_{t-1}^T
d_pre_g`` and ``d bias = sum d_pre``. The gradients are exact (they mirror the hand-written backward
of :mod:`biolm.kernels.slstm.chunkwise`), including the empty-state rule: no gradient reaches ``m_0``
where ``n_0 == 0``.
"""

from __future__ import annotations

import torch

from biolm.kernels.slstm.chunkwise import slstm_fused
from biolm.kernels.slstm.reference import SLSTMState, zero_state
from biolm.kernels.slstm.triton.bwd import slstm_bwd
from biolm.kernels.slstm.triton.fwd import slstm_fwd


class _SLSTMTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gx, R, bias, h0, c0, n0, m0, block):
        pre, h_all, c_all, n_all, m_all = slstm_fwd(gx, R, bias, h0, c0, n0, m0, block)
        ctx.save_for_backward(pre, R, h_all, c_all, n_all, m_all)
        ctx.meta = (gx.dtype, bias is not None, block)
        h = h_all[:, :, 1:].transpose(1, 2).contiguous()  # [B, S, H, D]
        return h, *(x[:, :, -1].clone() for x in (c_all, n_all, m_all))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dh, dc_t, dn_t, dm_t):
        pre, R, h_all, c_all, n_all, m_all = ctx.saved_tensors
        gx_dtype, has_bias, block = ctx.meta
        zeros = torch.zeros_like(c_all[:, :, 0])
        dh = torch.zeros_like(h_all[:, :, 1:]).transpose(1, 2) if dh is None else dh
        dc_t, dn_t, dm_t = (zeros if g is None else g.float() for g in (dc_t, dn_t, dm_t))
        d_pre, dh0, dc0, dn0, da0 = slstm_bwd(
            pre, R, h_all, c_all, n_all, m_all, dh.float().contiguous(), dc_t, dn_t, dm_t, block
        )
        dm0 = torch.where(n_all[:, :, 0] == 0, 0.0, da0)
        d_r = torch.einsum("bhsk,bshge->hgke", h_all[:, :, :-1], d_pre)
        d_bias = d_pre.sum((0, 1)) if has_bias else None
        return d_pre.to(gx_dtype), d_r, d_bias, dh0, dc0, dn0, dm0, None


def slstm_triton(
    gates_x: torch.Tensor,
    R: torch.Tensor,
    state: SLSTMState | None = None,
    bias: torch.Tensor | None = None,
    block: int | None = None,
) -> tuple[torch.Tensor, SLSTMState]:
    """Fused recurrent sLSTM with triton forward and backward kernels (``backend="triton"``); the
    function of ``slstm_fused``.

    Arguments as :func:`biolm.kernels.slstm.slstm`, plus ``block``: output features per block inside
    the kernels (a tuning knob; results do not depend on it). Float64 inputs and empty sequences go
    to the torch path (``slstm_fused``): the kernels compute in float32. Returns ``(h, final state)``,
    the state float32.
    """
    if gates_x.dtype == torch.float64 or gates_x.shape[1] == 0:
        return slstm_fused(gates_x, R, state=state, bias=bias)
    if gates_x.dtype not in (torch.float32, torch.bfloat16):
        raise TypeError(f"the triton sLSTM takes float32 or bfloat16 inputs; got {gates_x.dtype}")
    batch, _, heads, _, dim = gates_x.shape
    if state is None:
        state = zero_state(batch, heads, dim, torch.float32, gates_x.device)
    h0, c0, n0, m0 = (s.to(torch.float32).contiguous() for s in state)
    r32 = R.to(torch.float32).contiguous()
    b32 = None if bias is None else bias.to(torch.float32).contiguous()
    h, c, n, m = _SLSTMTriton.apply(gates_x.contiguous(), r32, b32, h0, c0, n0, m0, block)
    return h.to(gates_x.dtype), SLSTMState(h[:, -1], c, n, m)


__all__ = ["slstm_triton"]
