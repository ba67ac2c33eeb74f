import json
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from biolm.tokenizers import (
    FORMAT_VERSION,
    SPECIAL_TOKENS,
    DNATokenizer,
    ProteinTokenizer,
    SmilesTokenizer,
    TokenizationError,
    TokenizerFormatError,
    get_tokenizer,
    load_tokenizer,
    tokenizer_from_dict,
)

KINDS = {"dna": DNATokenizer, "protein": ProteinTokenizer, "smiles": SmilesTokenizer}
SAMPLES = {
    "dna": "ACGTNacgtnRY",
    "protein": "MKTAYIAKQRqisXBZUO",
    "smiles": "CC(=O)N[C@@H](Cl)c1cc[nH]c1.[Na+]",
}


@pytest.mark.parametrize("kind", KINDS)
def test_same_special_ids_everywhere(kind):
    tok = get_tokenizer(kind)
    assert isinstance(tok, KINDS[kind])
    assert tok.tokens[:6] == list(SPECIAL_TOKENS)
    ids = [tok.pad_id, tok.bos_id, tok.eos_id, tok.sep_id, tok.mask_id, tok.unk_id]
    assert ids == [tok.token_to_id(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4, 5]
    assert tok.special_ids == ids
    assert tok.vocab_size == len(tok.tokens)


def test_get_tokenizer_passes_options_and_rejects_unknown_kind():
    assert get_tokenizer("dna", unknown="replace").unknown == "replace"
    with pytest.raises(ValueError, match="'rna'"):
        get_tokenizer("rna")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("unknown", ["error", "replace"])
def test_save_load_round_trip(tmp_path, kind, unknown):
    tok = get_tokenizer(kind, unknown=unknown)
    path = tmp_path / f"{kind}.json"
    tok.save(path)
    d = json.loads(path.read_text())
    assert d["format"] == "biolm-tokenizer" and d["format_version"] == FORMAT_VERSION == 2
    assert (d["kind"], d["unknown"], d["tokens"]) == (kind, unknown, tok.tokens)
    loaded = load_tokenizer(path)
    assert type(loaded) is type(tok) and loaded == tok and hash(loaded) == hash(tok)
    assert loaded.tokens == tok.tokens and loaded.unknown == unknown
    np.testing.assert_array_equal(loaded.encode(SAMPLES[kind]), tok.encode(SAMPLES[kind]))
    assert tokenizer_from_dict(tok.to_dict()) == tok
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


@pytest.mark.parametrize("kind", ["dna", "protein"])
def test_format_1_reads_alike_for_dna_and_protein(kind):
    d = get_tokenizer(kind).to_dict() | {"format_version": 1}
    assert tokenizer_from_dict(d) == get_tokenizer(kind)


def test_tokenizers_differ_by_option():
    assert DNATokenizer() != DNATokenizer(unknown="replace")
    assert DNATokenizer() != ProteinTokenizer()


@pytest.mark.parametrize("kind", KINDS)
def test_unknown_format_version(tmp_path, kind):
    d = get_tokenizer(kind).to_dict()
    d["format_version"] = 4
    path = tmp_path / "future.json"
    path.write_text(json.dumps(d))
    with pytest.raises(
        TokenizerFormatError, match=r"future\.json.*format_version 4 \(this biolm reads 1, 2, 3\)"
    ):
        load_tokenizer(path)


@pytest.mark.parametrize(
    ("patch", "match"),
    [
        ({"format": "hf-tokenizer"}, "not a biolm tokenizer"),
        ({"format_version": None}, "format_version None"),
        ({"kind": "rna"}, "unknown tokenizer kind 'rna'"),
        ({"unknown": "ignore"}, "'unknown'"),
        ({"tokens": ["<pad>", "A"]}, "first tokens"),
        ({"tokens": list(SPECIAL_TOKENS) + ["A", "C", "G", "U", "N"]}, "differ"),
    ],
)
def test_malformed_dicts(tmp_path, patch, match):
    d = DNATokenizer().to_dict() | patch
    with pytest.raises(TokenizerFormatError, match=match):
        tokenizer_from_dict(d, source="x.json")
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(d))
    with pytest.raises(TokenizerFormatError, match="bad.json"):
        load_tokenizer(path)


def test_invalid_smiles_vocab_in_file():
    d = SmilesTokenizer().to_dict()
    d["tokens"].append("C C")
    with pytest.raises(TokenizerFormatError, match="invalid SMILES vocabulary"):
        tokenizer_from_dict(d)


def test_not_json(tmp_path):
    path = tmp_path / "tok.json"
    path.write_text("{not json")
    with pytest.raises(TokenizerFormatError, match=r"tok\.json: not valid JSON"):
        load_tokenizer(path)


TOKENIZERS = [cls(unknown=u) for cls in KINDS.values() for u in ("error", "replace")]
NEAR_VALID = "ACGTNacgtnRYUXMKV*-. 0123456789[]()=#%@+\\/ClBrcnos\u00e9\U0001f600"


@pytest.mark.parametrize("tok", TOKENIZERS, ids=lambda t: f"{t.kind}-{t.unknown}")
@settings(max_examples=150, deadline=None)
@given(text=st.one_of(st.text(), st.text(alphabet=NEAR_VALID)))
def test_random_text_raises_only_tokenization_error(tok, text):
    try:
        ids = tok.encode(text, record="r")
    except TokenizationError as e:
        assert e.record == "r" and 1 <= e.position <= len(text)
        assert text[e.position - 1 : e.position - 1 + len(e.text)] == e.text
        return
    assert ids.dtype == np.int64 and ids.ndim == 1
    assert ((ids >= 0) & (ids < tok.vocab_size)).all()
    out = tok.decode(ids)
    if isinstance(tok, SmilesTokenizer):
        if tok.unknown == "error":
            assert out == text
    else:
        assert len(ids) == len(text)
        if tok.unknown == "error":
            assert out == tok.decode(tok.encode(text.upper()))


def test_tokenization_error_survives_pickle_and_message_only_construction():
    with pytest.raises(TokenizationError) as exc:
        DNATokenizer().encode("ACU", record="chr2")
    err = pickle.loads(pickle.dumps(exc.value))
    assert str(err) == str(exc.value) and str(err).startswith("record 'chr2': ")
    assert (err.record, err.position, err.text) == ("chr2", 3, "U")
    # torch's DataLoader re-raises worker errors as exc_type(message).
    assert str(TokenizationError(str(err))) == str(err)
