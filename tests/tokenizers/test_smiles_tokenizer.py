import csv
import glob
import gzip
import os
from pathlib import Path

import numpy as np
import pytest
import rdkit

from biolm.tokenizers import SmilesTokenizer, TokenizationError, load_tokenizer, tokenize_smiles
from biolm.tokenizers.smiles_vocab import DEFAULT_VOCAB

# tests/tokenizers/ -> repo root -> ../shared/data, so that any clone next to shared/ finds it.
SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CHEM = SHARED_DATA / "chem"


def _need_shared_data() -> None:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data not found: shared data not found")


def _read_column(path: Path | str, column: str) -> list[str]:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", newline="") as fh:
        return [row[column] for row in csv.DictReader(fh)]


@pytest.fixture(scope="module")
def tok() -> SmilesTokenizer:
    return SmilesTokenizer()


def test_default_vocab_layout(tok):
    assert tok.tokens[:6] == ["<pad>", "<bos>", "<eos>", "<sep>", "<mask>", "<unk>"]
    assert tok.vocab == DEFAULT_VOCAB
    assert tok.vocab_size == 6 + len(DEFAULT_VOCAB)
    assert len(set(DEFAULT_VOCAB)) == len(DEFAULT_VOCAB)
    for t in ["Cl", "Br", "c", "[nH]", "[C@@H]", "[O-]", "[Na+]", "%10", "%99", "=", "\\", "[2H]"]:
        assert t in DEFAULT_VOCAB


@pytest.mark.parametrize(
    ("smiles", "tokens"),
    [
        ("CCl", ["C", "Cl"]),
        ("BrCBr", ["Br", "C", "Br"]),
        ("BCN", ["B", "C", "N"]),
        ("c1cc[nH]c1", ["c", "1", "c", "c", "[nH]", "c", "1"]),
        ("C%10CC%10", ["C", "%10", "C", "C", "%10"]),
        ("C12%11CC1C2%11", ["C", "1", "2", "%11", "C", "C", "1", "C", "2", "%11"]),
        ("C/C=C\\C", ["C", "/", "C", "=", "C", "\\", "C"]),
        ("N[C@@H](C)C(=O)O", ["N", "[C@@H]", "(", "C", ")", "C", "(", "=", "O", ")", "O"]),
        ("[Na+].[Cl-]", ["[Na+]", ".", "[Cl-]"]),
        ("CC(=O)[O-].[NH4+]", ["C", "C", "(", "=", "O", ")", "[O-]", ".", "[NH4+]"]),
        ("C#N", ["C", "#", "N"]),
        ("c1ccccc1:c", ["c", "1", "c", "c", "c", "c", "c", "1", ":", "c"]),
        ("*C$C", ["*", "C", "$", "C"]),
        ("", []),
    ],
)
def test_tokenize_and_round_trip(tok, smiles, tokens):
    assert tok.tokenize(smiles) == tokens
    ids = tok.encode(smiles, add_bos=True, add_eos=True)
    assert ids.dtype == np.int64
    assert ids[0] == tok.bos_id and ids[-1] == tok.eos_id and len(ids) == len(tokens) + 2
    assert tok.decode(ids) == smiles


@pytest.mark.parametrize(
    ("smiles", "position", "char"),
    [
        ("CC X", 3, " "),
        ("CCX", 3, "X"),
        ("C[C", 2, "["),
        ("C[C H]", 2, "["),
        ("C[[C]]", 2, "["),
        ("CC]", 3, "]"),
        ("C%1CC", 2, "%"),
        ("CCé", 3, "é"),
        ("C[Cé]", 2, "["),
        ("C%٣٣", 2, "%"),
        ("CC<", 3, "<"),
    ],
)
def test_untokenizable_raises_with_position(tok, smiles, position, char):
    with pytest.raises(TokenizationError) as exc:
        tok.encode(smiles, record="mol7")
    assert str(exc.value).startswith(f"record 'mol7': invalid character {char!r} at position {position} ")
    assert (exc.value.position, exc.value.text) == (position, char)
    # 'replace' is about vocabulary coverage; text that is not SMILES still raises.
    with pytest.raises(TokenizationError):
        SmilesTokenizer(unknown="replace").encode(smiles)
    with pytest.raises(TokenizationError):
        tokenize_smiles(smiles)


def test_unknown_token_error_and_replace(tok):
    # Any bracket atom is covered by its parts; only a bracket that is not an atom is unknown.
    assert tok.tokenize("CC[Xe+3]C") == ["C", "C", "[", "Xe", "+3", "]", "C"]
    with pytest.raises(TokenizationError) as exc:
        tok.encode("CC[Qq]C", record="m1")
    assert str(exc.value).startswith("record 'm1': unknown SMILES token '[Qq]' at position 3 ")
    assert "not a bracket atom" in str(exc.value) and "\n" not in str(exc.value)
    assert exc.value.text == "[Qq]"
    rep = SmilesTokenizer(unknown="replace")
    ids = rep.encode("CC[Qq]C")
    assert ids.tolist() == [rep.token_to_id("C")] * 2 + [rep.unk_id, rep.token_to_id("C")]
    assert rep.decode(ids) == "CCC"
    assert rep.decode(ids, skip_special=False) == "CC<unk>C"
    # A vocabulary without all the parts: the bracket atom is unknown as a whole, one <unk>.
    small = SmilesTokenizer(["C", "[", "]"], unknown="replace")
    assert small.encode("C[Xe+3]").tolist() == [small.token_to_id("C"), small.unk_id]
    with pytest.raises(TokenizationError, match=r"unknown SMILES token '\[Xe\+3\]' at position 2 \(neither"):
        SmilesTokenizer(["C", "[", "]"]).encode("C[Xe+3]")


def test_fit_extends_vocab_deterministically(tok):
    data = ["CC[Qq]C", "[Zz]", "CCO", "[Qq].[Xe+3]"]
    fitted = SmilesTokenizer.fit(data)
    assert fitted.vocab[: len(DEFAULT_VOCAB)] == DEFAULT_VOCAB
    # [Xe+3] is written with the default parts; only brackets that are not atoms are new tokens.
    assert fitted.vocab[len(DEFAULT_VOCAB) :] == ["[Qq]", "[Zz]"]
    assert SmilesTokenizer.fit(reversed(data)) == fitted
    for s in data:
        assert fitted.decode(fitted.encode(s)) == s
    # Fitting again on the same data adds nothing; base tokens keep their ids.
    assert SmilesTokenizer.fit(data, base=fitted) == fitted
    small = SmilesTokenizer.fit(["CCO"], base=["C"])
    assert small.vocab == ["C", "O"]
    # A small base gets the parts it lacks; a whole bracket atom already in the base stays whole.
    parts = SmilesTokenizer.fit(["[Xe+3]C[NH4+]"], base=["C", "[NH4+]"])
    assert parts.vocab == ["C", "[NH4+]", "+3", "Xe", "[", "]"]
    assert parts.tokenize("[Xe+3]C[NH4+]") == ["[", "Xe", "+3", "]", "C", "[NH4+]"]


def test_fit_reports_bad_record():
    with pytest.raises(TokenizationError, match=r"^record '#1': invalid character ' ' at position 2"):
        SmilesTokenizer.fit(["CC", "C C"])


def test_fitted_vocab_save_load(tmp_path):
    fitted = SmilesTokenizer.fit(["C[Qq]", "[Zz]"], unknown="replace")
    path = tmp_path / "tok.json"
    fitted.save(path)
    loaded = load_tokenizer(path)
    assert isinstance(loaded, SmilesTokenizer)
    assert loaded == fitted and loaded.tokens == fitted.tokens and loaded.unknown == "replace"
    assert loaded.bracket_parts
    np.testing.assert_array_equal(loaded.encode("[Zz]C[Qq][Xe+3]"), fitted.encode("[Zz]C[Qq][Xe+3]"))
    assert loaded.encode("[Yy]").tolist() == [loaded.unk_id]


def test_invalid_vocab_rejected():
    with pytest.raises(ValueError, match="not a single SMILES token"):
        SmilesTokenizer(["C", "CC"])
    with pytest.raises(ValueError, match="duplicate"):
        SmilesTokenizer(["C", "C"])


def test_moses_test_set_round_trip(tok):
    _need_shared_data()
    smiles = _read_column(CHEM / "moses" / "test.csv.gz", "SMILES")
    assert len(smiles) > 170_000
    for s in smiles:
        assert "".join(tok.tokenize(s)) == s
        assert tok.decode(tok.encode(s, record=s)) == s


def test_default_vocab_covers_moleculenet_moleculeace_nci(tok):
    nci = Path(os.path.dirname(rdkit.__file__)) / "Data" / "NCI" / "first_5K.smi"
    smiles = [line.split()[0] for line in nci.read_text().splitlines() if line.strip()]
    if SHARED_DATA.is_dir():
        for f in sorted(
            glob.glob(str(CHEM / "moleculenet" / "*.csv")) + glob.glob(str(CHEM / "moleculeace" / "*.csv"))
        ):
            # ESOL has trailing spaces; readers strip whitespace before tokenizing.
            smiles += [s.strip() for s in _read_column(f, "smiles")]
    for s in smiles:
        assert tok.decode(tok.encode(s, record=s)) == s
