from __future__ import annotations

import gzip
import math

import numpy as np
import pytest
from Bio import bgzf

from biolm.data.genome import (
    IGNORE_INDEX,
    GenomeSource,
    Region,
    TrainWindows,
    ValWindows,
    open_builtin_genome,
)
from biolm.data.markov import MarkovModel
from biolm.errors import InputError
from biolm.io.genome import _is_bgzf, open_fasta
from biolm.tokenizers import DNATokenizer


def write_fasta(path, records: dict[str, str], width: int = 60):
    with open(path, "w") as handle:
        for name, seq in records.items():
            handle.write(f">{name} description\n")
            for i in range(0, len(seq), width):
                handle.write(seq[i : i + width] + "\n")
    return path


@pytest.fixture
def genome(tmp_path):
    rng = np.random.default_rng(1)
    records = {f"chr{i}": "".join(rng.choice(list("ACGT"), size=n)) for i, n in enumerate([1000, 333, 57])}
    return write_fasta(tmp_path / "g.fa", records), records


def test_builtin_genome_is_the_documented_chromosome():
    fasta = open_builtin_genome()
    assert list(fasta.keys()) == ["NZ_LN831026.1"]
    assert len(fasta["NZ_LN831026.1"]) == 2_463_666


def test_regions_are_disjoint_and_cover_each_record(genome):
    path, records = genome
    source = GenomeSource(path, DNATokenizer(), val_fraction=0.1)
    for name, seq in records.items():
        train = [r for r in source.train_regions if r.record == name]
        val = [r for r in source.val_regions if r.record == name]
        assert len(train) == 1 and len(val) == 1
        assert train[0].start == 0 and train[0].end == val[0].start and val[0].end == len(seq)
        assert len(val[0]) == round(len(seq) * 0.1)


def test_windows_read_the_right_bases(genome):
    path, records = genome
    tok = DNATokenizer()
    source = GenomeSource(path, tok, val_fraction=0.1)
    train = TrainWindows(source, seq_len=64, num_windows=50, seed=3)
    for index in range(50):
        w = train.window(index)
        region = next(r for r in source.train_regions if r.record == w.record)
        assert region.start <= w.start < w.end <= region.end
        example = train[index]
        bases = records[w.record][w.start : w.end]
        assert tok.decode(example["labels"][: len(bases)]) == bases
        assert example["input_ids"][0] == tok.bos_id
        assert tok.decode(example["input_ids"][1 : len(bases)]) == bases[:-1]
        assert (example["labels"][len(bases) :] == IGNORE_INDEX).all()


def test_train_windows_are_reproducible_and_change_with_epoch(genome):
    source = GenomeSource(genome[0], DNATokenizer(), val_fraction=0.1)
    a, b = TrainWindows(source, 32, 20, seed=0), TrainWindows(source, 32, 20, seed=0)
    assert [a.window(i) for i in range(20)] == [b.window(i) for i in range(20)]
    b.epoch = 1
    assert [a.window(i) for i in range(20)] != [b.window(i) for i in range(20)]


def test_val_windows_tile_the_validation_region(genome):
    path, records = genome
    source = GenomeSource(path, DNATokenizer(), val_fraction=0.2)
    val = ValWindows(source, seq_len=30)
    covered = {}
    for w in val.windows:
        covered.setdefault(w.record, []).append((w.start, w.end))
    for region in source.val_regions:
        spans = sorted(covered[region.record])
        assert spans[0][0] == region.start and spans[-1][1] == region.end
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))
    assert len(ValWindows(source, seq_len=30, max_windows=3)) == 3


def test_unknown_bases_are_not_targets(tmp_path):
    path = write_fasta(tmp_path / "n.fa", {"x": "ACGTNNNNACGT" * 10})
    source = GenomeSource(path, DNATokenizer(), val_fraction=0.2)
    example = ValWindows(source, seq_len=200)[0]
    n_id = DNATokenizer().token_to_id("N")
    assert n_id in example["input_ids"].tolist()
    assert n_id not in example["labels"].tolist()


def test_bad_character_names_file_record_and_position(tmp_path):
    seq = "ACGT" * 50
    path = write_fasta(tmp_path / "bad.fa", {"ok": seq, "broken": seq[:123] + "J" + seq[124:]})
    source = GenomeSource(path, DNATokenizer(), val_fraction=0.1)
    with pytest.raises(InputError, match=r"bad\.fa: record 'broken': invalid character 'J' at position 124"):
        source.scan(markov_order=3)
    replaced = GenomeSource(path, DNATokenizer(unknown="replace"), val_fraction=0.1)
    replaced.scan(markov_order=3)


@pytest.mark.parametrize(
    "content, message",
    [(b"", "empty file"), (b"\n\n", "empty file"), (b"ACGT\n", "not a FASTA file")],
)
def test_unusable_files(tmp_path, content, message):
    path = tmp_path / "x.fa"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        open_fasta(path)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        open_fasta(tmp_path / "missing.fa")


def test_plain_gzip_is_read_through_a_bgzf_copy_and_bgzf_directly(tmp_path, monkeypatch):
    monkeypatch.setenv("BIOLM_CACHE_DIR", str(tmp_path / "cache"))
    text = b">a\nACGTACGTTT\n"
    with gzip.open(tmp_path / "plain.fa.gz", "wb") as handle:
        handle.write(text)
    assert open_fasta(tmp_path / "plain.fa.gz")["a"][2:6] == "GTAC"
    (copy,) = (tmp_path / "cache" / "genomes").glob("plain.fa.*.bgz")
    with open(copy, "rb") as handle:
        assert _is_bgzf(handle.read(18))
    with bgzf.BgzfWriter(str(tmp_path / "b.fa.gz"), "wb") as handle:
        handle.write(text)
    assert open_fasta(tmp_path / "b.fa.gz")["a"][2:6] == "GTAC"
    assert not list((tmp_path / "cache" / "genomes").glob("b.fa.*"))


def test_markov_model_counts_and_scores():
    model = MarkovModel(order=1)
    model.update(np.array([0, 1, 0, 1, 0, 2]))  # A C A C A G
    assert model.counts[0].tolist() == [0, 2, 1, 0]  # after A: C twice, G once
    assert model.counts[1].tolist() == [2, 0, 0, 0]
    nll, n = model.nll(np.array([0, 1, -1, 3]), first_target=1)
    # targets C (context A) and T (unigram: its context N is unknown); N itself is not a target
    p_c = (2 + 1) / (3 + 4)
    p_t = (0 + 1) / (6 + 4)
    assert n == 2 and math.isclose(nll, -math.log(p_c) - math.log(p_t))


def test_scan_fits_markov_on_training_regions_only(genome):
    path, records = genome
    source = GenomeSource(path, DNATokenizer(), val_fraction=0.1)
    model = source.scan(markov_order=2)
    expected = sum(len(r) - 2 for r in source.train_regions)
    assert model.counts.sum() == expected


def test_markov_nll_on_val_windows_matches_direct_computation(genome):
    path, records = genome
    source = GenomeSource(path, DNATokenizer(), val_fraction=0.3)
    model = source.scan(markov_order=2)
    windows = [Region("chr0", 700, 760)]
    nll, n = source.markov_nll(model, windows)
    codes = np.array(["ACGT".index(c) for c in records["chr0"][698:760]])
    log_p = model.log_probs()
    direct = -sum(log_p[codes[j - 2] * 4 + codes[j - 1], codes[j]] for j in range(2, len(codes)))
    assert n == 60 and math.isclose(nll, direct)


def test_batches_of_short_windows_drop_only_all_padding_columns(tmp_path):
    import torch
    import torch.nn.functional as F

    from biolm.data.genome import stack_windows, window_example
    from biolm.models import BioLM, ModelConfig

    rng = np.random.default_rng(0)
    records = {f"r{i}": "".join(rng.choice(list("ACGT"), n)) for i, n in enumerate([300, 260, 420])}
    source = GenomeSource(write_fasta(tmp_path / "short.fa", records), DNATokenizer(), 0.1)
    val = ValWindows(source, seq_len=128)
    examples = [val[i] for i in range(len(val))]
    full = {key: torch.stack([e[key] for e in examples]) for key in examples[0]}
    batch = stack_windows(examples)
    longest = max(len(r) for r in source.val_regions)
    assert batch["input_ids"].shape == (len(examples), longest) < full["input_ids"].shape
    assert torch.equal(batch["labels"], full["labels"][:, :longest])
    assert (full["labels"][:, longest:] == IGNORE_INDEX).all()

    torch.manual_seed(0)
    model = BioLM(ModelConfig(vocab_size=DNATokenizer().vocab_size, d_model=16, n_layers=2, num_heads=2))
    losses = []
    for b in (full, batch):
        logits = model(b["input_ids"]).logits
        losses.append(F.cross_entropy(logits.flatten(0, 1), b["labels"].flatten(), ignore_index=IGNORE_INDEX))
    torch.testing.assert_close(losses[0], losses[1])
    # Full-length windows are left as they are.
    train = [window_example(source, Region("r2", 0, 128), 128)] * 2
    assert stack_windows(train)["input_ids"].shape == (2, 128)
