"""Bidirectional mode: every block sums a forward pass and a pass over the flipped sequence."""

from __future__ import annotations

import pytest
import torch

from biolm.models import BioLM
from biolm.models.bidirectional import flip_sequence
from tests.models.helpers import PATTERNS, cu_seqlens, make_model

LENGTHS = [5, 9, 4]


@pytest.fixture(params=PATTERNS, scope="module")
def model(request) -> BioLM:
    return make_model(request.param, bidirectional=True)


@pytest.fixture(scope="module")
def mixed() -> BioLM:
    """Every block type in one model: the cheaper tests run once on it."""
    return make_model("msat", bidirectional=True)


def explicit_logits(model: BioLM, ids: torch.Tensor) -> torch.Tensor:
    """The bidirectional model written out: each block's mixer, called causally, once on the sequence
    and once on its reverse (flipped back), the two summed."""
    x = model.embedding(ids)
    for block in model.blocks:
        mixer = block.layer if hasattr(block, "layer") else block.mixer
        h = block.norm(x)
        forward, _ = mixer(h)
        backward, _ = mixer(h.flip(1))
        x = x + forward + backward.flip(1)
        if hasattr(block, "ffn"):
            x = x + block.ffn(block.ffn_norm(x))
    return model.lm_head(model.final_norm(x))


def test_equals_explicit_forward_plus_reverse(model):
    ids = torch.randint(6, 11, (2, 12))
    out = model(ids)
    assert out.state is None
    torch.testing.assert_close(out.logits, explicit_logits(model, ids), rtol=0, atol=1e-10)


def test_every_position_sees_both_sides(mixed):
    model = mixed
    ids = torch.randint(6, 11, (1, 20))
    changed = ids.clone()
    changed[0, 10] = 6 if ids[0, 10] != 6 else 7
    a, b = model(ids).logits, model(changed).logits
    assert not torch.allclose(a[:, :10], b[:, :10])  # the past of position 10 sees it (causal would not)
    assert not torch.allclose(a[:, 11:], b[:, 11:])


def test_packed_equals_each_document_alone(mixed):
    model = mixed
    torch.manual_seed(1)
    docs = [torch.randint(6, 11, (1, n)) for n in LENGTHS]
    out = model(torch.cat(docs, dim=1), cu_seqlens=cu_seqlens(LENGTHS))
    alone = torch.cat([model(doc).logits for doc in docs], 1)
    torch.testing.assert_close(out.logits, alone, rtol=0, atol=1e-10)


def test_packed_keeps_documents_apart_in_both_directions(mixed):
    model = mixed
    ids = torch.randint(6, 11, (1, sum(LENGTHS)))
    changed = ids.clone()
    changed[0, LENGTHS[0]] = 6 if ids[0, LENGTHS[0]] != 6 else 7  # first token of document 2
    offsets = cu_seqlens(LENGTHS)
    a, b = model(ids, cu_seqlens=offsets).logits, model(changed, cu_seqlens=offsets).logits
    end = LENGTHS[0] + LENGTHS[1]
    assert torch.equal(a[:, : LENGTHS[0]], b[:, : LENGTHS[0]])  # the reverse pass must not leak back
    assert torch.equal(a[:, end:], b[:, end:])
    assert not torch.allclose(a[:, LENGTHS[0] + 1 : end], b[:, LENGTHS[0] + 1 : end])


def test_flip_sequence_flips_each_document():
    x = torch.arange(7)[None]
    assert flip_sequence(x, torch.tensor([0, 3, 7])).tolist() == [[2, 1, 0, 6, 5, 4, 3]]
    assert flip_sequence(x).tolist() == [[6, 5, 4, 3, 2, 1, 0]]


def test_state_and_step_are_refused():
    model = make_model("ms", bidirectional=True)
    ids = torch.randint(6, 11, (2, 8))
    with pytest.raises(ValueError, match="bidirectional model has no recurrent state"):
        model.init_state(2)
    with pytest.raises(ValueError, match="bidirectional model has no recurrent state"):
        model(ids, state=[None, None])
    with pytest.raises(ValueError, match="bidirectional model has no recurrent state"):
        model.step(ids[:, 0], [None, None])


def test_gradients_reach_every_parameter():
    model = make_model("msat", dtype=torch.float32, bidirectional=True).train()
    model(torch.randint(6, 11, (2, 13))).logits.logsumexp(-1).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_same_parameter_layout_as_causal_model():
    causal, bidirectional = make_model("msat"), make_model("msat", bidirectional=True)
    bidirectional.load_state_dict(causal.state_dict())  # strict: same names and shapes
    ids = torch.randint(6, 11, (1, 12))
    assert not torch.allclose(causal(ids).logits, bidirectional(ids).logits)
