"""Hardened inputs: odd but valid files are read correctly; broken ones give one line that names the
file and the record (or line, or key). One test per row of the README's "Faults and bad inputs"
table (the rows whose tests live elsewhere name them there)."""

from __future__ import annotations

import gzip
import subprocess
import sys
import warnings

import numpy as np
import pytest
from Bio import bgzf
from rdkit import Chem

from biolm.configs import load_config, packaged_config, to_train_config
from biolm.data.chem import read_molecules, stored_molecule_sets
from biolm.data.genome import IGNORE_INDEX, GenomeSource, TrainWindows, ValWindows
from biolm.data.protein import ProteinCorpus, SequenceExamples
from biolm.domains import get_domain
from biolm.errors import BiolmError, ConfigError, InputError
from biolm.io.genome import open_fasta
from biolm.io.labelled import read_labelled
from biolm.io.records import read_records
from biolm.io.smiles import ChemDataWarning
from biolm.models import BioLM, ModelConfig
from biolm.models.io import CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE, load, save
from biolm.tokenizers import DNATokenizer, ProteinTokenizer, TokenizerFormatError, load_tokenizer


def rules(domain: str):
    """The input-record rules of a domain (`biolm.domains`)."""
    return get_domain(domain).records


def one_line(info: pytest.ExceptionInfo, *parts: str) -> str:
    message = str(info.value)
    assert "\n" not in message, message
    for part in parts:
        assert part in message, message
    return message


def proteins(corpus: ProteinCorpus) -> list[str]:
    """Every protein of a corpus (both splits), decoded and sorted."""
    tok = ProteinTokenizer()
    return sorted(tok.decode(s) for s in [*corpus.sequences("train"), *corpus.sequences("val")])


# --- FASTA: line ends, case, empty records, duplicate ids, compression --------------------------------


def test_windows_line_ends_read_the_same_bases_everywhere(tmp_path):
    lf = ">a one\nACGTAC\nGTAC\n>b\nTTTTGG\n"
    (tmp_path / "lf.fa").write_text(lf)
    (tmp_path / "crlf.fa").write_bytes(lf.replace("\n", "\r\n").encode())
    tok = DNATokenizer()
    for name in ("lf.fa", "crlf.fa"):
        fasta = open_fasta(tmp_path / name)
        assert fasta["a"][0:10] == "ACGTACGTAC" and fasta["b"][0:6] == "TTTTGG"
        val = ValWindows(GenomeSource(tmp_path / name, tok, 0.5), 8)
        assert [tok.decode(val[i]["labels"][: len(w)]) for i, w in enumerate(val.windows)] == ["CGTAC", "TGG"]
    assert read_records(tmp_path / "crlf.fa", rules("dna")) == read_records(tmp_path / "lf.fa", rules("dna"))
    (tmp_path / "crlf.faa").write_bytes(b">p1 x\r\nMKV\r\nLL\r\n>p2\r\nACD\r\n")
    corpus = ProteinCorpus(tmp_path / "crlf.faa", ProteinTokenizer(), 0.5, seed=0)
    assert proteins(corpus) == ["ACD", "MKVLL"]
    (tmp_path / "crlf.csv").write_bytes(b"sequence,label\r\nACGT,1\r\nGGCC,0\r\n")
    assert read_labelled(tmp_path / "crlf.csv").sequences == ["ACGT", "GGCC"]
    (tmp_path / "lab.fa").write_bytes(b">s1 label=1\r\nACGT\r\n>s2 label=0\r\nGG\r\n")
    data = read_labelled(tmp_path / "lab.fa")
    assert data.sequences == ["ACGT", "GG"] and data.classes == ["0", "1"]


def test_lower_case_soft_masked_bases_are_read_and_scored(tmp_path):
    (tmp_path / "soft.fa").write_text(">chr\nACGTacgtnnACGTacgt\n")
    tok = DNATokenizer()
    source = GenomeSource(tmp_path / "soft.fa", tok, val_fraction=0.5)
    assert source.fasta["chr"][0:18] == "ACGTACGTNNACGTACGT"
    labels = ValWindows(source, 16)[0]["labels"][:9].tolist()  # the validation half: "nACGTacgt"
    assert labels[0] == IGNORE_INDEX and tok.decode(labels[1:]) == "ACGTACGT"
    (tmp_path / "low.faa").write_text(">p\nmkvll\n>q\nacd\n")
    corpus = ProteinCorpus(tmp_path / "low.faa", ProteinTokenizer(), 0.5, seed=0)
    assert proteins(corpus) == ["ACD", "MKVLL"]


def test_empty_records(tmp_path):
    (tmp_path / "g.fa").write_text(">a\nACGTACGT\n>empty\n>b\nGGCCAA\n")
    source = GenomeSource(tmp_path / "g.fa", DNATokenizer(), val_fraction=0.5)
    assert [r.record for r in source.train_regions] == ["a", "b"]  # an empty record has no bases
    source.scan(markov_order=2)
    (tmp_path / "p.faa").write_text(">a\nMKV\n>empty\n>b\nACD\n")
    with pytest.raises(InputError) as info:
        ProteinCorpus(tmp_path / "p.faa", ProteinTokenizer(), 0.5, seed=0)
    one_line(info, "p.faa", "record 'empty'", "empty sequence")
    with pytest.raises(InputError) as info:
        read_records(tmp_path / "g.fa", rules("dna"))
    one_line(info, "g.fa", "record 'empty'", "empty sequence")


def test_duplicate_ids(tmp_path):
    (tmp_path / "g.fa").write_text(">a\nACGT\n>b\nGG\n>a\nTTTT\n")
    with pytest.raises(InputError) as info:
        GenomeSource(tmp_path / "g.fa", DNATokenizer(), val_fraction=0.5)
    one_line(info, "g.fa", "record 'a' occurs more than once")
    # Proteins and embedding inputs do not address records by id: both copies are kept.
    (tmp_path / "p.faa").write_text(">x\nMKV\n>x\nACD\n")
    corpus = ProteinCorpus(tmp_path / "p.faa", ProteinTokenizer(), 0.5, seed=0)
    assert len(corpus.sequences("train")) + len(corpus.sequences("val")) == 2
    records = read_records(tmp_path / "p.faa", rules("protein"))
    assert [r.sequence for r in records] == ["MKV", "ACD"]


def test_uneven_genome_lines_name_the_record_and_line(tmp_path):
    (tmp_path / "g.fa").write_text(">a\nACGTAA\nACG\nACGTAA\n>b\nGG\n")
    with pytest.raises(InputError) as info:
        open_fasta(tmp_path / "g.fa")
    one_line(info, "g.fa", "record 'a': line 3", "rewrap")


def test_blank_lines_pyfaidx_cannot_index_are_one_line_errors(tmp_path):
    # Found by the fuzz test: pyfaidx raised RuntimeError("Unhandled exception during fasta indexing").
    (tmp_path / "g.fa").write_bytes(b">\x00\n\n\x00")
    with pytest.raises(InputError) as info:
        GenomeSource(tmp_path / "g.fa", DNATokenizer(), 0.5)
    one_line(info, "g.fa", "cannot index FASTA", "record '\\x00'")


def bgzip(path, data: bytes):
    with bgzf.BgzfWriter(str(path), "wb") as handle:
        handle.write(data)
    return path


def test_gzip_and_bgzip_everywhere(tmp_path, monkeypatch):
    monkeypatch.setenv("BIOLM_CACHE_DIR", str(tmp_path / "cache"))
    genome = b">a\nACGTACGTAC\n>b\nGGCC\n"
    proteins = b">p1\nMKVLL\n>p2\nACDEF\n"
    smiles = b"CCO\nc1ccccc1\n"
    (tmp_path / "g.fa.gz").write_bytes(gzip.compress(genome))
    bgzip(tmp_path / "g.bgz.fa.gz", genome)
    (tmp_path / "p.faa.gz").write_bytes(gzip.compress(proteins))
    bgzip(tmp_path / "p.bgz.faa.gz", proteins)
    (tmp_path / "m.smi.gz").write_bytes(gzip.compress(smiles))
    bgzip(tmp_path / "m.bgz.smi.gz", smiles)
    for name in ("g.fa.gz", "g.bgz.fa.gz"):
        assert open_fasta(tmp_path / name)["a"][2:8] == "GTACGT", name
        assert [r.sequence for r in read_records(tmp_path / name, rules("dna"))] == [
            "ACGTACGTAC",
            "GGCC",
        ]
    for name in ("p.faa.gz", "p.bgz.faa.gz"):
        corpus = ProteinCorpus(tmp_path / name, ProteinTokenizer(), 0.5, seed=0)
        assert len(corpus.sequences("train")) == 1 and len(corpus.sequences("val")) == 1
    for name in ("m.smi.gz", "m.bgz.smi.gz"):
        assert read_molecules(tmp_path / name).smiles == ["CCO", "c1ccccc1"]


def damaged_gzip(path, text: bytes, how: str):
    whole = gzip.compress(text)
    if how == "truncated":
        path.write_bytes(whole[: len(whole) // 2])
    else:  # the first deflate block made of reserved type 3: zlib.error, which is not an OSError
        path.write_bytes(whole[:10] + b"\xff" + whole[11:])
    return path


@pytest.mark.parametrize("how", ["truncated", "corrupt"])
def test_truncated_or_corrupt_gzip_is_a_one_line_error_in_every_reader(tmp_path, monkeypatch, how):
    from biolm.inference.context import context_prompt
    from biolm.io.dms import read_scan

    monkeypatch.setenv("BIOLM_CACHE_DIR", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    dna = b"".join(b">r%d\n%s\n" % (i, "".join(rng.choice(list("ACGT"), 60)).encode()) for i in range(3000))
    bad_fa = damaged_gzip(tmp_path / "bad.fa.gz", dna, how)
    bad_smi = damaged_gzip(tmp_path / "bad.smi.gz", b"CCO\nc1ccccc1\nCCN\n" * 3000, how)
    bad_csv = damaged_gzip(tmp_path / "bad.csv.gz", b"sequence,label\n" + b"ACGTACGT,1\nGGCC,0\n" * 3000, how)
    scan = b"mutant,mutated_sequence,DMS_score\n" + b"M1A,AKV,0.5\nK2A,MAV,0.1\n" * 3000
    bad_scan = damaged_gzip(tmp_path / "bad_scan.csv.gz", scan, how)
    readers = [
        (bad_fa, lambda p: GenomeSource(p, DNATokenizer(), 0.5)),
        (bad_fa, lambda p: ProteinCorpus(p, ProteinTokenizer(unknown="replace"), 0.5, seed=0)),
        (bad_fa, lambda p: read_records(p, rules("dna"))),
        (bad_fa, lambda p: context_prompt(p, ProteinTokenizer(unknown="replace"))),
        (bad_smi, read_molecules),
        (bad_smi, stored_molecule_sets),
        (bad_smi, lambda p: read_records(p, rules("smiles"))),
        (bad_csv, read_labelled),
        (bad_scan, read_scan),
    ]
    for path, read in readers:
        with pytest.raises(InputError) as info:
            read(path)
        one_line(info, path.name)
    if how == "truncated":
        assert not (tmp_path / "cache" / "genomes").exists() or not any(
            (tmp_path / "cache" / "genomes").iterdir()
        )


def test_a_damaged_bgzf_block_is_found_by_the_scan_before_training(tmp_path):
    rng = np.random.default_rng(0)
    path = bgzip(
        tmp_path / "g.fa.gz",
        b">a\n" + b"".join(b"%s\n" % "".join(rng.choice(list("ACGT"), 60)).encode() for _ in range(5000)),
    )
    GenomeSource(path, DNATokenizer(), 0.5)  # builds the .fai and .gzi
    saved = {name: (tmp_path / name).read_bytes() for name in ("g.fa.gz.fai", "g.fa.gz.gzi")}
    damaged = bytearray(path.read_bytes())
    for at in range(len(damaged) // 2, len(damaged) // 2 + 20):
        damaged[at] ^= 0xFF
    path.write_bytes(bytes(damaged))
    with pytest.raises(InputError) as info:  # newer than its index: rebuilding it meets the damage
        GenomeSource(path, DNATokenizer(), 0.5)
    one_line(info, "g.fa.gz", "damaged file?")
    path.write_bytes(bytes(damaged))
    for index in ("g.fa.gz.fai", "g.fa.gz.gzi"):
        (tmp_path / index).write_bytes(saved[index])  # an index that still matches: the scan meets it
    source = GenomeSource(path, DNATokenizer(), 0.5)
    with pytest.raises(InputError) as info:
        source.scan(markov_order=2)
    one_line(info, "g.fa.gz", "record 'a': cannot read bases")


# --- alignments ---------------------------------------------------------------------------------------


def test_a3m_insert_columns_and_stockholm_train_as_raw_proteins(tmp_path):
    (tmp_path / "f.a3m").write_text("#A3M\n>query\nMKV-LA\n>hit1\nMkvK.-LA\n>hit2\n--V-LA\n")
    (tmp_path / "f.sto").write_text(
        "# STOCKHOLM 1.0\n#=GF ID F\nq/1-5 MK.VLA\nh/2-6 mkAV-A\n#=GC SS_cons ......\n//\n"
    )
    tok = ProteinTokenizer()
    for name, expected in (("f.a3m", ["MKVKLA", "MKVLA", "VLA"]), ("f.sto", ["MKAVA", "MKVLA"])):
        corpus = ProteinCorpus(tmp_path / name, tok, 0.34, seed=0)
        assert proteins(corpus) == sorted(expected), name
        assert sorted(r.sequence for r in read_records(tmp_path / name, rules("protein"))) == sorted(expected)


# --- SMILES ---------------------------------------------------------------------------------------------


def test_smiles_salts_are_kept_as_canonical_multi_fragment_molecules(tmp_path):
    (tmp_path / "s.smi").write_text("CC(=O)[O-].[Na+] sodium acetate\nOC(=O)c1ccccc1.Cl\n")
    mols = read_molecules(tmp_path / "s.smi")
    assert mols.smiles == [
        Chem.MolToSmiles(Chem.MolFromSmiles(s)) for s in ("CC(=O)[O-].[Na+]", "Cl.O=C(O)c1ccccc1")
    ]
    from biolm.tokenizers import SmilesTokenizer

    tok = SmilesTokenizer()
    assert tok.decode(tok.encode(mols.smiles[0])) == mols.smiles[0] and "." in mols.smiles[0]


def test_smiles_invalid_valences_and_blank_lines_are_skipped_with_one_warning(tmp_path):
    (tmp_path / "v.smi").write_text("CCO\n\n   \nC(C)(C)(C)(C)C\n\r\nc1ccccc1\nN(C)(C)(C)C\n")
    with pytest.warns(ChemDataWarning) as caught:
        mols = stored_molecule_sets(tmp_path / "v.smi")[0]
    assert list(mols.smiles) == ["CCO", "c1ccccc1"] and list(mols.lines) == [1, 6]
    (warning,) = [w for w in caught if "invalid SMILES" in str(w.message)]
    message = str(warning.message)
    assert "skipped 2 of 4" in message and "line 4: 'C(C)(C)(C)(C)C'" in message and "line 7" in message
    (tmp_path / "none.smi").write_text("C(C)(C)(C)(C)C\n\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(InputError) as info:
            read_molecules(tmp_path / "none.smi")
    one_line(info, "none.smi", "no valid molecule")


# --- configs --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "override, parts",
    [
        ("trainer.max_steps=abc", ["'abc'", "trainer.max_steps"]),
        ("data.seq_len=1.5", ["'1.5'", "data.seq_len"]),
        ("data.val_fraction=half", ["'half'", "data.val_fraction"]),
        ("model.d_model=true", ["'True'", "model.d_model"]),
        ("data=3", ["data"]),
    ],
)
def test_config_values_of_the_wrong_type(override, parts):
    with pytest.raises(ConfigError) as info:
        to_train_config(load_config(packaged_config("dna"), [override]))
    one_line(info, *parts)


@pytest.mark.parametrize(
    "content, parts",
    [
        (b"trainer:\n  max_steps: [1, 2\n", ["c.yaml", "not valid YAML at line"]),
        (b"- trainer\n- data\n", ["c.yaml", "not a list"]),
        (b"\xff\xfe\x00t", ["c.yaml", "not a text (UTF-8) file"]),
        (b"data:\n  seq_len: 1.5\n", ["c.yaml", "data.seq_len"]),
    ],
)
def test_config_files_that_are_not_configs(tmp_path, content, parts):
    (tmp_path / "c.yaml").write_bytes(content)
    with pytest.raises(ConfigError) as info:
        to_train_config(load_config(tmp_path / "c.yaml"))
    one_line(info, *parts)


@pytest.mark.parametrize("seq_len", [0, 1, -5])
def test_a_window_too_short_for_a_token_is_a_config_error(tmp_path, seq_len):
    (tmp_path / "g.fa").write_text(">a\nACGTACGT\n")
    source = GenomeSource(tmp_path / "g.fa", DNATokenizer(), 0.5)
    for build in (lambda: TrainWindows(source, seq_len, 4, 0), lambda: ValWindows(source, seq_len)):
        with pytest.raises(ConfigError, match=f"data.seq_len must be at least 2, got {seq_len}"):
            build()
    with pytest.raises(ConfigError, match="data.seq_len"):
        SequenceExamples([np.array([6, 7], np.uint8)], seq_len, 4, 0)


def test_cli_prints_a_wrong_type_as_one_line_and_exits_2(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "biolm.cli.main", "train", "dna", "data.seq_len=1.5", f"run_root={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "data.seq_len" in lines[0] and lines[0].startswith("biolm train: error:")
    assert not any(tmp_path.iterdir())


# --- model directories ---------------------------------------------------------------------------------


@pytest.fixture
def model_dir(tmp_path):
    tok = DNATokenizer()
    model = BioLM(ModelConfig(vocab_size=tok.vocab_size, d_model=16, n_layers=1, num_heads=2))
    return save(model, tok, tmp_path / "model")


def edit(path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


@pytest.mark.parametrize(
    "damage, parts",
    [
        (
            lambda d: edit(d / CONFIG_FILE, "format_version: 1", "format_version: 2"),
            ["version 2", "newer biolm"],
        ),
        (lambda d: edit(d / CONFIG_FILE, "format_version: 1", "format_version: '1.1'"), ["version '1.1'"]),
        (lambda d: edit(d / CONFIG_FILE, "d_model: 16", "d_model: wide"), ["'wide'", "model.d_model"]),
        (lambda d: edit(d / CONFIG_FILE, "d_model: 16", "d_model: 0"), ["model.d_model must be at least 1"]),
        (lambda d: edit(d / CONFIG_FILE, "model:", "model: [\n"), [CONFIG_FILE, "not valid YAML"]),
        (lambda d: (d / CONFIG_FILE).write_bytes(b"\xff\xfe"), [CONFIG_FILE, "UTF-8"]),
        (lambda d: (d / WEIGHTS_FILE).unlink(), [WEIGHTS_FILE, "missing"]),
        (
            lambda d: (d / WEIGHTS_FILE).write_bytes((d / WEIGHTS_FILE).read_bytes()[:64]),
            [WEIGHTS_FILE, "damaged"],
        ),
        (lambda d: edit(d / CONFIG_FILE, "vocab_size: 11", "vocab_size: 12"), [WEIGHTS_FILE, "do not fit"]),
        (lambda d: (d / TOKENIZER_FILE).unlink(), [TOKENIZER_FILE, "cannot read"]),
        (lambda d: (d / TOKENIZER_FILE).write_bytes(b"\x80{"), [TOKENIZER_FILE, "UTF-8"]),
    ],
)
def test_damaged_or_newer_model_directories_are_one_line_errors(model_dir, damage, parts):
    damage(model_dir)
    with pytest.raises(BiolmError) as info:
        load(model_dir)
    one_line(info, *parts)


def test_tokenizer_file_errors_are_ours(tmp_path):
    with pytest.raises(InputError, match="cannot read"):
        load_tokenizer(tmp_path / "missing.json")
    (tmp_path / "t.json").write_bytes(b"\xc3(")
    with pytest.raises(TokenizerFormatError, match="not a UTF-8 text file"):
        load_tokenizer(tmp_path / "t.json")


def test_labelled_fasta_header_without_an_id(tmp_path):
    (tmp_path / "l.fa").write_text(">s1 label=1\nACGT\n>\nGG\n")
    with pytest.raises(InputError) as info:
        read_labelled(tmp_path / "l.fa")
    one_line(info, "l.fa", "line 3", "without a record id")


@pytest.mark.parametrize("override", ["data.batch_size=0", "data.windows_per_epoch=0", "data.num_workers=-1"])
def test_counts_below_their_minimum_are_config_errors(override):
    from biolm.configs import packaged_config

    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        to_train_config(load_config(packaged_config("dna"), [override]))
