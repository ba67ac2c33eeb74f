"""Packed variable-length batches: several documents in one row, separated by `cu_seqlens`."""

from __future__ import annotations

import pytest
import torch

from biolm.models import BioLM, ModelConfig
from biolm.models.linear_attention import GatedLinearAttention
from biolm.models.slstm import SLSTMLayer
from tests.models.helpers import PATTERNS

LENGTHS = [5, 9, 4]


def make_model(pattern: str) -> BioLM:
    torch.manual_seed(0)
    config = ModelConfig(
        vocab_size=11, d_model=32, n_layers=len(pattern), pattern=pattern, num_heads=2, chunk_size=4
    )
    model = BioLM(config).double()
    # Non-trivial gates and recurrent weights: with the init's zero gate weights the recurrences would
    # barely depend on the input, and a leak across a boundary could go unseen.
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, SLSTMLayer):
                module.R.normal_(std=0.3)
                module.bias.normal_(std=1.0)
            elif isinstance(module, GatedLinearAttention):
                module.decay.weight.normal_(std=0.5)
            elif hasattr(module, "igate"):
                module.igate.weight.normal_(std=0.5)
                module.fgate.weight.normal_(std=0.5)
    return model.eval()


def cu_seqlens(lengths: list[int]) -> torch.Tensor:
    return torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()])


@pytest.fixture(params=PATTERNS, scope="module")
def model(request) -> BioLM:
    return make_model(request.param)


def test_packed_equals_each_document_alone(model):
    torch.manual_seed(1)
    docs = [torch.randint(6, 11, (1, n)) for n in LENGTHS]
    out = model(torch.cat(docs, dim=1), cu_seqlens=cu_seqlens(LENGTHS))
    assert out.state is None
    alone = [model(doc) for doc in docs]
    torch.testing.assert_close(out.logits, torch.cat([a.logits for a in alone], 1), rtol=0, atol=1e-10)
    torch.testing.assert_close(out.hidden, torch.cat([a.hidden for a in alone], 1), rtol=0, atol=1e-10)


def test_no_information_crosses_a_boundary(model):
    torch.manual_seed(2)
    ids = torch.randint(6, 11, (1, sum(LENGTHS)))
    changed = ids.clone()
    changed[0, : LENGTHS[0]] = torch.where(ids[0, : LENGTHS[0]] == 6, 7, 6)  # every token of document 1
    offsets = cu_seqlens(LENGTHS)
    rest = slice(LENGTHS[0], None)
    packed, packed_changed = model(ids, cu_seqlens=offsets).logits, model(changed, cu_seqlens=offsets).logits
    assert torch.equal(packed[:, rest], packed_changed[:, rest])
    assert not torch.equal(packed[:, : LENGTHS[0]], packed_changed[:, : LENGTHS[0]])
    # Without the offsets the change does reach documents 2 and 3, so the check above can fail.
    plain, plain_changed = model(ids).logits, model(changed).logits
    assert not torch.allclose(plain[:, rest], plain_changed[:, rest])


def test_packed_rejects_state_and_batches():
    model = make_model("msat")
    offsets = cu_seqlens(LENGTHS)
    ids = torch.randint(6, 11, (1, sum(LENGTHS)))
    with pytest.raises(ValueError, match="state"):
        model(ids, state=model.init_state(1), cu_seqlens=offsets)
    with pytest.raises(ValueError, match="batch size 1"):
        model(ids.expand(2, -1), cu_seqlens=offsets)
    with pytest.raises(ValueError, match="rise from 0"):
        model(ids, cu_seqlens=torch.tensor([0, 5, 9]))
