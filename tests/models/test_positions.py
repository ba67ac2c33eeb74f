"""Per-member positions (`position_ids`) for in-context packing: RoPE restarts, attention spans members."""

from __future__ import annotations

import math

import pytest
import torch

from biolm.models.attention import ROPE_BASE, CausalSelfAttention
from biolm.models.bidirectional import reverse_positions
from biolm.models.config import DNA_COMPLEMENT
from biolm.models.rc import reverse_complement, reverse_complement_logits
from tests.models.helpers import PATTERNS, cu_seqlens, make_model, tiny_config

MEMBERS = [6, 7]  # two members of a family packed into one row


def restarting() -> torch.Tensor:
    """[1, S] positions 0..5, 0..6."""
    return torch.cat([torch.arange(n) for n in MEMBERS])[None]


def reference_attention(attn: CausalSelfAttention, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Causal softmax attention written out, RoPE as a complex rotation by the given positions.

    Args: x [1, S, d]; positions [S]. Returns [1, S, d].
    """
    heads, dim = attn.num_heads, attn.head_dim
    q, k, v = (t.unflatten(-1, (heads, dim))[0] for t in attn.qkv(x).chunk(3, dim=-1))  # [S, H, D]
    half = dim // 2
    angle = positions.double()[:, None, None] * ROPE_BASE ** (-torch.arange(half, dtype=torch.float64) / half)

    def rotate(t: torch.Tensor) -> torch.Tensor:
        z = torch.complex(t[..., :half], t[..., half:]) * torch.polar(torch.ones_like(angle), angle)
        return torch.cat([z.real, z.imag], dim=-1)

    scores = torch.einsum("shd,thd->hst", rotate(q), rotate(k)) / math.sqrt(dim)
    S = x.shape[1]
    scores = scores.masked_fill(torch.ones(S, S, dtype=torch.bool).triu(1), float("-inf"))
    h = torch.einsum("hst,thd->shd", scores.softmax(-1), v)
    return attn.out(h.flatten(-2))[None]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_arange_positions_equal_none(pattern):
    model = make_model(pattern)
    ids = torch.randint(6, 11, (2, 13))
    positions = torch.arange(13).expand(2, -1)
    torch.testing.assert_close(model(ids, position_ids=positions).logits, model(ids).logits, rtol=0, atol=0)


@pytest.mark.parametrize("pattern", ["m", "s", "a", "x"])
def test_recurrent_blocks_ignore_positions(pattern):
    model = make_model(pattern)
    ids = torch.randint(6, 11, (1, 13))
    torch.testing.assert_close(
        model(ids, position_ids=restarting()).logits, model(ids).logits, rtol=0, atol=0
    )


def test_rope_is_relative():
    model = make_model("msat")
    ids = torch.randint(6, 11, (2, 13))
    shifted = torch.arange(13) + torch.tensor([[1000], [37]])  # a different shift per row
    torch.testing.assert_close(model(ids, position_ids=shifted).logits, model(ids).logits, rtol=0, atol=1e-9)


def test_attention_uses_the_given_positions():
    torch.manual_seed(0)
    attn = CausalSelfAttention(tiny_config("t")).double()
    x = torch.randn(1, sum(MEMBERS), 32, dtype=torch.float64)
    out, _ = attn(x, position_ids=restarting())
    torch.testing.assert_close(out, reference_attention(attn, x, restarting()[0]), rtol=0, atol=1e-10)
    # The reference does depend on positions: plain 0..S-1 gives something else for the second member.
    plain = reference_attention(attn, x, torch.arange(sum(MEMBERS)))
    assert not torch.allclose(out[:, MEMBERS[0] :], plain[:, MEMBERS[0] :])


def test_restart_reaches_later_members_and_information_crosses_members():
    model = make_model("ta")
    ids = torch.randint(6, 11, (1, sum(MEMBERS)))
    first = slice(0, MEMBERS[0])
    second = slice(MEMBERS[0], None)
    out, plain = model(ids, position_ids=restarting()).logits, model(ids).logits
    torch.testing.assert_close(out[:, first], plain[:, first], rtol=0, atol=0)
    assert not torch.allclose(out[:, second], plain[:, second])
    # Unlike cu_seqlens, positions do not isolate members: the second member sees the first.
    changed = ids.clone()
    changed[0, first] = torch.where(ids[0, first] == 6, 7, 6)
    assert not torch.allclose(model(changed, position_ids=restarting()).logits[:, second], out[:, second])


def test_positions_with_cu_seqlens_override_document_positions():
    model = make_model("t")
    ids, offsets = torch.randint(6, 11, (1, sum(MEMBERS))), cu_seqlens(MEMBERS)
    packed = model(ids, cu_seqlens=offsets).logits
    # Each document's own 0-based positions are what cu_seqlens uses anyway.
    torch.testing.assert_close(model(ids, cu_seqlens=offsets, position_ids=restarting()).logits, packed)
    assert not torch.allclose(model(ids, cu_seqlens=offsets, position_ids=restarting() * 3).logits, packed)


def test_state_passing_and_step_with_positions():
    model = make_model("msat")
    ids, positions = torch.randint(6, 11, (1, sum(MEMBERS))), restarting()
    whole = model(ids, position_ids=positions)
    first = model(ids[:, :4], position_ids=positions[:, :4])
    second = model(ids[:, 4:], state=first.state, position_ids=positions[:, 4:])
    torch.testing.assert_close(torch.cat([first.logits, second.logits], 1), whole.logits)
    state = model.init_state(1)
    for t in range(ids.shape[1]):
        logits, state = model.step(ids[:, t], state, position_ids=positions[:, t])
        torch.testing.assert_close(logits, whole.logits[:, t])


def test_bidirectional_reverse_pass_keeps_relative_positions():
    # The reverse pass gets -flip(positions): shifted arange must still match no positions at all, and
    # a reverse pass that saw positions decreasing would not.
    model = make_model("t", bidirectional=True)
    ids = torch.randint(6, 11, (2, 13))
    positions = torch.arange(13).expand(2, -1) + 5
    torch.testing.assert_close(
        model(ids, position_ids=positions).logits, model(ids).logits, rtol=0, atol=1e-9
    )


def test_rc_equivariant_with_positions():
    model = make_model("t", **dict(rc_equivariant=True, complement=DNA_COMPLEMENT))
    ids, positions = torch.randint(6, 11, (1, sum(MEMBERS))), restarting()
    out = model(ids, position_ids=positions).logits
    rc_out = model(reverse_complement(ids, DNA_COMPLEMENT), position_ids=reverse_positions(positions)).logits
    torch.testing.assert_close(rc_out, reverse_complement_logits(out, DNA_COMPLEMENT), rtol=0, atol=1e-10)


def test_bad_position_ids_are_rejected():
    model = make_model("t")
    ids = torch.randint(6, 11, (2, 5))
    with pytest.raises(ValueError, match="shape of ids"):
        model(ids, position_ids=torch.arange(5))
    with pytest.raises(ValueError, match="integers"):
        model(ids, position_ids=torch.zeros(2, 5))
