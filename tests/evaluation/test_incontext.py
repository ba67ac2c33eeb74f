"""The in-context gain curve: prompts in the training layout, scores equal to one forward pass over
prompt + member, held-out splits, and the curve's bookkeeping."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from biolm.data.layout import DEFAULT_LAYOUT
from biolm.data.packing import pack_members
from biolm.evaluation.incontext import gain_curve, nll_by_context_size, split_members
from biolm.tokenizers import get_tokenizer
from tests.inference.helpers import tiny_model

PROTEIN = get_tokenizer("protein")


def prompt_ids(members):
    """(ids, positions) of the prompt that opens the member after `members`."""
    prompt = DEFAULT_LAYOUT.prompt(members)
    return prompt.ids, prompt.positions


def _members(n: int, seed: int = 0, low: int = 3, high: int = 9) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    residues = [PROTEIN.token_to_id(a) for a in "ACDEFGHIKLMNPQRSTVWY"]
    return [rng.choice(residues, int(rng.integers(low, high))).astype(np.int64) for _ in range(n)]


def _explicit_nll(model, context: list[np.ndarray], target: np.ndarray) -> float:
    """-log p(target tokens | prompt) from one forward pass over prompt + target."""
    ids, positions = prompt_ids(context)
    full = np.concatenate([ids, target])
    pos = np.concatenate([positions, np.arange(1, len(target) + 1)])
    with torch.no_grad():
        logits = model(torch.from_numpy(full)[None], position_ids=torch.from_numpy(pos)[None]).logits[0]
    logp = torch.log_softmax(logits.double(), dim=-1)
    start = len(ids)
    picked = [logp[start - 1 + j, int(t)] for j, t in enumerate(target)]
    return -float(sum(picked))


def test_prompt_is_the_training_pack_layout():
    members = _members(5)
    ids, positions = prompt_ids(members)
    budget = 1 + sum(len(m) + 1 for m in members)
    example, count = pack_members([*members, np.zeros(0, dtype=np.int64)], budget)
    assert count == len(members) + 1
    np.testing.assert_array_equal(ids, example["input_ids"].numpy())
    np.testing.assert_array_equal(positions, example["position_ids"].numpy())


@pytest.mark.parametrize("pattern", ["m", "t", "ms"])
def test_scores_equal_one_forward_pass_over_prompt_and_member(pattern):
    model = tiny_model(PROTEIN, pattern=pattern, seed=1)
    context, targets = _members(6, seed=2), _members(3, seed=3)
    sizes = [4, 0, 1, 6]
    nll, lengths = nll_by_context_size(model, context, targets, sizes)
    for row, k in enumerate(sizes):
        assert lengths[row] == 1 + sum(len(m) + 1 for m in context[:k])
        for col, target in enumerate(targets):
            expected = _explicit_nll(model, context[:k], target)
            assert nll[row, col] == pytest.approx(expected, rel=1e-4)


def test_scores_depend_on_the_context():
    # The test above could pass with a scorer that ignores the state; this one could not.
    model = tiny_model(PROTEIN, seed=1)
    context, targets = _members(8, seed=2), _members(2, seed=3)
    nll, _ = nll_by_context_size(model, context, targets, [0, 8])
    assert not np.allclose(nll[0], nll[1])


def test_sizes_beyond_the_context_are_refused():
    model = tiny_model(PROTEIN)
    with pytest.raises(ValueError, match="outside"):
        nll_by_context_size(model, _members(2), _members(1), [3])


def test_split_members_is_disjoint_seeded_and_at_most_half():
    held, pool = split_members("PF00001", 10, 16, seed=0)
    assert len(held) == 5 and len(pool) == 5
    assert sorted([*held, *pool]) == list(range(10))
    again = split_members("PF00001", 10, 16, seed=0)
    np.testing.assert_array_equal(held, again[0])
    other = split_members("PF00002", 10, 16, seed=0)
    assert not np.array_equal(held, other[0])  # the name is part of the seed
    held3, _ = split_members("PF00001", 10, 3, seed=0)
    assert len(held3) == 3


def test_gain_curve_bookkeeping():
    model = tiny_model(PROTEIN, seed=0)
    sets = {"big": _members(12, seed=4), "small": _members(6, seed=5)}
    curve = gain_curve(model, sets, [0, 2, 8], held_out=3, draws=2, seed=0, progress=False)
    assert curve.names == ["big", "small"] and curve.held_out == [3, 3]
    # "small" has 3 members in its pool: k = 8 is not measured there.
    assert curve.measured_at(8).tolist() == [True, False]
    assert np.isnan(curve.nll[1, 2]) and np.isfinite(curve.nll[0]).all()
    held, _ = split_members("big", 12, 3, seed=0)
    assert curve.tokens[0, 0] == 2 * sum(len(sets["big"][i]) for i in held)
    # Pooled over the sets measured at every size: only "big".
    np.testing.assert_allclose(curve.pooled_perplexity(), curve.perplexity()[0])
    assert curve.prompt_tokens[0, 0] == 1
    again = gain_curve(model, sets, [0, 2, 8], held_out=3, draws=2, seed=0, progress=False)
    np.testing.assert_array_equal(curve.nll, again.nll)
    json = curve.to_json()
    assert json["sizes"] == [0, 2, 8] and set(json["sets"]) == {"big", "small"}
