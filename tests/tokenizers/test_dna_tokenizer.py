import numpy as np
import pytest
import torch

from biolm.tokenizers import DNATokenizer, TokenizationError

A, C, G, T, N = 6, 7, 8, 9, 10


@pytest.fixture(scope="module")
def tok() -> DNATokenizer:
    return DNATokenizer()


def test_vocab_layout(tok):
    assert tok.tokens == ["<pad>", "<bos>", "<eos>", "<sep>", "<mask>", "<unk>", "A", "C", "G", "T", "N"]
    assert tok.vocab_size == 11
    assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.sep_id, tok.mask_id, tok.unk_id) == (0, 1, 2, 3, 4, 5)
    assert tok.special_ids == [0, 1, 2, 3, 4, 5]


def test_encode_decode_round_trip(tok):
    ids = tok.encode("GATTACAN")
    assert ids.dtype == np.int64 and ids.ndim == 1
    assert ids.tolist() == [G, A, T, T, A, C, A, N]
    assert tok.decode(ids) == "GATTACAN"


def test_bos_eos(tok):
    ids = tok.encode("AC", add_bos=True, add_eos=True)
    assert ids.tolist() == [1, A, C, 2]
    assert tok.decode(ids) == "AC"
    assert tok.decode(ids, skip_special=False) == "<bos>AC<eos>"
    assert tok.encode("", add_eos=True).tolist() == [2]


def test_empty(tok):
    ids = tok.encode("")
    assert ids.shape == (0,) and ids.dtype == np.int64
    assert tok.decode(ids) == ""


def test_case_insensitive(tok):
    np.testing.assert_array_equal(tok.encode("acgtn"), tok.encode("ACGTN"))
    assert tok.decode(tok.encode("aCgTnN")) == "ACGTNN"


@pytest.mark.parametrize("code", list("RYSWKMBDHV") + list("ryswkmbdhv"))
def test_iupac_ambiguity_maps_to_n(tok, code):
    assert tok.encode(f"A{code}C").tolist() == [A, N, C]


@pytest.mark.parametrize("bad", ["U", "u", "-", "5", " ", "\n", "*", "Z", "?"])
def test_invalid_character_error(tok, bad):
    seq = "ACGTACGTACGTACGT" + bad + "ACGT"
    with pytest.raises(TokenizationError) as exc:
        tok.encode(seq, record="chr1")
    err = exc.value
    assert str(err).startswith(f"record 'chr1': invalid character {bad!r} at position 17 ")
    assert "unknown='replace'" in str(err)
    assert (err.record, err.position, err.text) == ("chr1", 17, bad)
    assert "\n" not in str(err).replace(repr("\n"), "")


def test_error_reports_first_bad_position_without_record(tok):
    with pytest.raises(TokenizationError, match=r"^invalid character 'X' at position 2 ") as exc:
        tok.encode("AXC-")
    assert exc.value.record is None


def test_replace_maps_to_n():
    tok = DNATokenizer(unknown="replace")
    assert tok.encode("AU-5 c").tolist() == [A, N, N, N, N, C]


@pytest.mark.parametrize("ch", ["é", "Ω", "\u00a0", "😀", "\ud800"])
def test_non_ascii_is_tokenization_error(tok, ch):
    with pytest.raises(TokenizationError) as exc:
        tok.encode("ACG" + ch + "T", record="r")
    assert exc.value.position == 4 and exc.value.text == ch
    assert DNATokenizer(unknown="replace").encode("ACG" + ch + "T").tolist() == [A, C, G, N, T]


def test_non_ascii_before_error_keeps_positions():
    # Under replace every non-ASCII char is one id, so positions after it stay aligned.
    tok = DNATokenizer(unknown="replace")
    assert tok.encode("ééA").tolist() == [N, N, A]


def test_unknown_option_validated():
    with pytest.raises(ValueError, match="unknown"):
        DNATokenizer(unknown="ignore")


@pytest.mark.parametrize("ids", [[A, C], np.array([A, C], np.int32), torch.tensor([A, C])])
def test_decode_accepts_list_array_tensor(tok, ids):
    assert tok.decode(ids) == "AC"


@pytest.mark.parametrize("bad", [[A, 11], [-1], np.zeros((2, 2), np.int64), [0.5]])
def test_decode_rejects_bad_ids(tok, bad):
    with pytest.raises(ValueError):
        tok.decode(bad)


def test_complement_table(tok):
    table = tok.complement_table
    assert table.shape == (11,)
    assert table.tolist() == [0, 1, 2, 3, 4, 5, T, G, C, A, N]
    with pytest.raises(ValueError):
        table[A] = 0


def test_reverse_complement_numpy(tok):
    rc = tok.reverse_complement(tok.encode("AACGTN"))
    assert tok.decode(rc) == "NACGTT"


def test_reverse_complement_keeps_specials(tok):
    ids = np.array([1, A, C, G, 2, 0])
    assert tok.reverse_complement(ids).tolist() == [0, 2, C, G, T, 1]


def test_reverse_complement_batch_numpy_and_torch(tok):
    rng = np.random.default_rng(0)
    batch = rng.integers(0, tok.vocab_size, size=(4, 3, 50)).astype(np.int32)
    rc = tok.reverse_complement(batch)
    assert rc.shape == batch.shape and rc.dtype == np.int32
    for idx in np.ndindex(batch.shape[:-1]):
        assert rc[idx].tolist() == tok.complement_table[batch[idx][::-1]].tolist()
    np.testing.assert_array_equal(tok.reverse_complement(rc), batch)

    t = torch.from_numpy(batch.astype(np.int64))
    rc_t = tok.reverse_complement(t)
    assert isinstance(rc_t, torch.Tensor) and rc_t.dtype == torch.int64
    np.testing.assert_array_equal(rc_t.numpy(), rc)
    assert torch.equal(tok.reverse_complement(rc_t), t)


def test_reverse_complement_matches_string_rc(tok):
    seq = "GATTACANNCCGTAGGCT"
    comp = str.maketrans("ACGTN", "TGCAN")
    assert tok.decode(tok.reverse_complement(tok.encode(seq))) == seq.translate(comp)[::-1]


def test_one_megabase_matches_slow_lookup(tok):
    rng = np.random.default_rng(1)
    seq = "".join(rng.choice(list("ACGTNacgtnRYkm"), size=1_000_000))
    ids = tok.encode(seq)
    assert ids.shape == (1_000_000,)
    slow = {c: tok.token_to_id(c.upper()) for c in "ACGTNacgtn"} | {c: N for c in "RYkm"}
    for sl in (slice(0, 5000), slice(500_000, 505_000), slice(-5000, None)):
        assert ids[sl].tolist() == [slow[c] for c in seq[sl]]
    counts = np.bincount(ids, minlength=tok.vocab_size)
    assert counts[N] == sum(seq.count(c) for c in "NnRYkm")


def test_one_megabase_error_position(tok):
    seq = "A" * 999_998 + "U" + "C"
    with pytest.raises(TokenizationError, match="position 999999 "):
        tok.encode(seq, record="big")
