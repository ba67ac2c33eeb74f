"""Random bytes into every reader and tokenizer: each either reads them or raises one of biolm's own
errors (`BiolmError`, which the CLI prints as one line), never anything else.

The inputs are raw bytes, and "almost valid" files built from the pieces that readers look for
(headers, sequence lines, Stockholm markers, CSV headers, line ends of every kind, NUL and non-UTF-8
bytes), optionally gzipped, as a truncated gzip or as a gzip with damaged bytes. Example counts are
kept small for the default suite.
"""

from __future__ import annotations

import gzip
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from biolm.domains import get_domain
from biolm.errors import BiolmError

# BIOLM_FUZZ_EXAMPLES=2000 for a deeper search (random, not the suite's fixed examples).
EXAMPLES = int(os.environ.get("BIOLM_FUZZ_EXAMPLES", 40))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize="BIOLM_FUZZ_EXAMPLES" not in os.environ,
)

PIECES = [
    b">",
    b">r1 desc",
    b">r1",
    b">r2 label=1 split=train",
    b"> ",
    b"ACGT",
    b"acgtn",
    b"MKVLA*",
    b"mk-v.L",
    b"--..",
    b"J",
    b"ACGU",
    b"# STOCKHOLM 1.0",
    b"#=GF ID x",
    b"//",
    b"seq1/1-9 AC-DE",
    b"seq1 MK",
    b"#",
    b";",
    b"smiles,label,split",
    b"sequence\tlabel",
    b"mutant,mutated_sequence,DMS_score",
    b"M1A,AKV,0.5",
    b"A2K,MAK,x",
    b"CCO,1,train",
    b"CC(=O)[O-].[Na+]",
    b"C(C)(C)(C)(C)C",
    b"c1ccccc1",
    b"[Xe+3]",
    b"C1CC",
    b"[",
    b'"',
    b",",
    b"\t",
    b" ",
    b"nan",
    b"inf",
    b"1e308",
    b"-",
    b"\x00",
    b"\xff\xfe",
    b"\xc3\xa9",
    b"\xef\xbb\xbf",
]
LINE_ENDS = [b"\n", b"\r\n", b"\r", b""]


def rules(domain: str):
    """The input-record rules of a domain (`biolm.domains`)."""
    return get_domain(domain).records


@st.composite
def almost_valid(draw) -> bytes:
    lines = draw(
        st.lists(
            st.tuples(st.lists(st.sampled_from(PIECES), max_size=4), st.sampled_from(LINE_ENDS)), max_size=12
        )
    )
    return b"".join(b"".join(parts) + end for parts, end in lines)


@st.composite
def file_bytes(draw) -> bytes:
    data = draw(st.one_of(st.binary(max_size=300), almost_valid()))
    wrap = draw(st.sampled_from(["plain", "plain", "gzip", "truncated gzip", "corrupt gzip"]))
    if wrap == "plain":
        return data
    whole = gzip.compress(data)
    if wrap == "truncated gzip":
        return whole[: draw(st.integers(0, max(0, len(whole) - 1)))]
    if wrap == "corrupt gzip":  # bytes changed past the 10-byte header: bad deflate data or CRC
        body = bytearray(whole)
        for _ in range(draw(st.integers(1, 4))):
            at = draw(st.integers(10, len(body) - 1))
            body[at] = draw(st.integers(0, 255))
        return bytes(body)
    return whole


def only_our_errors(read: Callable[[Path], object], path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            read(path)
        except BiolmError:
            pass


def fuzz(suffix: str, read: Callable[[Path], object]):
    """A hypothesis test that writes random bytes to `x<suffix>` and reads the file with `read`."""

    @SETTINGS
    @given(data=file_bytes())
    def run(data: bytes) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"x{suffix}"
            path.write_bytes(data)
            only_our_errors(read, path)

    return run


def genome(path: Path) -> None:
    from biolm.data.genome import GenomeSource, TrainWindows, ValWindows
    from biolm.tokenizers import DNATokenizer

    source = GenomeSource(path, DNATokenizer(), val_fraction=0.5)
    source.scan(markov_order=2)
    TrainWindows(source, 8, 2, seed=0)[0]
    ValWindows(source, 8)[0]


def protein_corpus(path: Path) -> None:
    from biolm.data.protein import ProteinCorpus
    from biolm.tokenizers import ProteinTokenizer

    ProteinCorpus(path, ProteinTokenizer(), 0.5, seed=0)


def molecules(path: Path) -> None:
    from biolm.data.chem import read_molecules, stored_molecule_sets

    read_molecules(path)
    stored_molecule_sets(path)


def records(kind: str) -> Callable[[Path], object]:
    from biolm.io.records import read_records

    return lambda path: read_records(path, rules(kind))


def family_context(path: Path) -> None:
    from biolm.inference.context import context_prompt
    from biolm.tokenizers import ProteinTokenizer

    context_prompt(path, ProteinTokenizer(), token_budget=64)


def molecule_context(path: Path) -> None:
    from biolm.inference.context import context_prompt
    from biolm.tokenizers import SmilesTokenizer

    context_prompt(path, SmilesTokenizer(), token_budget=64)


def labelled(path: Path) -> None:
    from biolm.io.labelled import read_labelled

    read_labelled(path)


def scan(path: Path) -> None:
    from biolm.io.dms import read_scan

    read_scan(path)


def tokenizer_file(path: Path) -> None:
    from biolm.tokenizers import load_tokenizer

    load_tokenizer(path)


def model_config(path: Path) -> None:
    from biolm.models.io import CONFIG_FILE, load_config

    path.rename(path.with_name(CONFIG_FILE))
    load_config(path.parent)


def train_config(path: Path) -> None:
    from biolm.configs import load_config, to_train_config

    to_train_config(load_config(path))


READERS = {
    "genome .fa": (".fa", genome),
    "genome .fa.gz": (".fa.gz", genome),
    "protein corpus .fasta": (".fasta", protein_corpus),
    "protein corpus .a3m": (".a3m", protein_corpus),
    "protein corpus .sto.gz": (".sto.gz", protein_corpus),
    "molecules .smi": (".smi", molecules),
    "molecules .csv": (".csv", molecules),
    "molecules .tsv.gz": (".tsv.gz", molecules),
    "embed records dna .fa": (".fa", records("dna")),
    "embed records protein .a3m": (".a3m", records("protein")),
    "embed records protein .sto": (".sto", records("protein")),
    "embed records smiles .smi": (".smi", records("smiles")),
    "embed records dna .csv": (".csv", records("dna")),
    "embed records smiles .tsv": (".tsv", records("smiles")),
    "generate context family .a3m": (".a3m", family_context),
    "generate context family .sto": (".sto", family_context),
    "generate context molecules .smi": (".smi", molecule_context),
    "generate context molecules .csv": (".csv", molecule_context),
    "labelled .csv": (".csv", labelled),
    "labelled .tsv.gz": (".tsv.gz", labelled),
    "labelled .fa": (".fa", labelled),
    "proteingym scan .csv": (".csv", scan),
    "tokenizer .json": (".json", tokenizer_file),
    "model config.yaml": (".yaml", model_config),
    "train config .yaml": (".yaml", train_config),
}


@pytest.mark.parametrize("name", list(READERS))
def test_reader_raises_only_biolm_errors(name, tmp_path, monkeypatch):
    # BGZF copies of gzip genomes and token caches go to this test's directory, not the user's cache.
    monkeypatch.setenv("BIOLM_CACHE_DIR", str(tmp_path / "cache"))
    suffix, read = READERS[name]
    fuzz(suffix, read)()


def tokenizers():
    from biolm.tokenizers import DNATokenizer, ProteinTokenizer, SmilesTokenizer

    return {
        "dna": DNATokenizer(),
        "dna replace": DNATokenizer(unknown="replace"),
        "protein": ProteinTokenizer(),
        "protein fim": ProteinTokenizer(unknown="replace", fim_sentinels=2),
        "smiles": SmilesTokenizer(),
        "smiles replace": SmilesTokenizer(unknown="replace"),
    }


TEXT = st.one_of(
    st.text(max_size=60),
    st.lists(st.sampled_from([p.decode("latin-1") for p in PIECES]), max_size=8).map("".join),
)


@pytest.mark.parametrize("kind", list(tokenizers()))
def test_tokenizer_encode_raises_only_biolm_errors_and_round_trips(kind):
    tok = tokenizers()[kind]

    @SETTINGS
    @given(text=TEXT)
    def run(text: str) -> None:
        try:
            ids = tok.encode(text, record="r")
        except BiolmError:
            return
        assert ids.dtype.kind == "i" and ((0 <= ids) & (ids < tok.vocab_size)).all()
        tok.decode(ids)

    run()
