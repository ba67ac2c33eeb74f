"""Reverse-complement augmentation of genome training windows."""

from __future__ import annotations

import numpy as np
import pytest

from biolm.data.genome import IGNORE_INDEX, GenomeSource, TrainWindows, ValWindows
from biolm.tokenizers import DNATokenizer

_COMPLEMENT = str.maketrans("ACGTN", "TGCAN")


def write_fasta(path, records: dict[str, str]):
    path.write_text("".join(f">{name}\n{seq}\n" for name, seq in records.items()))
    return path


@pytest.fixture
def source(tmp_path):
    rng = np.random.default_rng(2)
    seq = "".join(rng.choice(list("ACGTN"), p=[0.24, 0.24, 0.24, 0.24, 0.04], size=3000))
    return GenomeSource(write_fasta(tmp_path / "g.fa", {"chr": seq}), DNATokenizer(), 0.1), seq


def test_about_half_flipped_and_windows_unchanged(source):
    src, _ = source
    plain = TrainWindows(src, 64, 400, seed=5)
    aug = TrainWindows(src, 64, 400, seed=5, rc_augment=True)
    assert [plain.window(i) for i in range(400)] == [aug.window(i) for i in range(400)]
    flips = [aug.flipped(i) for i in range(400)]
    assert 160 < sum(flips) < 240  # Binomial(400, 0.5): mean 200, sd 10
    assert not any(plain.flipped(i) for i in range(400))


def test_flips_are_deterministic_per_seed_and_epoch(source):
    src, _ = source
    a, b = TrainWindows(src, 64, 100, 1, rc_augment=True), TrainWindows(src, 64, 100, 1, rc_augment=True)
    assert [a.flipped(i) for i in range(100)] == [b.flipped(i) for i in range(100)]
    assert [a[i]["labels"].tolist() for i in range(5)] == [b[i]["labels"].tolist() for i in range(5)]
    b.epoch = 1
    assert [a.flipped(i) for i in range(100)] != [b.flipped(i) for i in range(100)]
    c = TrainWindows(src, 64, 100, 2, rc_augment=True)
    assert [a.flipped(i) for i in range(100)] != [c.flipped(i) for i in range(100)]


def test_flipped_example_is_the_reverse_strand_with_consistent_labels(source):
    src, seq = source
    tok = DNATokenizer()
    train = TrainWindows(src, 80, 60, seed=3, rc_augment=True)
    n_id = tok.token_to_id("N")
    checked = 0
    for i in range(60):
        if not train.flipped(i):
            continue
        w = train.window(i)
        expected = seq[w.start : w.end][::-1].translate(_COMPLEMENT)
        ex = train[i]
        n = len(expected)
        assert ex["input_ids"][0] == tok.bos_id
        assert tok.decode(ex["input_ids"][1:n]) == expected[:-1]
        # Labels are the inputs shifted by one; unknown bases and padding are never targets.
        targets = tok.encode(expected)
        assert ex["labels"][:n].tolist() == np.where(targets == n_id, IGNORE_INDEX, targets).tolist()
        assert (ex["labels"][n:] == IGNORE_INDEX).all()
        checked += 1
    assert checked > 10


def test_validation_is_never_augmented(source):
    src, seq = source
    val = ValWindows(src, 64)
    w = val.windows[0]
    assert DNATokenizer().decode(val[0]["input_ids"][1 : len(w)]) == seq[w.start : w.end - 1]
