"""Fused sLSTM in plain PyTorch: the CPU default, with a hand-written backward.

The file is named for its role, the fast torch path, as ``chunkwise.py`` is in every op; the sLSTM
recurrence is nonlinear in its state and has no chunkwise-parallel form, so :func:`slstm_fused` runs
the steps one by one, fused as follows.

The recurrence is sequential, so the aim is the fewest, cheapest ops per step. Everything lives in a
head-major layout ``[S, H, B, ...]``: the input part of the gates (plus bias) is laid out once so that
``gx[t]`` is a contiguous [H, B, 4D] block, and each step is one ``baddbmm`` of ``h_{t-1}`` [H, B, D]
with the recurrent weights as [H, D, 4D] followed by a dozen pointwise ops on [H, B, D].

:class:`_SLSTMFunction` saves, per step, the states ``(h, c, n, m)`` and the gate activations the
forward computes anyway (``i', f', tanh(z~), sigmoid(o~), sigmoid(-f~)`` and the side the max took),
written in place into preallocated buffers. Its backward first forms every pointwise coefficient
that does not depend on the backward carry for all steps at once (vectorized over time), so that the
loop over time only carries the recurrent gradients (about fifteen pointwise ops on [H, B, D] and one
``bmm`` per step); ``dR`` is one batched matmul over all steps at the end. The backward is the exact
derivative of the forward, including ``torch.maximum``'s tie rule (half the gradient to each side),
so it equals autograd on :func:`biolm.kernels.slstm.reference.slstm_recurrent`, whose module
documents the math.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from biolm.kernels.common import compute_dtype, outside_autocast
from biolm.kernels.slstm.reference import SLSTMState, empty_aware_m, zero_state


def _head_major_weights(R: torch.Tensor, dt: torch.dtype) -> torch.Tensor:
    """[H, 4, D_in, D_out] -> [H, D_in, 4 * D_out], so that ``h @ R_hm`` gives all gates at once."""
    heads, _, dim, _ = R.shape
    return R.to(dt).permute(0, 2, 1, 3).reshape(heads, dim, 4 * dim)


class _SLSTMFunction(torch.autograd.Function):
    """sLSTM over ``S >= 1`` steps in head-major layout; see the module docstring."""

    @staticmethod
    def forward(ctx, gx, r_hm, h0, c0, n0, m0):
        """gx [S, H, B, 4D], r_hm [H, D, 4D], states [H, B, D] -> h_all [S, H, B, D], c, n, m [H, B, D]."""
        seq, heads, batch, four_d = gx.shape
        dim = four_d // 4
        # Index 0 holds the initial state, index t + 1 the state after step t.
        h_all, c_all, n_all, m_all = (gx.new_empty(seq + 1, heads, batch, dim) for _ in range(4))
        for buf, init in zip((h_all, c_all, n_all, m_all), (h0, c0, n0, m0), strict=True):
            buf[0] = init
        # Per step, for the backward: i', f', tanh(z~), sigmoid(o~), sigmoid(-f~), sign(log_f + m_prev - i~);
        # one contiguous [S, H, B, D] block each, so that the in-place writes below are contiguous.
        acts = gx.new_empty(6, seq, heads, batch, dim)
        # unbind once: Python-level indexing per step costs more than the small ops themselves.
        hs, cs, ns, ms = (x.unbind(0) for x in (h_all, c_all, n_all, m_all))
        per_step = zip(gx.unbind(0), *(x.unbind(0) for x in acts.unbind(0)), strict=True)
        m_prev = empty_aware_m(n0, m0)
        for t, (gx_t, i_gate, f_gate, z_act, o_gate, sig_neg_f, sign_a) in enumerate(per_step):
            pre = torch.baddbmm(gx_t, hs[t], r_hm).view(heads, batch, 4, dim)
            i_pre, f_pre, z_pre, o_pre = pre.unbind(2)
            a = F.logsigmoid(f_pre).add_(m_prev)
            m_prev = torch.maximum(a, i_pre, out=ms[t + 1])
            torch.sub(a, i_pre, out=sign_a).sign_()
            torch.sub(i_pre, m_prev, out=i_gate).exp_()
            torch.sub(a, m_prev, out=f_gate).exp_()
            torch.tanh(z_pre, out=z_act)
            torch.sigmoid(o_pre, out=o_gate)
            torch.neg(f_pre, out=sig_neg_f).sigmoid_()
            c = torch.addcmul(i_gate * z_act, f_gate, cs[t], out=cs[t + 1])
            n = torch.addcmul(i_gate, f_gate, ns[t], out=ns[t + 1])
            torch.mul(o_gate, c, out=hs[t + 1]).div_(n)
        ctx.save_for_backward(acts, r_hm, h_all, c_all, n_all)
        return h_all[1:], c_all[-1].clone(), n_all[-1].clone(), m_all[-1].clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    @outside_autocast
    def backward(ctx, d_h_all, d_c, d_n, d_m):
        acts, r_hm, h_all, c_all, n_all = ctx.saved_tensors
        _, seq, heads, batch, dim = acts.shape
        zeros = torch.zeros_like(h_all[0])
        d_h_all = zeros.expand_as(h_all[1:]) if d_h_all is None else d_h_all
        d_c, d_n, d_m = (zeros if g is None else g for g in (d_c, d_n, d_m))

        # Everything that does not depend on the backward carry, for all steps at once.
        i_gate, f_gate, z_act, o_gate, sig_neg_f, sign_a = acts.unbind(0)
        c, h = c_all[1:], h_all[1:]
        inv_n = n_all[1:].reciprocal()
        coef_c = o_gate * inv_n  # dh -> dc
        coef_n = torch.mul(h, inv_n).neg_()  # dh -> dn
        coef_o = (c * coef_c).mul_(1 - o_gate)  # dh -> d o~
        coef_z = torch.addcmul(i_gate, i_gate * z_act, z_act, value=-1)  # dc -> d z~
        coef_iz = i_gate * z_act  # dc -> d i~ (through i')
        coef_fc = f_gate * c_all[:-1]  # dc -> d(log_f + m_prev) (through f')
        coef_fn = f_gate * n_all[:-1]  # dn -> d(log_f + m_prev)
        # torch.maximum(a, i~) sends the gradient to the larger side, half to each on a tie.
        to_a = (sign_a + 1).mul_(0.5)
        to_i = 1 - to_a
        del inv_n

        d_pre_all = torch.empty(seq, heads, batch, 4 * dim, dtype=acts.dtype, device=acts.device)
        r_t = r_hm.transpose(1, 2).contiguous()  # [H, 4D, D]
        d_hs = d_h_all.unbind(0)
        per_step = zip(
            *(x.unbind(0) for x in (d_pre_all, coef_c, coef_n, coef_o, coef_z, coef_iz, i_gate)),
            *(x.unbind(0) for x in (coef_fc, coef_fn, to_i, to_a, sig_neg_f, f_gate)),
            strict=True,
        )
        d_h = d_hs[-1]  # the total gradient of h_t: from the output and from step t + 1
        for t, (d_pre, k_c, k_n, k_o, k_z, k_iz, k_in, k_fc, k_fn, k_ti, k_ta, k_sf, k_f) in reversed(
            list(enumerate(per_step))
        ):
            d_i_pre, d_f_pre, d_z_pre, d_o_pre = d_pre.view(heads, batch, 4, dim).unbind(2)
            d_c = torch.addcmul(d_c, d_h, k_c)
            d_n = torch.addcmul(d_n, d_h, k_n)
            torch.mul(d_h, k_o, out=d_o_pre)
            torch.mul(d_c, k_z, out=d_z_pre)
            d_i = torch.addcmul(d_c * k_iz, d_n, k_in)
            d_a = torch.addcmul(d_c * k_fc, d_n, k_fn)
            d_m_tot = torch.sub(d_m, d_i).sub_(d_a)
            torch.addcmul(d_i, d_m_tot, k_ti, out=d_i_pre)
            d_m = d_a.addcmul_(d_m_tot, k_ta)
            torch.mul(d_m, k_sf, out=d_f_pre)
            d_c = d_c * k_f
            d_n = d_n * k_f
            # At t = 0 this is the gradient of the initial h.
            d_h = torch.baddbmm(d_hs[t - 1], d_pre, r_t) if t else torch.bmm(d_pre, r_t)
        # The empty-state rule replaced m_0 by -inf where n_0 == 0: no gradient reaches m_0 there.
        d_m = torch.where(n_all[0] == 0, 0.0, d_m)
        # dR[h] = sum over steps and batch of h_{t-1}^T d_pre_t: one matmul over all steps.
        h_prev = h_all[:-1].permute(1, 3, 0, 2).reshape(heads, dim, seq * batch)
        d_r = torch.bmm(h_prev, d_pre_all.permute(1, 0, 2, 3).reshape(heads, seq * batch, 4 * dim))
        return d_pre_all, d_r, d_h, d_c, d_n, d_m


def slstm_fused(
    gates_x: torch.Tensor,
    R: torch.Tensor,
    state: SLSTMState | None = None,
    bias: torch.Tensor | None = None,
) -> tuple[torch.Tensor, SLSTMState]:
    """Fused sLSTM forward with an exact hand-written backward (first order: no double backward).

    ``backend="torch"``, and the float64 path of ``"triton"``. Arguments as
    :func:`biolm.kernels.slstm.slstm`; returns ``(h, final state)``.
    """
    batch, seq, heads, _, dim = gates_x.shape
    dt = compute_dtype(gates_x.dtype)
    if state is None:
        state = zero_state(batch, heads, dim, dt, gates_x.device)
    state = SLSTMState(*(s.to(dt) for s in state))
    if seq == 0:
        return gates_x.new_zeros(batch, 0, heads, dim), state
    gx = gates_x.to(dt)
    if bias is not None:
        gx = gx + bias.to(dt)
    gx = gx.permute(1, 2, 0, 3, 4).reshape(seq, heads, batch, 4 * dim)  # copies into head-major
    h0, c0, n0, m0 = (s.transpose(0, 1).contiguous() for s in state)
    h_all, c, n, m = _SLSTMFunction.apply(gx, _head_major_weights(R, dt), h0, c0, n0, m0)
    h_out = h_all.permute(2, 0, 1, 3)  # [B, S, H, D]
    final = SLSTMState(h_out[:, -1], *(x.transpose(0, 1) for x in (c, n, m)))
    final = SLSTMState(*(x.contiguous() for x in final))
    h_out = h_out.to(dtype=gates_x.dtype, memory_format=torch.contiguous_format)
    return h_out, final
