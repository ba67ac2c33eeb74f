"""Generation prompts: the same layout as the training examples, budgets, seeds, and one-line errors."""

from __future__ import annotations

import gzip
import warnings

import numpy as np
import pytest

from biolm.data.molsets import packed_example
from biolm.data.packing import fim_format, pack_members
from biolm.errors import InputError
from biolm.inference.context import context_prompt
from biolm.inference.infill import assemble_infill, infill_prompt, parse_infill
from biolm.io.proteins import clean_sequence
from biolm.io.smiles import ChemDataWarning
from biolm.tokenizers import ProteinTokenizer, get_tokenizer
from biolm.tokenizers.base import BOS_ID, EOS_ID, SEP_ID

# Eight distinct proteins of different lengths (5..40 residues).
FAMILY = [
    "MKVLA",
    "MKVLAGGHHW",
    "MKTLLVACDEFG",
    "MKVLAGGHHWPPQRST",
    "MRVLAGGHHWPPQRSTNNDEFK",
    "MKVIAGGHHWPPQRSTNNDEFKACDLM",
    "MKVLAGGHHWPPQRSTNNDEFKACDLMKKEEW",
    "MKVLAGGHHWPPQRSTNNDEFKACDLMKKEEWYYIIVVTT",
]
A3M = """#40\t1
>query description
MKV-LAG
>hit1
MKVaaLAG
>hit2
-kV-LAg
>allgaps
-------
>dup_of_query
MKV-LAG
"""
STOCKHOLM = """# STOCKHOLM 1.0
#=GF ID Fam1
seq1/1-9  AC-DE.fghIK
seq2/3-11 ACmDE.FG-IK
//
# STOCKHOLM 1.0
seq3      MKV
//
"""


@pytest.fixture
def protein_tok() -> ProteinTokenizer:
    return ProteinTokenizer(fim_sentinels=3)


@pytest.fixture
def smiles_tok():
    return get_tokenizer("smiles")


@pytest.fixture
def family_file(tmp_path):
    path = tmp_path / "fam.fasta"
    path.write_text("".join(f">p{i} protein {i}\n{s}\n" for i, s in enumerate(FAMILY)))
    return path


# --- protein families ---------------------------------------------------------------------------------


def test_family_prompt_is_the_start_of_the_training_pack_with_a_new_member(family_file, protein_tok):
    prompt = context_prompt(family_file, protein_tok, seed=3, token_budget=10_000)
    assert prompt.n_members_used == prompt.n_members_total == len(FAMILY)
    assert sorted(prompt.members) == sorted(FAMILY)
    members = [protein_tok.encode(m) for m in prompt.members]
    new = protein_tok.encode("MKVLAW")
    example, count = pack_members([*members, new], 10_000)
    assert count == len(FAMILY) + 1
    n = len(prompt.ids)
    assert prompt.ids.dtype == np.int64 and prompt.position_ids.dtype == np.int64
    np.testing.assert_array_equal(prompt.ids, example["input_ids"][:n].numpy())
    np.testing.assert_array_equal(prompt.position_ids, example["position_ids"][:n].numpy())
    # What training teaches the model to put after the prompt: the new member from position 1 on,
    # then the token that ends it, which is one of the prompt's stop tokens.
    np.testing.assert_array_equal(example["input_ids"][n : n + len(new)].numpy(), new)
    assert example["position_ids"][n].item() == prompt.next_position == 1
    assert example["labels"][n + len(new) - 1].item() in prompt.stop_ids
    assert prompt.ids[0] == BOS_ID and prompt.ids[-1] == SEP_ID and prompt.position_ids[-1] == 0
    assert (prompt.ids == SEP_ID).sum() == len(FAMILY)


def test_family_budget_is_respected_and_no_member_is_cut(family_file, protein_tok):
    for budget in (8, 30, 50, 77, 120, 400):
        prompt = context_prompt(family_file, protein_tok, seed=1, token_budget=budget)
        assert len(prompt.ids) <= budget
        assert len(prompt.ids) == 1 + sum(len(m) + 1 for m in prompt.members)
        assert all(m in FAMILY for m in prompt.members)  # whole members only
        # The next member of the same seeded order would not have fitted (as training packs stop).
        full = context_prompt(family_file, protein_tok, seed=1, token_budget=10_000).members
        fitting = [m for m in full if len(m) + 2 <= budget]
        assert prompt.members == fitting[: prompt.n_members_used]
        if prompt.n_members_used < len(fitting):
            assert len(prompt.ids) + len(fitting[prompt.n_members_used]) + 1 > budget
    assert context_prompt(family_file, protein_tok, token_budget=8).dropped == {"longer than budget": 7}


def test_family_max_members(family_file, protein_tok):
    prompt = context_prompt(family_file, protein_tok, seed=2, max_members=3)
    assert prompt.n_members_used == 3
    assert prompt.members == context_prompt(family_file, protein_tok, seed=2).members[:3]


def test_family_shuffle_is_seeded(family_file, protein_tok):
    first = context_prompt(family_file, protein_tok, seed=5)
    again = context_prompt(family_file, protein_tok, seed=5)
    other = context_prompt(family_file, protein_tok, seed=6)
    np.testing.assert_array_equal(first.ids, again.ids)
    assert first.members == again.members
    assert first.members != other.members and sorted(first.members) == sorted(other.members)


def test_a3m_gaps_inserts_empty_and_duplicate_members(tmp_path, protein_tok):
    path = tmp_path / "fam.a3m.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(A3M)
    prompt = context_prompt(path, protein_tok)
    assert sorted(prompt.members) == ["KVLAG", "MKVAALAG", "MKVLAG"]
    assert prompt.n_members_total == 5
    assert prompt.dropped == {"empty": 1, "duplicate": 1}
    assert "left out 1 empty, 1 duplicate" in prompt.describe()
    assert "\n" not in prompt.describe()


def test_stockholm_alignments_are_read_together(tmp_path, protein_tok):
    path = tmp_path / "fam.sto"
    path.write_text(STOCKHOLM)
    prompt = context_prompt(path, protein_tok, seed=0)
    assert sorted(prompt.members) == ["ACDEFGHIK", "ACMDEFGIK", "MKV"]


def test_real_a3m_through_shared_data(shared_data, protein_tok):
    path = shared_data / "protein" / "blat" / "BLAT_ECOLX_ColabFold_2202.a3m.gz"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    prompt = context_prompt(path, protein_tok, seed=0, token_budget=2048)
    assert prompt.n_members_total == 4501 and 3 <= prompt.n_members_used < 20
    assert len(prompt.ids) <= 2048
    with gzip.open(path, "rt") as handle:
        raw = [line.strip() for line in handle if line.strip() and not line.startswith(">")]
    cleaned = {clean_sequence(s) for s in raw}
    for member in prompt.members:
        assert member in cleaned and member.isupper() and "-" not in member and "." not in member
    # Position ids restart at every delimiter and count residues within each member.
    starts = np.flatnonzero(np.isin(prompt.ids, [BOS_ID, SEP_ID]))
    assert (prompt.position_ids[starts] == 0).all()
    assert prompt.position_ids[starts[1] - 1] == len(prompt.members[0])


# --- molecule sets ------------------------------------------------------------------------------------


def _write_smi(tmp_path, text, name="set.smi"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_molecule_prompt_is_the_start_of_the_training_pack(tmp_path, smiles_tok):
    path = _write_smi(
        tmp_path,
        "smiles name\nCCO ethanol\nOCC ethanol_again\nc1ccccc1 benzene\nC1CC broken\nCC(=O)O acetic\nN#N\n",
    )
    with pytest.warns(
        ChemDataWarning, match=r"set\.smi: skipped 1 of 6 molecules \(invalid SMILES\): line 5"
    ):
        prompt = context_prompt(path, smiles_tok, seed=0)
    assert prompt.n_members_total == 6
    assert prompt.dropped == {"invalid": 1, "duplicate": 1}
    assert sorted(prompt.members) == sorted(["CCO", "c1ccccc1", "CC(=O)O", "N#N"])
    assert sorted(prompt.reference) == sorted(prompt.members)
    members = [smiles_tok.encode(m) for m in prompt.members]
    new = smiles_tok.encode("CCCl")
    example = packed_example([*members, new])
    n = len(prompt.ids)
    np.testing.assert_array_equal(prompt.ids, example["input_ids"][:n].numpy())
    np.testing.assert_array_equal(prompt.position_ids, example["position_ids"][:n].numpy())
    np.testing.assert_array_equal(example["input_ids"][n : n + len(new)].numpy(), new)
    assert example["position_ids"][n].item() == prompt.next_position
    assert example["input_ids"][n + len(new)].item() in prompt.stop_ids


def test_molecule_budget_seed_and_randomized_smiles(tmp_path, smiles_tok):
    from biolm.io.smiles import canonical_smiles

    smiles = ["C" * k + "O" for k in range(1, 15)]
    path = _write_smi(tmp_path, "\n".join(smiles) + "\n")
    prompt = context_prompt(path, smiles_tok, seed=0, token_budget=40)
    assert len(prompt.ids) <= 40 and all(m in smiles for m in prompt.members)
    assert len(prompt.reference) == 14
    assert prompt.members != context_prompt(path, smiles_tok, seed=1, token_budget=40).members
    shuffled = context_prompt(path, smiles_tok, seed=4, randomize=True, max_members=5)
    assert prompt.n_members_used >= 1 and shuffled.n_members_used == 5
    assert all(canonical_smiles(m) in smiles for m in shuffled.members)


def test_molecule_csv_column(tmp_path, smiles_tok):
    path = _write_smi(tmp_path, "id,mol,y\na,CCO,1\nb,CCN,0\n", name="actives.csv")
    prompt = context_prompt(path, smiles_tok, column="mol")
    assert sorted(prompt.members) == ["CCN", "CCO"]
    prompt = context_prompt(path, smiles_tok, column="mol", seed=0)
    assert prompt.noun == "molecules"


def test_real_molecule_set_through_shared_data(shared_data, smiles_tok):
    path = shared_data / "chem" / "moleculeace" / "CHEMBL204_Ki.csv"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    with pytest.warns(ChemDataWarning, match="over the token budget of 256"):
        prompt = context_prompt(path, smiles_tok, token_budget=256)
    assert len(prompt.ids) <= 256 and prompt.n_members_used >= 2
    assert "molecules" in prompt.describe()


# --- malformed context files: one line, naming the file ------------------------------------------------


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.fasta", "", "empty file"),
        ("gaps.a3m", ">a\n---\n>b\n..\n", "no usable protein"),
        ("plain.fasta", "MKV\nLLW\n", "not FASTA, A3M or Stockholm"),
        ("bad.fasta", ">ok\nMKV\n>weird\nMKW1V\n", "record 'weird': invalid character '1'"),
        ("bad.sto", "# STOCKHOLM 1.0\nseq1 MKV\nseq1\n//\n", "malformed stockholm file"),
        ("long.fasta", ">a\n" + "M" * 50 + "\n", "longer than the token budget of 20"),
    ],
)
def test_malformed_family_files(tmp_path, protein_tok, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InputError, match=message) as info:
        context_prompt(path, protein_tok, token_budget=20)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "name, content, options, message",
    [
        ("empty.smi", "", {}, "no valid molecule"),
        ("bad.smi", "C1CC\nxyz\n", {}, "no valid molecule"),
        ("no_col.csv", "id,value\na,1\n", {}, "no SMILES column found.*name it with column"),
        ("wrong_col.csv", "id,smiles\na,CCO\n", {"column": "mol"}, "no column 'mol' \\(column\\)"),
        ("mols.sdf", "CCO\n", {}, "unknown molecule file extension"),
        ("mols.smi", "CCO\n", {"column": "smiles"}, "column applies to CSV/TSV"),
        ("mols.smi", "CCCCCCCCCCCCCCCCCCCCCCCCO\n", {"token_budget": 10}, "none within the token budget"),
    ],
)
def test_malformed_molecule_files(tmp_path, smiles_tok, name, content, options, message):
    path = _write_smi(tmp_path, content, name=name)
    with pytest.raises(InputError, match=message) as info, warnings.catch_warnings():
        # Invalid lines may be warned about before the error; only the error is under test here.
        warnings.simplefilter("ignore", ChemDataWarning)
        context_prompt(path, smiles_tok, **options)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_truncated_gzip_family(tmp_path, protein_tok):
    whole = gzip.compress(("".join(f">p{i}\n{'MKVLAGGHHW' * 30}\n" for i in range(300))).encode())
    path = tmp_path / "cut.a3m.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(InputError, match="cannot read") as info:
        context_prompt(path, protein_tok)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_context_of_the_wrong_kind_of_model(tmp_path, family_file, protein_tok, smiles_tok):
    smi = _write_smi(tmp_path, "CCO\n")
    for call in (
        lambda: context_prompt(family_file, smiles_tok),
        lambda: context_prompt(smi, protein_tok),
        lambda: context_prompt(family_file, get_tokenizer("dna")),
        lambda: context_prompt(family_file, protein_tok, column="x"),
        lambda: context_prompt(tmp_path / "missing.fasta", protein_tok),
        lambda: context_prompt(family_file, protein_tok, token_budget=2),
    ):
        with pytest.raises(InputError) as info:
            call()
        assert "\n" not in str(info.value)


# --- fill-in-the-middle -------------------------------------------------------------------------------


def test_parse_infill_syntax():
    template = parse_infill("mkt[?]LLV [3]W")
    assert template.segments == ("MKT", "LLV", "W") and template.span_lengths == (None, 3)
    assert parse_infill("[?]LLV").segments == ("", "LLV")
    assert parse_infill("LLV[ 12 ]").span_lengths == (12,)


def test_infill_prompt_is_the_training_fim_format_up_to_the_first_span(protein_tok):
    full = "MKTAALLVGGGW"
    prompt = infill_prompt("MKT[?]LLV[3]W", protein_tok)
    training = np.concatenate(
        [
            [BOS_ID],
            fim_format(protein_tok.encode(full), [(3, 5), (8, 11)], protein_tok.sentinel_ids),
            [EOS_ID],
        ]
    )
    n = len(prompt.ids)
    np.testing.assert_array_equal(prompt.ids, training[:n])
    np.testing.assert_array_equal(prompt.position_ids, np.arange(n))
    s1, s2 = protein_tok.sentinel_ids[:2]
    assert prompt.span_sentinels == (s1, s2) and prompt.span_end_ids == (s2, EOS_ID)
    # The rest of the training sequence is what generation produces: span 1, its end, span 2, <eos>.
    rest = training[n:].tolist()
    span1, span2 = rest[: rest.index(s2)], rest[rest.index(s2) + 1 : -1]
    assert protein_tok.decode(span1) == "AA" and protein_tok.decode(span2) == "GGG"
    assert assemble_infill(prompt, [span1 + [s2], np.array(span2 + [EOS_ID])]) == full
    assert assemble_infill(prompt, ["AA", "GGG"]) == full
    assert assemble_infill(prompt, [[], "GGG"]) == "MKTLLVGGGW"


def test_infill_span_at_the_ends(protein_tok):
    prompt = infill_prompt("[?]KLV[2]", protein_tok)
    assert prompt.ids.tolist()[:2] == [BOS_ID, protein_tok.sentinel_ids[0]]
    assert assemble_infill(prompt, ["MM", "WW"]) == "MMKLVWW"


def test_assemble_rejects_decoding_bugs(protein_tok):
    prompt = infill_prompt("MKT[?]LLV[3]W", protein_tok)
    with pytest.raises(ValueError, match="2 spans expected"):
        assemble_infill(prompt, ["AA"])
    with pytest.raises(ValueError, match="must have 3 residues"):
        assemble_infill(prompt, ["AA", "GG"])
    with pytest.raises(ValueError, match="special token"):
        assemble_infill(prompt, [[protein_tok.sentinel_ids[2]], "GGG"])


@pytest.mark.parametrize(
    "text, message",
    [
        ("MKTLLV", "no span to fill"),
        ("MKT[?LLV", "unclosed '\\[' at position 4"),
        ("MKT?]LLV[?]", "'\\]' without '\\[' at position 5"),
        ("MKT[?][?]LLV", "two spans without a residue between them"),
        ("MKT[0]LLV", "neither \\[\\?\\] nor \\[n\\]"),
        ("MKT[]LLV", "neither"),
        ("MKT[abc]LLV", "neither"),
        ("MK-T[?]LLV", "invalid residue '-' at position 3"),
        ("MKT[12]L 1V", "invalid residue '1' at position 10"),
        ("A[?]B[?]C[?]D[?]E", "4 spans but the model was trained with at most 3"),
    ],
)
def test_infill_errors_are_one_line(protein_tok, text, message):
    with pytest.raises(InputError, match=message) as info:
        infill_prompt(text, protein_tok)
    assert "\n" not in str(info.value)


def test_infill_needs_a_fim_model():
    with pytest.raises(InputError, match="no <fim_k> sentinels"):
        infill_prompt("MKT[?]LLV", ProteinTokenizer())
    with pytest.raises(InputError, match="protein model"):
        infill_prompt("CC[?]O", get_tokenizer("smiles"))
