"""The decoding engine: prefill and step decoding against one forward pass, seeding, stops, filters."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from biolm.data.layout import DEFAULT_LAYOUT
from biolm.errors import InputError
from biolm.inference.infill import infill_prompt
from biolm.inference.sample_tokens import prefill, sample_infill_tokens, sample_tokens, state_numel
from biolm.inference.sampling import SampleStreams, filter_logits, sample_from_logits
from biolm.tokenizers import ProteinTokenizer
from biolm.tokenizers.base import BOS_ID, EOS_ID, MASK_ID, PAD_ID, SEP_ID, UNK_ID
from tests.inference.helpers import tiny_model
from tests.models.helpers import PATTERNS, make_model

# Two members laid out as in-context training data: positions 0 1 2 3 0 1 2.
PROMPT = [BOS_ID, 7, 8, 9, SEP_ID, 6, 7]
RECURRENT = [p for p in PATTERNS if "t" not in p]


def test_member_positions_restart_at_each_delimiter():
    assert DEFAULT_LAYOUT.positions_of(np.array(PROMPT)).tolist() == [0, 1, 2, 3, 0, 1, 2]
    assert DEFAULT_LAYOUT.positions_of(np.array([7, 8, BOS_ID, 9])).tolist() == [0, 1, 0, 1]
    assert DEFAULT_LAYOUT.positions_of(np.array([], dtype=np.int64)).tolist() == []


@pytest.mark.parametrize("pattern", PATTERNS)
def test_step_decoding_equals_the_forward_pass(pattern):
    model = make_model(pattern)
    ids = torch.tensor([BOS_ID, 6, 7, 8, 9, 10, 6, SEP_ID, 9, 9, 8, 7, 6, 10, 8, 7, 6, 9, 9, 7])
    positions = torch.from_numpy(DEFAULT_LAYOUT.positions_of(ids.numpy()))
    full = model(ids[None], position_ids=positions[None]).logits[0]
    state, stepped = model.init_state(1), []
    for token, position in zip(ids, positions, strict=True):
        logits, state = model.step(token[None], state, position_ids=position[None])
        stepped.append(logits[0])
    torch.testing.assert_close(torch.stack(stepped), full, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_prefill_chunk_length_changes_nothing(pattern):
    model = make_model(pattern)
    ids = [BOS_ID, *([6, 7, 8, 9, 10] * 4), SEP_ID, 8, 8, 7]
    whole = prefill(model, ids)
    positions = torch.from_numpy(DEFAULT_LAYOUT.positions_of(np.array(ids)))
    full = model(torch.tensor([ids]), position_ids=positions[None])
    torch.testing.assert_close(whole.logits, full.logits[0, -1].float())
    assert (whole.position, whole.length) == (4, len(ids))
    for chunk_len in (1, 3, 8):
        chunked = prefill(model, ids, chunk_len=chunk_len)
        torch.testing.assert_close(chunked.logits, whole.logits, rtol=1e-6, atol=1e-7)
        for a, b in zip(_tensors(chunked.state), _tensors(whole.state), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_decoding_sees_the_logits_and_positions_of_one_forward_pass(pattern, monkeypatch):
    """Every step of batched decoding (rows leaving the batch as they stop, `<sep>` restarting
    positions) gives the logits of one forward pass over prompt + sample at the layout's positions."""
    model = make_model(pattern)
    calls = []
    step = model.step

    def spy(ids, state, position_ids=None):
        logits, new_state = step(ids, state, position_ids=position_ids)
        calls.append((ids.clone(), position_ids.clone(), logits.clone()))
        return logits, new_state

    monkeypatch.setattr(model, "step", spy)
    limit = 25
    prefilled = prefill(model, PROMPT, chunk_len=3)
    samples = sample_tokens(
        model,
        3,
        max_new_tokens=limit,
        prefilled=prefilled,
        temperature=2.0,
        stop_ids=[EOS_ID],
        banned_ids=[PAD_ID, BOS_ID, MASK_ID, UNK_ID],
        seed=5,
        progress=False,
    )
    lengths = [len(s) for s in samples]
    assert any(SEP_ID in s for s in samples)  # a new member started while decoding
    assert min(lengths) < limit  # some row stopped early and left the batch
    for j, generated in enumerate(samples):
        full = np.concatenate([PROMPT, generated])
        positions = DEFAULT_LAYOUT.positions_of(full)
        expected = model(torch.from_numpy(full)[None], position_ids=torch.from_numpy(positions)[None]).logits
        fed = min(len(generated), limit - 1)  # the stop token and the last allowed token are not fed
        for t in range(fed):
            row = [i for i in range(3) if min(lengths[i], limit - 1) > t].index(j)
            ids, pos, logits = calls[t]
            assert ids[row] == generated[t] and pos[row] == positions[len(PROMPT) + t]
            torch.testing.assert_close(logits[row], expected[0, len(PROMPT) + t], rtol=1e-9, atol=1e-10)
    assert len(calls) == max(min(n, limit - 1) for n in lengths)


def test_prefill_then_decode_equals_decoding_from_scratch():
    model = make_model("msatx")
    settings = dict(max_new_tokens=30, temperature=1.5, seed=11, progress=False)
    direct = sample_tokens(model, 4, prompt_ids=PROMPT, **settings)
    token_by_token = sample_tokens(model, 4, prefilled=prefill(model, PROMPT, chunk_len=1), **settings)
    _assert_same(direct, token_by_token)
    # A prompt that differs only in its last token gives other samples: the prompt is used.
    other = sample_tokens(model, 4, prompt_ids=[*PROMPT[:-1], 8], **settings)
    assert any(len(a) != len(b) or (a != b).any() for a, b in zip(direct, other, strict=True))


def test_one_prefill_serves_every_batch(monkeypatch):
    model = make_model("mt")
    prompt_reads = []
    forward = model.forward

    def spy(ids, state=None, **kwargs):
        if ids.shape[1] > 1:  # decoding feeds one token per call; anything longer reads the prompt
            prompt_reads.append(ids.shape)
        return forward(ids, state, **kwargs)

    monkeypatch.setattr(model, "forward", spy)
    samples = sample_tokens(model, 7, prompt_ids=PROMPT, max_new_tokens=6, batch_size=2, progress=False)
    assert len(samples) == 7 and prompt_reads == [(1, len(PROMPT))]


def test_seeded_samples_are_reproducible_and_independent_of_batch_size():
    model = make_model("m")
    settings = dict(max_new_tokens=40, temperature=1.3, stop_ids=[EOS_ID], progress=False)
    first = sample_tokens(model, 6, seed=3, batch_size=4, **settings)
    _assert_same(first, sample_tokens(model, 6, seed=3, batch_size=4, **settings))
    _assert_same(first, sample_tokens(model, 6, seed=3, batch_size=1, **settings))
    _assert_same(first[:2], sample_tokens(model, 2, seed=3, **settings))
    other = sample_tokens(model, 6, seed=4, batch_size=4, **settings)
    assert any(len(a) != len(b) or (a != b).any() for a, b in zip(first, other, strict=True))
    # Different samples of one run differ (each has its own stream).
    assert len({tuple(s) for s in first}) > 1


def test_sample_streams_depend_only_on_seed_and_index():
    a = SampleStreams(7, [0, 1, 2], block=4)
    b = SampleStreams(7, [2], block=3)
    draws_a = np.stack([a.next() for _ in range(10)])
    draws_b = np.stack([b.next() for _ in range(10)])
    np.testing.assert_array_equal(draws_a[:, 2], draws_b[:, 0])
    assert not np.allclose(draws_a[:, 0], draws_a[:, 1])


@pytest.mark.parametrize("pattern", [*RECURRENT, "t"])
def test_state_memory_does_not_depend_on_prompt_length(pattern):
    model = make_model(pattern)
    short = prefill(model, [BOS_ID, 6, 7])
    long = prefill(model, [BOS_ID, *([6, 7, 8, 9] * 50)], chunk_len=16)
    if pattern == "t":  # softmax attention: the KV cache holds every prompt position
        assert state_numel(long.state) > state_numel(short.state)
    else:
        assert state_numel(long.state) == state_numel(short.state) > 0


def test_stop_ids_end_samples_before_the_stop_token():
    model = make_model("ms")
    banned = [PAD_ID, BOS_ID, MASK_ID, UNK_ID, EOS_ID, SEP_ID]
    settings = dict(max_new_tokens=30, banned_ids=banned, seed=2, progress=False)
    free = sample_tokens(model, 5, stop_ids=[], **settings)
    stopped = sample_tokens(model, 5, stop_ids=[7], **settings)
    assert all(len(s) == 30 for s in free)
    assert any(len(s) < 30 for s in stopped)
    for whole, cut in zip(free, stopped, strict=True):
        assert 7 not in cut
        end = int(np.flatnonzero(whole == 7)[0]) if 7 in whole else 30
        np.testing.assert_array_equal(cut, whole[:end])
    assert all(not set(s.tolist()) & set(banned) for s in free)


def test_default_stops_are_eos_and_sep_and_other_specials_are_banned():
    model = make_model("m")
    samples = sample_tokens(model, 20, max_new_tokens=15, temperature=3.0, seed=0, progress=False)
    assert all(not set(s.tolist()) & {PAD_ID, BOS_ID, EOS_ID, SEP_ID, MASK_ID, UNK_ID} for s in samples)
    assert any(len(s) < 15 for s in samples)
    assert sample_tokens(model, 2, max_new_tokens=0, progress=False)[0].size == 0


def test_dna_samples_run_to_the_exact_length():
    from biolm.inference.generate import sample_texts

    model = tiny_model()
    prompt = [BOS_ID, *model.tokenizer.encode("ACGT")]
    texts = sample_texts(model, 3, max_new_tokens=25, prompt_ids=prompt, progress=False, batch_size=2)
    assert len(texts) == 3 and all(len(t) == 25 and set(t) <= set("ACGTN") for t in texts)
    assert texts == sample_texts(model, 3, max_new_tokens=25, prompt_ids=prompt, progress=False)


@pytest.mark.parametrize("mode", [{"bidirectional": True}, {"rc_equivariant": True, "complement": None}])
def test_stateless_models_are_refused_with_one_line(mode):
    from biolm.models.config import DNA_COMPLEMENT

    if "complement" in mode:
        mode = {**mode, "complement": DNA_COMPLEMENT}
    model = make_model("m", **mode)
    for call in (lambda: sample_tokens(model, 1, max_new_tokens=3), lambda: prefill(model, [BOS_ID])):
        with pytest.raises(InputError) as err:
            call()
        assert "cannot generate" in str(err.value) and "\n" not in str(err.value)


def test_bad_arguments_are_refused():
    model = make_model("m")
    with pytest.raises(ValueError, match="temperature"):
        sample_tokens(model, 1, max_new_tokens=3, temperature=-1)
    with pytest.raises(ValueError, match="temperature"):
        sample_tokens(model, 1, max_new_tokens=3, temperature=float("nan"))
    with pytest.raises(ValueError, match="min_p"):
        sample_tokens(model, 1, max_new_tokens=3, min_p=1.5)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        sample_tokens(model, 1, max_new_tokens=3, stop_ids=[99])
    with pytest.raises(ValueError, match="whole vocabulary"):
        sample_tokens(model, 1, max_new_tokens=3, banned_ids=range(11))
    with pytest.raises(ValueError, match="empty"):
        prefill(model, [])
    with pytest.raises(ValueError, match="not both"):
        sample_tokens(model, 1, max_new_tokens=3, prompt_ids=PROMPT, prefilled=prefill(model, PROMPT))


def _fim_model():
    tokenizer = ProteinTokenizer(fim_sentinels=3)
    model = make_model("ms", vocab_size=tokenizer.vocab_size)
    model.tokenizer = tokenizer
    return model, tokenizer


def test_infill_keeps_the_template_and_fixed_span_lengths():
    model, tokenizer = _fim_model()
    prompt = infill_prompt("MKT[?]LLV[5]W[3]", tokenizer)
    filled = sample_infill_tokens(model, prompt, 6, max_new_tokens=80, seed=1, batch_size=4, progress=False)
    assert filled == sample_infill_tokens(model, prompt, 6, max_new_tokens=80, seed=1, progress=False)
    complete = [f for f in filled if f is not None]
    assert len(complete) >= 4
    for seq in complete:
        head, rest = seq[:3], seq[3:]
        assert head == "MKT"
        cut = rest.index("LLV", 1)  # the free span has at least one residue
        assert rest[cut + 3 + 5] == "W" and len(rest) == cut + 3 + 5 + 1 + 3
    # Too few tokens to close every span: no sample, rather than a cut one.
    assert sample_infill_tokens(model, prompt, 2, max_new_tokens=8, progress=False) == [None, None]


def test_infill_spans_end_with_the_next_sentinel_fed_as_input(monkeypatch):
    """The rule emits `<fim_2>` to close span 1, feeds it, and ends the row at `<eos>`."""
    model, tokenizer = _fim_model()
    prompt = infill_prompt("AC[2]DE[?]", tokenizer)
    fed = []
    step = model.step

    def spy(ids, state, position_ids=None):
        fed.append(ids.clone())
        return step(ids, state, position_ids=position_ids)

    monkeypatch.setattr(model, "step", spy)
    (seq,) = sample_infill_tokens(model, prompt, 1, max_new_tokens=40, seed=0, progress=False)
    tokens = torch.cat(fed).tolist()
    assert tokens[2] == tokenizer.sentinel_ids[1]  # span 1's two residues, then <fim_2>
    assert not set(tokens[:2] + tokens[3:]) & set(tokenizer.special_ids)
    assert seq.startswith("AC") and seq[4:6] == "DE" and len(seq) == 6 + len(tokens) - 3


# Probabilities 0.5, 0.3, 0.15, 0.05.
LOGITS = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()


@pytest.mark.parametrize(
    "kwargs, kept",
    [
        ({}, [0, 1, 2, 3]),
        ({"top_k": 2}, [0, 1]),
        ({"top_k": 10}, [0, 1, 2, 3]),
        ({"top_p": 0.79}, [0, 1]),
        ({"top_p": 0.81}, [0, 1, 2]),
        ({"top_p": 0.0}, [0]),
        ({"min_p": 0.29}, [0, 1, 2]),  # keeps p >= 0.145
        ({"min_p": 0.31}, [0, 1]),  # keeps p >= 0.155
        ({"min_p": 1.0}, [0]),
        ({"top_k": 3, "min_p": 0.05}, [0, 1, 2]),
        ({"temperature": 0.5, "min_p": 0.1}, [0, 1]),  # p ~ 0.685, 0.247, 0.062, 0.007 at T = 0.5
        ({"temperature": 0.5, "min_p": 0.09}, [0, 1, 2]),
        ({"temperature": 0, "top_k": 3}, [0]),  # greedy
    ],
)
def test_filters_keep_the_expected_tokens(kwargs, kept):
    out = filter_logits(LOGITS, **kwargs)
    assert torch.isfinite(out[0]).nonzero()[:, 0].tolist() == kept


def test_temperature_scales_logits_and_ties_survive_top_k():
    torch.testing.assert_close(filter_logits(LOGITS, temperature=2.0), LOGITS / 2)
    tied = torch.tensor([[1.0, 3.0, 3.0, 0.0]])
    assert torch.isfinite(filter_logits(tied, top_k=1)[0]).tolist() == [False, True, True, False]
    # Greedy keeps only the first of tied tokens, so that no draw can choose between them.
    assert torch.isfinite(filter_logits(tied, temperature=0)[0]).tolist() == [False, True, False, False]


def test_sampling_inverts_the_cdf():
    logits = LOGITS.expand(5, -1)
    uniforms = torch.tensor([0.0, 0.49, 0.51, 0.81, 0.99])
    assert sample_from_logits(logits, uniforms).tolist() == [0, 0, 1, 2, 3]
    # Tokens of probability 0 are never drawn, at either end of [0, 1).
    masked = torch.tensor([[float("-inf"), 0.0, 0.0, float("-inf")]]).expand(2, -1)
    assert sample_from_logits(masked, torch.tensor([0.0, 1 - 1e-16])).tolist() == [1, 2]


def _assert_same(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def _tensors(state) -> list[torch.Tensor]:
    if state is None:  # e.g. an mLSTM block's position without RoPE
        return []
    if isinstance(state, torch.Tensor):
        return [state]
    return [t for s in state for t in _tensors(s)]
