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
