"""The one in-context layout (`biolm.data.layout`): every stream that training, generation, zero-shot
scoring and the gain curve build is this module's, and the closing `<eos>` has one position."""

from __future__ import annotations

import numpy as np
import pytest

from biolm.data.layout import DEFAULT_LAYOUT, Layout
from biolm.data.molsets import packed_example
from biolm.data.packing import pack_members
from biolm.tokenizers.base import BOS_ID, EOS_ID, SEP_ID


def _members(*lengths: int) -> list[np.ndarray]:
    return [np.arange(10, 10 + n, dtype=np.int64) for n in lengths]


def test_prompt_ids_positions_and_members():
    prompt = DEFAULT_LAYOUT.prompt(_members(2, 1))
    assert prompt.ids.tolist() == [BOS_ID, 10, 11, SEP_ID, 10, SEP_ID]
    assert prompt.positions.tolist() == [0, 1, 2, 0, 1, 0]
    # A delimiter belongs to the member it opens.
    assert prompt.members.tolist() == [0, 0, 0, 1, 1, 2]


def test_chunks_are_the_prompts_of_every_size():
    members = _members(3, 1, 4)
    chunks = DEFAULT_LAYOUT.chunks(members)
    for k in range(len(members) + 1):
        joined = np.concatenate([c.ids for c in chunks[: k + 1]])
        positions = np.concatenate([c.positions for c in chunks[: k + 1]])
        np.testing.assert_array_equal(joined, DEFAULT_LAYOUT.prompt(members[:k]).ids)
        np.testing.assert_array_equal(positions, DEFAULT_LAYOUT.prompt(members[:k]).positions)


@pytest.mark.parametrize("lengths", [(3,), (2, 4), (1, 0), (0,)])
def test_the_closing_eos_continues_the_last_member(lengths):
    """The `<eos>` is no delimiter: it ends the last member at the position after its last token, as in
    a member alone (`<bos> m <eos>`: positions 0 .. n + 1). The two training packers used to disagree
    (position 0 in the protein packer, n + 1 in the molecule packer); both now take it from here."""
    members = _members(*lengths)
    closed = DEFAULT_LAYOUT.closed(members)
    assert closed.ids[-1] == EOS_ID
    assert closed.positions[-1] == len(members[-1]) + 1
    assert closed.members[-1] == len(members) - 1
    alone = DEFAULT_LAYOUT.closed(members[-1:])
    assert alone.positions.tolist() == list(range(len(members[-1]) + 2))


def test_both_training_packers_share_the_layout():
    members = _members(3, 2, 4)
    closed = DEFAULT_LAYOUT.closed(members)
    molecules = packed_example(members)  # the <eos> is an input (label ignored)
    np.testing.assert_array_equal(molecules["input_ids"].numpy(), closed.ids)
    np.testing.assert_array_equal(molecules["position_ids"].numpy(), closed.positions)
    proteins, count = pack_members(members, budget=len(closed) - 1)  # the <eos> is only a label
    assert count == 3
    np.testing.assert_array_equal(proteins["input_ids"].numpy(), closed.ids[:-1])
    np.testing.assert_array_equal(proteins["position_ids"].numpy(), closed.positions[:-1])
    assert proteins["labels"][-1] == EOS_ID


def test_choose_stops_at_the_first_member_that_does_not_fit_or_skips_it():
    lengths = [3, 6, 2]  # costs 4, 7, 3 after the opening token
    assert DEFAULT_LAYOUT.choose(lengths, budget=8) == [0]
    assert DEFAULT_LAYOUT.choose(lengths, budget=8, skip_long=True) == [0, 2]
    assert DEFAULT_LAYOUT.choose(lengths, budget=100, max_members=2) == [0, 1]
    assert DEFAULT_LAYOUT.choose(lengths, budget=1) == []


def test_runs_cover_every_member_once_within_the_budget():
    lengths = [3, 4, 2, 7, 1, 1, 8]
    runs = DEFAULT_LAYOUT.runs(lengths, budget=10)
    assert [i for run in runs for i in run] == list(range(len(lengths)))
    assert all(len(run) == 1 or DEFAULT_LAYOUT.stream_tokens([lengths[i] for i in run]) <= 10 for run in runs)


def test_a_second_layout_is_a_value():
    """A layout whose positions run on through the stream, with other delimiters (a converted model's),
    changes the streams and nothing else."""
    running = Layout(open_id=EOS_ID, separator_id=EOS_ID, close_id=EOS_ID, restart_positions=False)
    prompt = running.prompt(_members(2, 1))
    assert prompt.ids.tolist() == [EOS_ID, 10, 11, EOS_ID, 10, EOS_ID]
    assert prompt.positions.tolist() == list(range(6))
    assert running.next_positions(len(prompt), 3).tolist() == [6, 7, 8]
    assert DEFAULT_LAYOUT.next_positions(len(prompt), 3).tolist() == [1, 2, 3]
    assert running.positions_of(prompt.ids).tolist() == list(range(6))
    assert DEFAULT_LAYOUT.positions_of(np.array([BOS_ID, 7, 8, SEP_ID, 9])).tolist() == [0, 1, 2, 0, 1]
