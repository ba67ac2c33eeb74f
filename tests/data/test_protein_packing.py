from __future__ import annotations

import numpy as np
import pytest
import torch

from biolm.data.packing import (
    IGNORE_INDEX,
    fim_format,
    fim_restore,
    pack_members,
    pad_batch,
    sample_spans,
)
from biolm.data.protein import FamilyPacks, FimOptions, SequenceExamples
from biolm.tokenizers import BOS_ID, EOS_ID, PAD_ID, SEP_ID, ProteinTokenizer

TOK = ProteinTokenizer(fim_sentinels=3)
S1, S2, S3 = TOK.sentinel_ids


def test_fim_format_moves_spans_behind_their_sentinels():
    ids = TOK.encode("ABCDEFG")
    out = fim_format(ids, [(1, 3), (4, 5)], TOK.sentinel_ids)
    assert TOK.decode(out, skip_special=False) == "A<fim_1>D<fim_2>FG<fim_1>BC<fim_2>E"
    assert TOK.decode(fim_restore(out, TOK.sentinel_ids)) == "ABCDEFG"


def test_fim_round_trip_on_random_spans():
    rng = np.random.default_rng(0)
    for _ in range(300):
        length = int(rng.integers(1, 40))
        ids = rng.integers(6, 31, size=length)
        spans = sample_spans(length, 3, rng)
        assert 1 <= len(spans) <= 3
        assert all(0 <= a < b <= length for a, b in spans)
        assert all(b < c for (_, b), (c, _) in zip(spans, spans[1:], strict=False))
        out = fim_format(ids, spans, TOK.sentinel_ids)
        assert len(out) == length + 2 * len(spans)
        np.testing.assert_array_equal(fim_restore(out, TOK.sentinel_ids), ids)


def test_fim_rejects_bad_spans_and_malformed_input():
    ids = np.arange(6, 12)
    with pytest.raises(ValueError, match="sorted"):
        fim_format(ids, [(3, 4), (1, 2)], TOK.sentinel_ids)
    with pytest.raises(ValueError, match="only 1 sentinel"):
        fim_format(ids, [(0, 1), (2, 3)], [S1])
    with pytest.raises(ValueError, match="no matching span"):
        fim_restore(np.array([6, S1, 7]), TOK.sentinel_ids)
    with pytest.raises(ValueError, match="out of order"):
        fim_restore(np.array([6, S2, 7, S1, 8, S2, 9, S1]), TOK.sentinel_ids)


def members(*lengths):
    return [np.full(n, 6 + j, dtype=np.int64) for j, n in enumerate(lengths)]


def test_packing_respects_budget_and_restarts_positions():
    example, count = pack_members(members(3, 4, 5, 6), budget=12)
    # <bos> aaa <sep> bbbb <sep> ... : 1+3 + 1+4 = 9 tokens; the third member (6 with <sep>) won't fit.
    assert count == 2
    ids, labels, pos = example["input_ids"], example["labels"], example["position_ids"]
    assert len(ids) == len(labels) == len(pos) == 9 <= 12
    assert ids.tolist() == [BOS_ID, 6, 6, 6, SEP_ID, 7, 7, 7, 7]
    assert labels.tolist() == [6, 6, 6, SEP_ID, 7, 7, 7, 7, EOS_ID]
    assert pos.tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 4]


def test_packing_crops_a_first_member_longer_than_the_budget():
    example, count = pack_members(members(50, 2), budget=10)
    assert count == 1 and len(example["input_ids"]) == 10
    assert example["labels"][-1] == EOS_ID


def test_loss_only_after_the_first_k_members():
    example, _ = pack_members(members(2, 3, 2), budget=100, loss_after_members=2)
    ids, labels = example["input_ids"].tolist(), example["labels"].tolist()
    # Segments: [<bos> a a] [<sep> b b b] [<sep> c c]; loss only where the input is in segment 2.
    assert ids == [BOS_ID, 6, 6, SEP_ID, 7, 7, 7, SEP_ID, 8, 8]
    assert labels == [IGNORE_INDEX] * 7 + [8, 8, EOS_ID]
    example, _ = pack_members(members(2, 3), budget=100, loss_after_members=5)
    assert (example["labels"] == IGNORE_INDEX).all()


def test_pad_batch_pads_each_key_with_its_filler():
    a, _ = pack_members(members(2), budget=100)
    b, _ = pack_members(members(4, 1), budget=100)
    batch = pad_batch([a, b])
    assert batch["input_ids"].shape == batch["labels"].shape == batch["position_ids"].shape == (2, 7)
    assert batch["input_ids"][0, 3:].eq(PAD_ID).all() and batch["labels"][0, 3:].eq(IGNORE_INDEX).all()
    assert batch["position_ids"][0, 3:].eq(0).all()


def test_sequence_examples_bos_eos_crop_and_fim():
    seqs = [np.arange(6, 26), np.arange(6, 12)]
    plain = SequenceExamples(seqs, seq_len=64, num_examples=None, seed=0)
    ex = plain[1]
    assert ex["input_ids"].tolist() == [BOS_ID, *range(6, 12)]
    assert ex["labels"].tolist() == [*range(6, 12), EOS_ID]
    cropped = SequenceExamples(seqs, seq_len=8, num_examples=50, seed=0)
    assert all(len(cropped[i]["input_ids"]) <= 8 for i in range(50))
    fim = FimOptions(rate=1.0, max_spans=3, sentinels=TOK.sentinel_ids)
    train = SequenceExamples(seqs, seq_len=64, num_examples=40, seed=0, fim=fim)
    for i in range(40):
        ex = train[i]
        tokens = torch.cat([ex["input_ids"], ex["labels"][-1:]]).numpy()
        assert tokens[0] == BOS_ID and tokens[-1] == EOS_ID
        restored = fim_restore(tokens[1:-1], TOK.sentinel_ids)
        assert any(np.array_equal(restored, s) for s in seqs)
    again = SequenceExamples(seqs, seq_len=64, num_examples=40, seed=0, fim=fim)
    assert all(torch.equal(train[i]["input_ids"], again[i]["input_ids"]) for i in range(40))


def test_family_packs_draw_from_one_family_and_change_with_epoch():
    families = [members(5, 5, 5), [np.full(4, 20 + j) for j in range(4)]]
    packs = FamilyPacks(families, seq_len=32, num_examples=20, seed=0, loss_after_members=1)
    first = [packs[i]["input_ids"] for i in range(20)]
    for ids in first:
        residues = set(ids.tolist()) - {BOS_ID, SEP_ID}
        assert residues <= {6, 7, 8} or residues <= {20, 21, 22, 23}
    packs.epoch = 1
    assert any(not torch.equal(a, packs[i]["input_ids"]) for i, a in enumerate(first))


def test_validation_packs_score_held_out_members_after_training_context():
    train = [[np.full(3, 6), np.full(3, 7)]]
    val = [[np.full(2, 20)]]
    packs = FamilyPacks(
        val, seq_len=64, num_examples=3, seed=0, loss_after_members=1, train=False, context=train
    )
    ex = packs[0]
    scored = ex["labels"][ex["labels"] != IGNORE_INDEX].tolist()
    assert scored == [20, 20, EOS_ID]  # the held-out member only
    assert ex["input_ids"][0] == BOS_ID and ex["input_ids"][1] in (6, 7)
