"""Large corpora without holding them: the token cache (proteins, molecules), lazy validation windows,
and genome indexes that are reused while they match their file and rebuilt when they do not."""

from __future__ import annotations

import gzip
import os
import pickle
import warnings

import numpy as np
import pytest
import torch

import biolm.data.cache as cache
from biolm.data.chem import read_molecule_sets, stored_molecule_sets
from biolm.data.chem_datamodule import build_chem_data
from biolm.data.genome import GenomeSource, Region, ValWindows
from biolm.data.protein import ProteinCorpus, SequenceExamples
from biolm.errors import InputError
from biolm.io.genome import open_fasta
from biolm.io.proteins import read_families
from biolm.io.smiles import ChemDataWarning
from biolm.tokenizers import DNATokenizer, ProteinTokenizer, SmilesTokenizer


@pytest.fixture
def on_disk(tmp_path, monkeypatch):
    """Every corpus goes through an on-disk cache entry in tmp_path/cache, however small."""
    monkeypatch.setattr(cache, "MIN_CACHED_BYTES", 0)
    monkeypatch.setenv("BIOLM_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def protein_fasta(path, n=60, seed=0):
    rng = np.random.default_rng(seed)
    with open(path, "w") as handle:
        for i in range(n):
            seq = "".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), size=int(rng.integers(5, 90))))
            handle.write(f">p{i} protein {i}\n{seq[:40]}\n{seq[40:]}\n")
    return path


def old_split(path, tokenizer, val_fraction, seed):
    """The corpus as biolm built it before the cache: lists of arrays, the same per-family permutation."""
    out = []
    for family in read_families(path):
        ids = [tokenizer.encode(r.sequence).astype(np.uint8) for r in family.records]
        n_val = int(round(len(ids) * val_fraction))
        held = set(
            np.random.default_rng([seed, *family.name.encode()]).permutation(len(ids))[:n_val].tolist()
        )
        out.append(
            (
                family.name,
                [a for i, a in enumerate(ids) if i not in held],
                [a for i, a in enumerate(ids) if i in held],
            )
        )
    return out


def as_bytes(arrays):
    return [np.asarray(a).tobytes() for a in arrays]


@pytest.mark.parametrize("disk", [False, True])
def test_protein_corpus_keeps_the_split_and_the_examples_of_the_list_version(tmp_path, request, disk):
    if disk:
        request.getfixturevalue("on_disk")
    (tmp_path / "fams").mkdir()
    protein_fasta(tmp_path / "fams" / "A.fasta", 40, seed=1)
    protein_fasta(tmp_path / "fams" / "B.faa", 25, seed=2)
    tok = ProteinTokenizer()
    corpus = ProteinCorpus(tmp_path / "fams", tok, 0.2, seed=3)
    assert isinstance(corpus.store.data, np.memmap) == disk
    expected = old_split(tmp_path / "fams", tok, 0.2, 3)
    assert [f.name for f in corpus.families] == ["A", "B"]
    for family, (name, train, val) in zip(corpus.families, expected, strict=True):
        assert family.name == name
        assert as_bytes(family.train) == as_bytes(train) and as_bytes(family.val) == as_bytes(val)
    flat_train = [a for _, train, _ in expected for a in train]
    assert as_bytes(corpus.sequences("train")) == as_bytes(flat_train)
    # Training example i draws the same protein and crop as from the plain list.
    ours = SequenceExamples(corpus.sequences("train"), 32, 20, seed=5)
    theirs = SequenceExamples(flat_train, 32, 20, seed=5)
    for i in range(20):
        assert torch.equal(ours[i]["input_ids"], theirs[i]["input_ids"])
    assert f"{len(flat_train):,} training proteins" in corpus.describe()


def test_protein_cache_is_reused_rebuilt_when_the_file_changes_and_sent_to_workers(tmp_path, on_disk):
    path = protein_fasta(tmp_path / "p.faa", 50)
    tok = ProteinTokenizer()
    first = ProteinCorpus(path, tok, 0.1, seed=0)
    assert not first.store.from_cache
    (entry,) = [p for p in on_disk.iterdir() if not p.name.startswith(".")]
    again = ProteinCorpus(path, tok, 0.1, seed=0)
    assert again.store.from_cache and again.store.directory == entry
    assert as_bytes(again.sequences("val")) == as_bytes(first.sequences("val"))
    # Another tokenizer policy is another entry; the FIM sentinels do not change residue ids.
    assert ProteinCorpus(path, ProteinTokenizer(fim_sentinels=3), 0.1, seed=0).store.from_cache
    assert not ProteinCorpus(path, ProteinTokenizer(unknown="replace"), 0.1, seed=0).store.from_cache
    protein_fasta(path, 30, seed=9)  # the file changes: its entry is rebuilt in place
    changed = ProteinCorpus(path, tok, 0.1, seed=0)
    assert not changed.store.from_cache and changed.store.directory == entry
    assert len(changed.sequences("train")) + len(changed.sequences("val")) == 30
    # A data-loader worker gets the entry's name and maps it again, not a copy of the data.
    data = SequenceExamples(changed.sequences("train"), 64, 10, seed=0)
    blob = pickle.dumps(data)
    assert len(blob) < 10_000
    clone = pickle.loads(blob)
    assert isinstance(clone.sequences.store.data, np.memmap)
    assert torch.equal(clone[3]["input_ids"], data[3]["input_ids"])


def test_a_failed_build_leaves_no_cache_entry(tmp_path, on_disk):
    path = tmp_path / "bad.faa"
    path.write_text(">ok\nMKV\n>broken\nMKJ\n")
    with pytest.raises(InputError, match=r"bad\.faa: record 'broken': invalid character 'J'"):
        ProteinCorpus(path, ProteinTokenizer(), 0.5, seed=0)
    assert list(on_disk.iterdir()) == []


FULL_DISK_BUILD = """
import resource, signal, sys
from pathlib import Path
import biolm.data.cache as cache
from biolm.errors import DiskFullError
cache.MIN_CACHED_BYTES = 0
source = Path(sys.argv[1])
def build(writer):
    for _ in range(20_000):  # 20 kB of data, 160 kB of offsets: the offsets are what exceeds the limit
        writer.append(b"x")
    return {}, {}
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
try:
    cache.cached_store("test", source, [source], {}, build)
except DiskFullError as err:
    print(err)
    sys.exit(3)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="RLIMIT_FSIZE needs a POSIX system")
def test_a_full_disk_while_caching_is_one_error_and_leaves_no_entry(tmp_path, on_disk):
    # numpy's np.save to a file name writes with tofile, which ignores a short write: a full disk left a
    # truncated offsets.npy in an entry that later runs would trust.
    import subprocess
    import sys

    source = tmp_path / "corpus.txt"
    source.write_text("x\n")
    proc = subprocess.run(
        [sys.executable, "-c", FULL_DISK_BUILD, str(source)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "BIOLM_CACHE_DIR": str(on_disk)},
    )
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "corpus.txt: cannot write its tokenized cache" in proc.stdout and "File too large" in proc.stdout
    assert not on_disk.exists() or list(on_disk.iterdir()) == []


def test_stored_molecule_sets_match_the_in_memory_reader_and_warn_again_when_reused(tmp_path, on_disk):
    (tmp_path / "sets").mkdir()
    (tmp_path / "sets" / "a.smi").write_text("CCO\nC1CC\nc1ccccc1 benzene\n\nOCC\n")
    (tmp_path / "sets" / "b.csv").write_text("id,smiles\n1,CCN\n2,CC(=O)[O-].[Na+]\n")
    with pytest.warns(ChemDataWarning, match="skipped 1 of 4"):
        expected = read_molecule_sets(tmp_path / "sets")
    for attempt in range(2):
        with pytest.warns(
            ChemDataWarning, match=r"a\.smi: skipped 1 of 4 molecules \(invalid SMILES\): line 2"
        ):
            stored = stored_molecule_sets(tmp_path / "sets")
        assert [s.name for s in stored] == ["a", "b"]
        for ours, theirs in zip(stored, expected, strict=True):
            assert list(ours.smiles) == theirs.smiles and list(ours.lines) == theirs.lines
            assert ours.total == theirs.total
        assert stored[0].smiles.store.from_cache == (attempt == 1)


def test_chem_datamodule_from_the_cache_gives_the_batches_of_the_in_memory_corpus(tmp_path, monkeypatch):
    path = tmp_path / "m.smi"
    path.write_text("\n".join(["CCO", "CCN", "c1ccccc1", "CC(=O)O", "OCCO", "CCCC", "C1CCCCC1", "CCOC"] * 3))
    config = type("D", (), {"path": str(path), "seq_len": 64, "val_fraction": 0.25, "batch_size": 4})

    def batches():
        module = build_chem_data(config, SmilesTokenizer(), seed=1)
        return [b["input_ids"] for b in module.train_dataloader()], [
            b["input_ids"] for b in module.val_dataloader()
        ]

    in_memory = batches()
    monkeypatch.setattr(cache, "MIN_CACHED_BYTES", 0)
    monkeypatch.setenv("BIOLM_CACHE_DIR", str(tmp_path / "cache"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cached, reused = batches(), batches()
    for a, b, c in zip(in_memory, cached, reused, strict=True):
        assert all(torch.equal(x, y) and torch.equal(x, z) for x, y, z in zip(a, b, c, strict=True))


def test_validation_windows_are_computed_on_access(tmp_path):
    rng = np.random.default_rng(0)
    with open(tmp_path / "g.fa", "w") as handle:
        for name, n in (("a", 1000), ("b", 77), ("c", 430)):
            handle.write(f">{name}\n{''.join(rng.choice(list('ACGT'), size=n))}\n")
    source = GenomeSource(tmp_path / "g.fa", DNATokenizer(), val_fraction=0.5)
    explicit = [
        Region(r.record, s, min(s + 30, r.end)) for r in source.val_regions for s in range(r.start, r.end, 30)
    ]
    assert list(ValWindows(source, 30).windows) == explicit
    thinned = ValWindows(source, 30, max_windows=5)
    keep = np.linspace(0, len(explicit) - 1, 5).round().astype(int)
    assert list(thinned.windows) == [explicit[i] for i in keep] and len(thinned) == 5
    assert thinned.windows[-1] == explicit[keep[-1]]
    with pytest.raises(IndexError):
        thinned.windows[5]


def write_genome(path, records, width=60):
    with open(path, "w") as handle:
        for name, seq in records.items():
            handle.write(f">{name}\n" + "".join(seq[i : i + width] + "\n" for i in range(0, len(seq), width)))


def test_genome_index_is_built_once_and_reused(tmp_path, monkeypatch):
    import pyfaidx

    write_genome(tmp_path / "g.fa", {"a": "ACGT" * 100, "b": "GGCC" * 50})
    builds = []
    original = pyfaidx.Faidx.build_index
    monkeypatch.setattr(pyfaidx.Faidx, "build_index", lambda self: builds.append(1) or original(self))
    assert open_fasta(tmp_path / "g.fa")["b"][0:4] == "GGCC"
    assert open_fasta(tmp_path / "g.fa")["b"][0:4] == "GGCC"
    assert len(builds) == 1 and (tmp_path / "g.fa.fai").is_file()


@pytest.mark.parametrize("how", ["replaced by an older copy", "index cut short"])
def test_a_stale_genome_index_is_rebuilt(tmp_path, how):
    path = tmp_path / "g.fa"
    write_genome(path, {"a": "ACGT" * 100, "b": "GGCC" * 50})
    open_fasta(path)
    index = tmp_path / "g.fa.fai"
    if how == "index cut short":
        index.write_text(index.read_text().splitlines()[0] + "\n")  # as if the build had been killed
    else:
        write_genome(path, {"a": "TTTT" * 10, "b": "ACGT" * 300, "c": "CCCC"})
        old = index.stat().st_mtime - 100
        os.utime(path, (old, old))  # rsync -t / cp -p of an older file: pyfaidx's mtime check passes
    fasta = open_fasta(path)
    if how == "index cut short":
        assert list(fasta.keys()) == ["a", "b"] and fasta["b"][0:4] == "GGCC"
    else:
        assert list(fasta.keys()) == ["a", "b", "c"] and fasta["b"][0:8] == "ACGTACGT"


def test_genome_index_goes_to_the_cache_when_the_directory_is_read_only(tmp_path, monkeypatch):
    monkeypatch.setenv("BIOLM_CACHE_DIR", str(tmp_path / "cache"))
    write_genome(tmp_path / "g.fa", {"a": "ACGT" * 100})
    real_access = os.access
    monkeypatch.setattr(
        "biolm.io.genome.os.access",
        lambda p, mode: False if str(p) == str(tmp_path) else real_access(p, mode),
    )
    assert open_fasta(tmp_path / "g.fa")["a"][4:8] == "ACGT"
    assert not (tmp_path / "g.fa.fai").exists()
    assert len(list((tmp_path / "cache" / "index").glob("g.fa.*.fai"))) == 1


def test_plain_gzip_copy_is_made_once_and_again_when_the_source_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("BIOLM_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "g.fa.gz"
    path.write_bytes(gzip.compress(b">a\nACGTACGT\n"))
    assert open_fasta(path)["a"][0:4] == "ACGT"
    (copy,) = (tmp_path / "cache" / "genomes").glob("*.bgz")
    made = copy.stat().st_mtime_ns
    assert open_fasta(path)["a"][0:4] == "ACGT" and copy.stat().st_mtime_ns == made
    path.write_bytes(gzip.compress(b">a\nTTTTGGGGCC\n>b\nAC\n"))
    fasta = open_fasta(path)
    assert fasta["a"][0:6] == "TTTTGG" and list(fasta.keys()) == ["a", "b"]


def test_truncated_plain_gzip_genome_is_a_one_line_error_and_leaves_no_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("BIOLM_CACHE_DIR", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    whole = gzip.compress(b">a\n" + "".join(rng.choice(list("ACGT"), size=200_000)).encode() + b"\n")
    path = tmp_path / "cut.fa.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(InputError, match=r"cut\.fa\.gz: cannot read the gzip file") as info:
        open_fasta(path)
    assert "\n" not in str(info.value)
    assert list((tmp_path / "cache" / "genomes").iterdir()) == []


def test_a_stale_index_that_cannot_be_rewritten_is_replaced_by_one_in_the_cache(tmp_path, monkeypatch):
    import pyfaidx

    monkeypatch.setenv("BIOLM_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "g.fa"
    write_genome(path, {"a": "ACGT" * 100})
    open_fasta(path)
    write_genome(path, {"a": "TTTT" * 10, "b": "GGCC"})  # newer than its index: pyfaidx rebuilds it
    beside = str(tmp_path / "g.fa.fai")
    original = pyfaidx.Faidx.build_index

    def read_only(self):
        if self.indexname == beside:
            raise OSError(f"{beside} may not be writable.")
        return original(self)

    monkeypatch.setattr(pyfaidx.Faidx, "build_index", read_only)
    fasta = open_fasta(path)
    assert list(fasta.keys()) == ["a", "b"] and fasta["b"][0:4] == "GGCC"
    assert len(list((tmp_path / "cache" / "index").glob("g.fa.*.fai"))) == 1
