import numpy as np
import pytest
import torch

from biolm.tokenizers import ProteinTokenizer, TokenizationError

ALPHABET = "ACDEFGHIKLMNPQRSTVWYXBZUO"


@pytest.fixture(scope="module")
def tok() -> ProteinTokenizer:
    return ProteinTokenizer()


def test_vocab_layout(tok):
    assert tok.tokens[:6] == ["<pad>", "<bos>", "<eos>", "<sep>", "<mask>", "<unk>"]
    assert tok.tokens[6:] == list(ALPHABET)
    assert tok.vocab_size == 31
    assert tok.token_to_id("A") == 6 and tok.token_to_id("Y") == 25 and tok.token_to_id("X") == 26


def test_round_trip_all_letters(tok):
    ids = tok.encode(ALPHABET, add_bos=True, add_eos=True)
    assert ids.dtype == np.int64
    assert ids.tolist() == [1, *range(6, 31), 2]
    assert tok.decode(ids) == ALPHABET
    assert tok.decode(torch.from_numpy(ids), skip_special=False) == f"<bos>{ALPHABET}<eos>"


def test_case_insensitive(tok):
    seq = "MKTAYIAKQRQISFVKSHFSRQ"
    np.testing.assert_array_equal(tok.encode(seq.lower()), tok.encode(seq))
    assert tok.decode(tok.encode("mKtAy")) == "MKTAY"


@pytest.mark.parametrize("bad", ["*", "-", ".", "1", " ", "J", "é"])
def test_invalid_character_error(tok, bad):
    with pytest.raises(TokenizationError) as exc:
        tok.encode("MKV" + bad + "L", record="sp|P69905|HBA_HUMAN")
    msg = str(exc.value)
    assert msg.startswith(f"record 'sp|P69905|HBA_HUMAN': invalid character {bad!r} at position 4 ")
    assert "map it to X" in msg
    assert exc.value.position == 4


def test_replace_maps_to_x():
    tok = ProteinTokenizer(unknown="replace")
    x = tok.token_to_id("X")
    assert tok.encode("M*-.1é").tolist() == [tok.token_to_id("M"), x, x, x, x, x]


def test_unknown_option_validated():
    with pytest.raises(ValueError):
        ProteinTokenizer(unknown="skip")


def test_long_sequence_matches_slow_lookup(tok):
    rng = np.random.default_rng(0)
    seq = "".join(rng.choice(list(ALPHABET + ALPHABET.lower()), size=200_000))
    ids = tok.encode(seq)
    assert ids.tolist() == [tok.token_to_id(c.upper()) for c in seq]
    assert tok.decode(ids) == seq.upper()
