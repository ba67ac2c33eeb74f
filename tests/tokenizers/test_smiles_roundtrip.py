"""SMILES tokenization without unknowns (issue 18, item 1).

Every SMILES RDKit parses encodes with the default (format 2) tokenizer without <unk> and decodes to
the identical string; tokenizers saved in format 1 load with their old behaviour and ids.

Before format 2 (the V1 vocabulary, 315 ids), molecules with a token outside the vocabulary:
    MoleculeNet ClinTox (original CSV, 1,484 rows, 1,480 parsed by RDKit): 5 raw SMILES ([131I] x3,
        [99Tc], [201Tl], [32P]) and 8 RDKit-canonical ones (those plus [OH]); 2 more canonical ones
        (cobalamins, with dative bonds '<-') were not even tokenizable. After: 0.
    tox21: 21 of 7,823 canonical SMILES; MOSES test, BBBP, ESOL, FreeSolv, MoleculeACE: 0.
ClinTox is not under ../shared/data, so the ClinTox molecules that had unknowns are written out in
CLINTOX_UNKNOWN_BEFORE below, and a clintox CSV is checked if one is ever added there.
"""

import csv
import glob
import gzip
import hashlib
import json
import random
import re
from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem, RDLogger

from biolm.tokenizers import (
    SPECIAL_TOKENS,
    SmilesTokenizer,
    TokenizationError,
    load_tokenizer,
    tokenize_smiles,
    tokenizer_from_dict,
)
from biolm.tokenizers.smiles_vocab import (
    AROMATIC_SYMBOLS,
    CHIRALITY,
    ELEMENTS,
    PART_TOKENS,
    V1_VOCAB,
)

RDLogger.DisableLog("rdApp.*")

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CHEM = SHARED_DATA / "chem"
DATA_FILES = sorted(glob.glob(str(CHEM / "moleculenet" / "*.csv"))) + sorted(
    glob.glob(str(CHEM / "moleculeace" / "*.csv"))
)
MOSES_TEST = CHEM / "moses" / "test.csv.gz"

# Pinned from the format-1 tokenizer before format 2 existed (biolm at 41ac638).
V1_SIZE = 315
V1_TOKENS_SHA256 = "e6fa06989ae0b4e036e58c9b0c7a46bf84cc9d9bc737f55ca909348e2ca67fc9"
V1_IDS = {
    "CC(=O)O[C@@H]1CCN1": [8, 8, 29, 23, 11, 30, 11, 165, 39, 8, 8, 10, 39],
    "c1cc[nH]c1.[Na+].[Cl-]": [17, 39, 17, 17, 310, 17, 39, 31, 243, 31, 181],
    "C%10CC%10[2H]": [8, 48, 8, 8, 48, 143],
    "N#C/C=C\\Br": [10, 24, 8, 27, 8, 23, 8, 28, 7],
    "[NH4+].[O-]S(=O)(=O)[O-]": [240, 31, 250, 13, 29, 23, 11, 30, 29, 23, 11, 30, 250],
    "[te]1cccc1": [314, 39, 17, 17, 17, 17, 39],
    "[Se]": [283],
}
# unknown="replace" under format 1: a bracket atom outside the vocabulary is one <unk> (id 5).
V1_REPLACE_IDS = {"CC[Xe+3]C": [8, 8, 5, 8], "[NH4].[131I]": [5, 31, 5], "[CH3:7]C": [5, 8]}

# The raw ClinTox SMILES (MoleculeNet original clintox.csv) that had tokens outside the V1 vocabulary.
CLINTOX_UNKNOWN_BEFORE = [
    "[O-][99Tc](=O)(=O)=O",
    "c1c2c(c(c(c1[131I])[O-])[131I])Oc3c(cc(c(c3[131I])[O-])[131I])C24c5c(c(c(c(c5Cl)Cl)Cl)Cl)C(=O)O4",
    "c1cc(cc(c1)[131I])C[NH+]=C(N)N",
    "Cl[201Tl]",
    "O[32P](=O)([O-])[O-]",
]


def v1_dict(unknown: str = "error", extra: tuple[str, ...] = ()) -> dict:
    """A tokenizer file as biolm wrote it before format 2."""
    return {
        "format": "biolm-tokenizer",
        "format_version": 1,
        "kind": "smiles",
        "unknown": unknown,
        "tokens": [*SPECIAL_TOKENS, *V1_VOCAB, *extra],
    }


@pytest.fixture(scope="module")
def tok() -> SmilesTokenizer:
    return SmilesTokenizer()


@pytest.fixture(scope="module")
def v1() -> SmilesTokenizer:
    return tokenizer_from_dict(v1_dict())


def parses(smiles: str) -> bool:
    return Chem.MolFromSmiles(smiles, sanitize=False) is not None


def assert_round_trip(tok: SmilesTokenizer, smiles: str) -> np.ndarray:
    ids = tok.encode(smiles, record=smiles)
    assert tok.unk_id not in ids, smiles
    assert tok.decode(ids) == smiles
    return ids


# --- vocabulary and formats -----------------------------------------------------------------------


def test_v1_vocabulary_is_a_prefix_of_the_default(tok):
    v1_tokens = [*SPECIAL_TOKENS, *V1_VOCAB]
    assert len(v1_tokens) == V1_SIZE
    assert hashlib.sha256(json.dumps(v1_tokens).encode()).hexdigest() == V1_TOKENS_SHA256
    assert tok.tokens[:V1_SIZE] == v1_tokens
    assert tok.vocab == V1_VOCAB + PART_TOKENS and len(set(tok.tokens)) == tok.vocab_size
    assert tok.vocab_size == V1_SIZE + len(PART_TOKENS) == 534
    assert tok.to_dict()["format_version"] == 2


def test_new_tokenizer_keeps_v1_ids(tok):
    for smiles, ids in V1_IDS.items():
        assert tok.encode(smiles).tolist() == ids
        assert tokenize_smiles(smiles) == tok.tokenize(smiles)


@pytest.mark.parametrize("unknown", ["error", "replace"])
def test_format_1_dict_loads_with_old_behaviour(tmp_path, unknown):
    d = v1_dict(unknown)
    old = tokenizer_from_dict(d)
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(d))
    assert load_tokenizer(path) == old
    assert isinstance(old, SmilesTokenizer) and not old.bracket_parts
    assert old.vocab_size == V1_SIZE and old.unknown == unknown
    assert old == SmilesTokenizer(bracket_parts=False, unknown=unknown) != SmilesTokenizer(unknown=unknown)
    for smiles, ids in V1_IDS.items():
        assert old.encode(smiles).tolist() == ids
    # Saved again it stays format 1, so the model directory keeps its meaning.
    assert old.to_dict() == d
    if unknown == "replace":
        for smiles, ids in V1_REPLACE_IDS.items():
            assert old.encode(smiles).tolist() == ids
    else:
        with pytest.raises(TokenizationError, match=r"unknown SMILES token '\[Xe\+3\]' at position 3 "):
            old.encode("CC[Xe+3]C")
    # Format-1 syntax: no %(nnn) ring closures, no '<-'.
    for smiles in ["C%(12)CC%(12)", "[Cu]<-N"]:
        with pytest.raises(TokenizationError, match="invalid character"):
            old.encode(smiles)


def test_format_1_fitted_vocabulary_keeps_its_whole_tokens():
    old = tokenizer_from_dict(v1_dict("replace", extra=("[Xe+3]", "[Rn]")))
    assert not old.bracket_parts and old.vocab_size == V1_SIZE + 2
    assert old.encode("[Rn]C[Xe+3]").tolist() == [V1_SIZE + 1, 8, V1_SIZE]
    assert old.encode("[Kr]").tolist() == [old.unk_id]
    # Refitting on a format-1 base gives a format-2 tokenizer with the same ids for the old tokens.
    refit = SmilesTokenizer.fit(["[Kr]"], base=old)
    assert refit.bracket_parts and refit.tokens[: old.vocab_size] == old.tokens
    assert refit.encode("[Rn]C[Xe+3]").tolist() == [V1_SIZE + 1, 8, V1_SIZE]
    assert refit.decode(refit.encode("[Kr]")) == "[Kr]"


def test_new_ids_equal_old_ids_wherever_the_old_tokenizer_encoded(tok, v1):
    # RDKit's NCI sample plus the hand-written cases: the same ids whenever format 1 had no unknown.
    from rdkit import RDConfig

    nci = Path(RDConfig.RDDataDir) / "NCI" / "first_5K.smi"
    smiles = [line.split()[0] for line in nci.read_text().splitlines() if line.strip()]
    smiles += [s for s, _ in HAND_WRITTEN]
    same = 0
    for s in smiles:
        try:
            old_ids = v1.encode(s)
        except TokenizationError:
            continue
        assert tok.encode(s).tolist() == old_ids.tolist(), s
        same += 1
    assert same > 4900


# --- hand-written cases ---------------------------------------------------------------------------

HAND_WRITTEN = [
    # isotopes
    ("[131I]", ["[", "1", "3", "1", "I", "]"]),
    ("[99Tc]", ["[", "9", "9", "Tc", "]"]),
    ("[32P]", ["[", "3", "2", "P", "]"]),
    ("[201Tl]", ["[", "2", "0", "1", "Tl", "]"]),
    ("[13CH4]", ["[", "1", "3", "C", "H4", "]"]),
    ("[2H]C([2H])([2H])[2H]", None),
    ("[0C]", None),
    ("[12345U]", None),
    # H counts and charges
    ("[NH4+]", ["[NH4+]"]),
    ("[NH4]", ["[", "N", "H4", "]"]),
    ("[CH12]", ["[", "C", "H", "1", "2", "]"]),
    ("[CH0]", ["[", "C", "H0", "]"]),
    ("[Fe+3]", ["[Fe+3]"]),
    ("[Fe+4]", ["[", "Fe", "+4", "]"]),
    ("[Cu++]", ["[Cu++]"]),
    ("[Pb++]", ["[", "Pb", "++", "]"]),
    ("[O--]", ["[", "O", "--", "]"]),
    ("[C-4]", ["[", "C", "-4", "]"]),
    ("[C+15]", ["[", "C", "+", "1", "5", "]"]),
    ("[C+0]", ["[", "C", "+0", "]"]),
    ("[H+]", ["[H+]"]),
    ("[HH]", ["[", "H", "H", "]"]),
    ("[2H+]", None),
    ("[Xe+3]", ["[", "Xe", "+3", "]"]),
    # chirality classes
    ("F[C@TH1](Cl)(Br)I", None),
    ("F[C@TH2H](Cl)Br", None),
    ("C=[C@AL1]=CC", None),
    ("F[Po@SP1](Cl)(Br)I", ["F", "[", "Po", "@SP1", "]", "(", "Cl", ")", "(", "Br", ")", "I"]),
    ("F[Pt@SP3](Cl)(Br)I", None),
    ("S[As@TB1](F)(Cl)(Br)N", None),
    ("S[As@TB20](F)(Cl)(Br)N", None),
    ("C[Co@OH1](F)(Cl)(Br)(I)S", None),
    ("C[Co@OH30](F)(Cl)(Br)(I)S", None),
    ("C[Co@OH](F)(Cl)(Br)(I)S", None),
    ("N[C@@H](C)C(=O)O", ["N", "[C@@H]", "(", "C", ")", "C", "(", "=", "O", ")", "O"]),
    ("N[Si@@H](C)Cl", ["N", "[", "Si", "@@", "H", "]", "(", "C", ")", "Cl"]),
    # atom classes
    ("[CH3:7]C", ["[", "C", "H3", ":", "7", "]", "C"]),
    ("[C:0]", None),
    ("[NH2+:123456]", None),
    (
        "[13C@@H+:2](F)(Cl)Br",
        ["[", "1", "3", "C", "@@", "H", "+", ":", "2", "]", "(", "F", ")", "(", "Cl", ")", "Br"],
    ),
    ("[*:1]CC[*:2]", None),
    ("[2*]", ["[", "2", "*", "]"]),
    ("[#6]", ["[", "#", "6", "]"]),
    ("[13#6H3+]", None),
    # aromatic bracket atoms
    ("c1cc[nH]c1", ["c", "1", "c", "c", "[nH]", "c", "1"]),
    ("c1cc[se]c1", None),
    ("c1cc[te+]c1", ["c", "1", "c", "c", "[", "te", "+", "]", "c", "1"]),
    ("c1cc[as]c1", ["c", "1", "c", "c", "[", "as", "]", "c", "1"]),
    ("c1cc[si]c1", None),
    ("c1cc[sH+]c1", None),
    ("[Se]1C=CC=C1", ["[Se]", "1", "C", "=", "C", "C", "=", "C", "1"]),
    # ring closures and bonds
    ("C%10CC%10", ["C", "%10", "C", "C", "%10"]),
    ("C%99CC%99", None),
    ("C%(123)CC%(123)", ["C", "%(", "1", "2", "3", ")", "C", "C", "%(", "1", "2", "3", ")"]),
    ("C%(5)CC=%(5)", None),
    ("C%(99999)CC%(99999)", None),
    ("C=1CC1", None),
    ("C$C", None),
    ("C~C", None),
    ("c1ccccc1:c", None),
    ("C/C=C\\C", None),
    ("C-C.C", None),
    ("*C(*)=*", None),
    ("[Cu]<-N", ["[Cu]", "<-", "N"]),
    ("N->[Cu]", ["N", "-", ">", "[Cu]"]),
    ("BC(N)(O)P(S)(F)(Cl)(Br)I", None),
    ("b1cccc1.p1cccc1.o1cccc1.s1cccc1", None),
    ("", []),
]


@pytest.mark.parametrize(("smiles", "tokens"), HAND_WRITTEN, ids=[s or "empty" for s, _ in HAND_WRITTEN])
def test_hand_written(tok, smiles, tokens):
    if smiles:
        assert parses(smiles), f"RDKit does not parse {smiles!r}; the case is wrong"
    assert_round_trip(tok, smiles)
    if tokens is not None:
        assert tok.tokenize(smiles) == tokens
    assert tokenize_smiles(smiles) == tok.tokenize(smiles)
    assert set(tok.tokenize(smiles)) <= set(tok.tokens)


def test_every_element_and_bracket_field(tok):
    symbols = ELEMENTS + AROMATIC_SYMBOLS + ["*"]
    cases = [f"[{s}]" for s in symbols]
    cases += [f"[{iso}{s}{h}{q}{c}]" for s in symbols for iso, h, q, c in [("13", "H2", "+", ":1")]]
    cases += [f"[C{x}H]" for x in CHIRALITY]
    cases += [f"[C{h}]" for h in ["H"] + [f"H{n}" for n in range(13)]]
    cases += [f"[C{q}]" for q in ["+", "-", "++", "--"] + [f"{s}{n}" for s in "+-" for n in range(17)]]
    cases += [f"[C:{n}]" for n in [0, 1, 9, 10, 99, 100, 123456]]
    for smiles in cases:
        assert parses(smiles), smiles
        assert_round_trip(tok, smiles)


def test_random_bracket_atoms_accepted_by_rdkit_encode_without_unknowns(tok):
    # RDKit's bracket grammar, probed with random contents: whatever it parses must be covered.
    rng = random.Random(18)
    pieces = ["", "1", "13", "0", "#6", "*", "C", "c", "se", "Fe", "Uuo", "H", "@", "@@", "@TH1"]
    pieces += ["@SP3", "@TB20", "@OH", "@TB21", "H2", "H10", "+", "++", "-", "--", "+2", "-15", ":", ":7"]
    alphabet = "0123456789CHNOSePTlUubnos@+-:#*ABDL"
    accepted = 0
    for i in range(20_000):
        if i % 2:
            inner = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6)))
        else:
            inner = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 5)))
        smiles = f"C[{inner}]"
        if parses(smiles):
            accepted += 1
            assert_round_trip(tok, smiles)
    assert accepted > 1000


@pytest.mark.parametrize(
    "text",
    ["CC X", "hello world", "C[C", "C%(12", "CC<", "C]", "C%1", "CCé", "CC\n"],
)
def test_text_that_is_not_smiles_is_a_one_line_error(tok, text):
    for t in (tok, SmilesTokenizer(unknown="replace")):
        with pytest.raises(TokenizationError) as exc:
            t.encode(text, record="r")
        message = str(exc.value)
        assert re.match(r"record 'r': invalid character .+ at position \d+ in SMILES \(.+\)$", message)
        assert "\n" not in message


def test_clintox_molecules_that_had_unknowns(tok, v1):
    replace = SmilesTokenizer(unknown="replace")
    before = after = 0
    for raw in CLINTOX_UNKNOWN_BEFORE:
        canonical = Chem.MolToSmiles(Chem.MolFromSmiles(raw))
        for smiles in (raw, canonical):
            before += replace.unk_id in tokenizer_from_dict(v1_dict("replace")).encode(smiles)
            after += replace.unk_id in replace.encode(smiles)
            assert_round_trip(tok, smiles)
    print(f"ClinTox molecules with unknown tokens (raw + canonical): before {before}, after {after}")
    assert (before, after) == (10, 0)


# --- real data under ../shared/data ---------------------------------------------------------------


def _read_smiles(path: Path | str) -> list[str]:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", newline="") as fh:
        reader = csv.DictReader(fh)
        column = "SMILES" if "SMILES" in reader.fieldnames else "smiles"
        # ESOL has trailing spaces; readers strip whitespace before tokenizing.
        return [row[column].strip() for row in reader]


def _check_file(tok: SmilesTokenizer, smiles: list[str]) -> int:
    """Raw and RDKit-canonical SMILES round-trip without unknowns; returns the molecules checked."""
    checked = 0
    for raw in smiles:
        mol = Chem.MolFromSmiles(raw)
        if mol is None:
            continue
        checked += 1
        for s in (raw, Chem.MolToSmiles(mol)):
            ids = tok.encode(s, record=s)
            assert tok.unk_id not in ids and tok.decode(ids) == s, s
    return checked


def _need(path: Path | str | None) -> None:
    if path is None or not Path(path).exists():
        pytest.skip(f"{CHEM} not found: the shared chem data (MoleculeNet, MoleculeACE, MOSES) is absent")


@pytest.mark.parametrize(
    "path", DATA_FILES or [None], ids=[Path(f).stem for f in DATA_FILES] or ["no-shared-data"]
)
def test_moleculenet_and_moleculeace_files(tok, path):
    _need(path)
    smiles = _read_smiles(path)
    checked = _check_file(tok, smiles)
    print(f"{Path(path).name}: {checked} of {len(smiles)} molecules parsed by RDKit, all round-trip")
    assert checked >= 0.99 * len(smiles) and checked > 500


def test_clintox_file_if_present(tok):
    found = sorted(glob.glob(str(CHEM / "moleculenet" / "*[Cc]lin[Tt]ox*.csv")))
    if not found:
        pytest.skip("no ClinTox CSV under shared/data/chem/moleculenet (see CLINTOX_UNKNOWN_BEFORE)")
    for path in found:
        assert _check_file(tok, _read_smiles(path)) > 1000


def test_moses_test_subset(tok):
    _need(MOSES_TEST)
    smiles = _read_smiles(MOSES_TEST)
    assert _check_file(tok, smiles[::20]) == len(smiles[::20])


@pytest.mark.slow
def test_moses_test_set_raw_and_canonical(tok):
    _need(MOSES_TEST)
    smiles = _read_smiles(MOSES_TEST)
    checked = _check_file(tok, smiles)
    print(f"MOSES test: {checked} of {len(smiles)} molecules, raw and canonical, all round-trip")
    assert checked == len(smiles) == 176_074
