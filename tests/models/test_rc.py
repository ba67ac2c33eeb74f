"""Reverse complement: RC-equivariant models (parameter sharing) and post-hoc conjoining."""

from __future__ import annotations

import pytest
import torch

from biolm.errors import ConfigError
from biolm.models import BioLM, ModelConfig
from biolm.models.config import DNA_COMPLEMENT
from biolm.models.io import CONFIG_FILE, load, save
from biolm.models.rc import conjoin, reverse_complement, reverse_complement_hidden, reverse_complement_logits
from biolm.tokenizers import DNATokenizer
from tests.models.helpers import PATTERNS, cu_seqlens, make_model

RC = dict(rc_equivariant=True, complement=DNA_COMPLEMENT)


def rc_ids(ids: torch.Tensor, offsets: torch.Tensor | None = None) -> torch.Tensor:
    return reverse_complement(ids, DNA_COMPLEMENT, offsets)


def test_reverse_complement_matches_tokenizer():
    tokenizer = DNATokenizer()
    ids = torch.as_tensor(tokenizer.encode("ACGTNNAAC"))[None]
    assert torch.equal(rc_ids(ids), tokenizer.reverse_complement(ids))
    assert tokenizer.decode(rc_ids(ids)[0].tolist()) == "GTTNNACGT"


@pytest.mark.parametrize("pattern", PATTERNS)
def test_rc_equivariant_for_every_block_type(pattern):
    model = make_model(pattern, dtype=torch.float32, **RC)
    ids = torch.randint(0, 11, (2, 14))  # specials and N included: they map to themselves
    out, out_rc = model(ids), model(rc_ids(ids))
    assert out.logits.shape == (2, 14, 11) and out.hidden.shape == (2, 14, 32)
    torch.testing.assert_close(out_rc.logits, reverse_complement_logits(out.logits, DNA_COMPLEMENT))
    torch.testing.assert_close(out_rc.hidden, reverse_complement_hidden(out.hidden))


def test_rc_equivariant_with_bidirectional_blocks():
    model = make_model("msat", dtype=torch.float32, bidirectional=True, **RC)
    ids = torch.randint(6, 11, (2, 14))
    torch.testing.assert_close(
        model(rc_ids(ids)).logits, reverse_complement_logits(model(ids).logits, DNA_COMPLEMENT)
    )


def test_plain_model_is_not_rc_equivariant():
    # The check above can fail: the same check on an ordinary model does.
    model = make_model("msat", dtype=torch.float32)
    ids = torch.randint(6, 11, (2, 14))
    expected = reverse_complement_logits(model(ids).logits, DNA_COMPLEMENT)
    assert not torch.allclose(model(rc_ids(ids)).logits, expected, atol=1e-3)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_rc_equivariant_packed_equals_documents_alone(bidirectional):
    model = make_model("msat", bidirectional=bidirectional, **RC)
    lengths = [5, 8]
    docs = [torch.randint(6, 11, (1, n)) for n in lengths]
    offsets = cu_seqlens(lengths)
    packed = model(torch.cat(docs, dim=1), cu_seqlens=offsets).logits
    torch.testing.assert_close(packed, torch.cat([model(d).logits for d in docs], 1), rtol=0, atol=1e-10)
    # Each document reverse-complemented in place.
    packed_rc = model(rc_ids(torch.cat(docs, dim=1), offsets), cu_seqlens=offsets).logits
    torch.testing.assert_close(packed_rc, reverse_complement_logits(packed, DNA_COMPLEMENT, offsets))


def test_rc_model_shares_block_weights_between_strands():
    plain = BioLM(ModelConfig(d_model=64, pattern="msat", n_layers=4))
    rc = BioLM(ModelConfig(d_model=64, pattern="msat", n_layers=4, **RC))
    half = BioLM(ModelConfig(d_model=32, pattern="msat", n_layers=4))
    # The RC model has exactly the parameters of a half-width model: no per-strand copies.
    assert rc.num_parameters() == half.num_parameters() < plain.num_parameters()
    assert sorted(rc.state_dict()) == sorted(half.state_dict())


def test_rc_model_has_no_state():
    model = make_model("m", **RC)
    with pytest.raises(ValueError, match="RC-equivariant model has no recurrent state"):
        model.init_state(1)
    with pytest.raises(ValueError, match="RC-equivariant model has no recurrent state"):
        model.step(torch.tensor([6]), [None])
    assert model(torch.randint(6, 11, (1, 5))).state is None


def test_rc_gradients_reach_every_parameter():
    model = make_model("msat", dtype=torch.float32, bidirectional=True, **RC).train()
    model(torch.randint(6, 11, (2, 9))).logits.logsumexp(-1).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(rc_equivariant=True), "needs model.complement"),
        (dict(d_model=33, pattern="m", **RC), "even model.d_model"),
        (dict(d_model=36, num_heads=2, pattern="s", **RC), "multiple of 4 \\* model.num_heads"),
        (dict(complement=[0, 1, 2]), "permutation of 0..10"),
        (dict(complement=[1, 2, 0, 3, 4, 5, 9, 8, 7, 6, 10]), "its own inverse"),
    ],
)
def test_config_rejects_bad_rc_settings(overrides, message):
    with pytest.raises(ConfigError, match=message):
        ModelConfig(**{"vocab_size": 11, "n_layers": 1, **overrides})


def test_dna_complement_is_the_tokenizers():
    assert DNATokenizer().complement_table.tolist() == DNA_COMPLEMENT


def test_conjoin_is_rc_symmetric():
    model = make_model("ma", bidirectional=True, complement=DNA_COMPLEMENT)
    ids = torch.randint(6, 11, (2, 13))
    conjoined = conjoin(model, ids)
    torch.testing.assert_close(
        conjoin(model, rc_ids(ids)), reverse_complement_logits(conjoined, DNA_COMPLEMENT)
    )
    torch.testing.assert_close(
        conjoined.logsumexp(-1), torch.zeros(2, 13, dtype=torch.float64)
    )  # normalised log-probs
    # The model alone is not symmetric, so the check above is not vacuous.
    alone = model(ids).logits.log_softmax(-1)
    assert not torch.allclose(
        model(rc_ids(ids)).logits.log_softmax(-1), reverse_complement_logits(alone, DNA_COMPLEMENT)
    )
    # By definition: the normalised mean of both strands' log-probabilities.
    other = reverse_complement_logits(model(rc_ids(ids)).logits.log_softmax(-1), DNA_COMPLEMENT)
    torch.testing.assert_close(conjoined, ((alone + other) / 2).log_softmax(-1))


def test_conjoin_packed_and_complement_argument():
    model = make_model("m")  # no complement in its config
    lengths = [4, 7]
    ids, offsets = torch.randint(6, 11, (1, sum(lengths))), cu_seqlens(lengths)
    with pytest.raises(ValueError, match="complement"):
        conjoin(model, ids)
    conjoined = conjoin(model, ids, DNA_COMPLEMENT, cu_seqlens=offsets)
    first = conjoin(model, ids[:, : lengths[0]], DNA_COMPLEMENT)
    torch.testing.assert_close(conjoined[:, : lengths[0]], first)


def test_save_load_round_trips_new_fields(tmp_path):
    model = make_model("mt", dtype=torch.float32, bidirectional=True, **RC)
    save(model, DNATokenizer(), tmp_path / "m")
    loaded = load(tmp_path / "m")
    assert loaded.config == model.config
    assert (loaded.config.bidirectional, loaded.config.rc_equivariant) == (True, True)
    assert loaded.config.complement == DNA_COMPLEMENT
    ids = torch.randint(6, 11, (2, 9))
    torch.testing.assert_close(loaded(ids).logits, model(ids).logits, rtol=0, atol=0)


def test_config_written_before_the_new_fields_still_loads(tmp_path):
    save(make_model("m", dtype=torch.float32), DNATokenizer(), tmp_path / "m")
    path = tmp_path / "m" / CONFIG_FILE
    lines = path.read_text().splitlines()
    new = ("bidirectional:", "rc_equivariant:", "complement:")
    old = [line for line in lines if not line.strip().startswith(new)]
    assert len(old) == len(lines) - 3
    path.write_text("\n".join(old) + "\n")
    config = load(tmp_path / "m").config
    assert (config.bidirectional, config.rc_equivariant, config.complement) == (False, False, None)
