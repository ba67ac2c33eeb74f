"""RoPE inside the `m` block (`ModelConfig.rope="inner"`, Prot-xLSTM's rot_1d): the rotation itself,
and the block's contracts with it on: a sequence in pieces with the state passed on equals one pass,
packed documents equal separate ones, and explicit positions matter."""

from __future__ import annotations

import torch

from biolm.models import BioLM
from biolm.models.common import rotate_pairs
from biolm.models.config import ModelConfig


def _model(**kwargs) -> BioLM:
    torch.manual_seed(0)
    config = ModelConfig(
        vocab_size=11, d_model=16, n_layers=2, num_heads=2, rope="inner", rope_base=500.0, **kwargs
    )
    return BioLM(config).double().eval()


def test_rotate_pairs_turns_adjacent_channel_pairs_as_complex_numbers():
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    positions = torch.tensor([[0, 1, 2, 0, 1], [3, 4, 5, 6, 7]])
    out = rotate_pairs(x, positions, base=100.0)
    z = torch.view_as_complex(x.unflatten(-1, (4, 2)).contiguous())
    angle = positions[..., None].double() * 100.0 ** (-torch.arange(0, 8, 2).double() / 8)
    expected = torch.view_as_real(z * torch.polar(torch.ones_like(angle), angle)).flatten(-2)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(rotate_pairs(x, torch.zeros(2, 5, dtype=torch.long), 100.0), x)


def test_pieces_with_state_equal_one_pass_and_positions_matter():
    model = _model()
    ids = torch.randint(6, 11, (2, 13))
    whole = model(ids).logits
    first = model(ids[:, :6])
    second = model(ids[:, 6:], state=first.state)  # positions continue from the state
    torch.testing.assert_close(torch.cat([first.logits, second.logits], 1), whole)
    stepped, state = [], model.init_state(2)
    for t in range(ids.shape[1]):
        logits, state = model.step(ids[:, t], state)
        stepped.append(logits)
    torch.testing.assert_close(torch.stack(stepped, 1), whole)
    restarted = torch.arange(13).remainder(5).expand(2, 13)
    assert not torch.allclose(model(ids, position_ids=restarted).logits, whole)


def test_packed_documents_equal_separate_ones():
    model = _model()
    a, b = torch.randint(6, 11, (1, 7)), torch.randint(6, 11, (1, 5))
    packed = model(torch.cat([a, b], 1), cu_seqlens=torch.tensor([0, 7, 12])).logits
    torch.testing.assert_close(packed, torch.cat([model(a).logits, model(b).logits], 1))


def test_head_rope_keeps_the_contracts_and_its_gates_read_the_unrotated_q_k():
    model = _model_with(rope="head")
    ids = torch.randint(6, 11, (2, 11))
    whole = model(ids).logits
    first = model(ids[:, :4])
    torch.testing.assert_close(
        torch.cat([first.logits, model(ids[:, 4:], state=first.state).logits], 1), whole
    )
    a, b = torch.randint(6, 11, (1, 6)), torch.randint(6, 11, (1, 5))
    packed = model(torch.cat([a, b], 1), cu_seqlens=torch.tensor([0, 6, 11])).logits
    torch.testing.assert_close(packed, torch.cat([model(a).logits, model(b).logits], 1))
    # At position 0 nothing turns: the first token's output is that of the model without RoPE.
    plain = _model_with(rope="none")
    plain.load_state_dict(model.state_dict())
    torch.testing.assert_close(plain(ids[:, :1]).logits, model(ids[:, :1]).logits)


def test_projection_biases_are_parameters_that_count():
    with_bias = _model_with(projection_bias=True)
    names = {
        n for n, _ in with_bias.named_parameters() if n.startswith("blocks.0.layer.") and n.endswith(".bias")
    }
    assert {
        f"blocks.0.layer.{p}.bias" for p in ("proj_up", "q_proj", "k_proj", "v_proj", "proj_down")
    } <= names
    plain = _model_with(projection_bias=False)
    plain.load_state_dict(with_bias.state_dict(), strict=False)
    ids = torch.randint(6, 11, (1, 7))
    torch.testing.assert_close(plain(ids).logits, with_bias(ids).logits)  # zero biases: the same model
    with torch.no_grad():
        with_bias.blocks[0].layer.q_proj.bias.fill_(0.5)
    assert not torch.allclose(plain(ids).logits, with_bias(ids).logits)


def test_block_scope_bidirectionality_runs_whole_blocks_both_ways():
    model = _model_with(rope="none", bidirectional=True, bidirectional_scope="block", pattern="ms")
    causal = _model_with(rope="none", pattern="ms")
    causal.load_state_dict(model.state_dict())
    ids = torch.randint(6, 11, (2, 9))
    x = model.embedding(ids)
    for block in causal.blocks:
        x = block(x)[0] + block(x.flip(1))[0].flip(1)
    torch.testing.assert_close(model(ids).logits, causal.lm_head(causal.final_norm(x)))


def test_ffn_multiple_sets_the_feed_forward_rounding():
    assert ModelConfig(d_model=80, ffn_factor=1.1, ffn_multiple=8, pattern="s", num_heads=4).ffn_dim == 88
    assert ModelConfig(d_model=80, ffn_factor=1.1, pattern="s", num_heads=4).ffn_dim == 128


def _model_with(**kwargs) -> BioLM:
    torch.manual_seed(0)
    settings = {"vocab_size": 11, "d_model": 16, "n_layers": 2, "num_heads": 2, "rope_base": 500.0, **kwargs}
    return BioLM(ModelConfig(**settings)).double().eval()
