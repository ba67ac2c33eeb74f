"""The decoding loop of `biolm.inference.sample_tokens`: batched sampling from a prefilled state under
a rule that says what may be sampled and when a row ends (`StopRule` for plain generation, an infill
rule for fill-in-the-middle).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from biolm.data.layout import model_layout
from biolm.inference.sampling import SampleStreams, filter_logits, sample_from_logits
from biolm.models import BioLM


@dataclass
class Prefill:
    """A model's state after reading a prompt (batch 1), ready to decode from.

    Attributes:
        state: per-block state after the last prompt token, batch 1.
        logits: [vocab_size] float32 next-token logits after the last prompt token.
        position: RoPE position of the next token, i.e. within the member being written.
        length: number of prompt tokens read.
    """

    state: list[Any]
    logits: torch.Tensor
    position: int
    length: int


class StopRule:
    """What may be sampled and when a row ends; this one: never `banned`, end at a stop token.

    `decode` asks a rule, at every step, for the banned tokens of the rows still decoding, lets it
    override the sampled tokens (e.g. to force an end), and asks which rows have ended. Rows are given
    as indices into the batch (`alive`), so a rule can keep per-row state in arrays of the batch size.
    """

    def __init__(self, stop: torch.Tensor, banned: torch.Tensor) -> None:
        self.stop, self._banned = stop, banned

    def banned(self, alive: np.ndarray) -> torch.Tensor:
        """[V] or [len(alive), V] bool: tokens that must not be sampled for these rows."""
        return self._banned

    def choose(self, alive: np.ndarray, tokens: torch.Tensor) -> torch.Tensor:
        """The tokens [len(alive)] to emit, given the sampled ones."""
        return tokens

    def ended(self, alive: np.ndarray, tokens: torch.Tensor) -> np.ndarray:
        """[len(alive)] bool: rows whose token ends them (that token is not part of the sample)."""
        return torch.isin(tokens, self.stop).numpy()


class InfillRule(StopRule):
    """Fill-in-the-middle decoding (`biolm.inference.infill.InfillPrompt`): spans one after another.

    Span j ends with its end token (`<fim_{j+2}>`, or `<eos>` after the last span), which is then fed
    as the input that opens span j + 1, as in the training format. A span has at least one residue (as
    in training); a span of fixed length n gets exactly n, then its end token is forced. Special tokens
    other than the current span's end are never sampled. A row ends with the last span's end token.
    """

    def __init__(
        self, end_ids: Sequence[int], span_lengths: Sequence[int | None], banned: torch.Tensor, rows: int
    ) -> None:
        super().__init__(torch.tensor([], dtype=torch.long), banned)
        self.end_ids = torch.tensor(list(end_ids), dtype=torch.long)
        self.fixed = np.array([-1 if n is None else n for n in span_lengths])
        self.span = np.zeros(rows, dtype=np.int64)  # per batch row: the span being written
        self.count = np.zeros(rows, dtype=np.int64)  # and its residues so far

    def _end_allowed(self, alive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        span, count = self.span[alive], self.count[alive]
        fixed = self.fixed[span]
        return (count >= 1) & ((fixed < 0) | (count == fixed)), (fixed >= 0) & (count == fixed)

    def banned(self, alive: np.ndarray) -> torch.Tensor:
        mask = self._banned.expand(len(alive), -1).clone()
        allowed, _ = self._end_allowed(alive)
        rows = torch.from_numpy(np.flatnonzero(allowed))
        mask[rows, self.end_ids[self.span[alive][allowed]]] = False
        return mask

    def choose(self, alive: np.ndarray, tokens: torch.Tensor) -> torch.Tensor:
        _, forced = self._end_allowed(alive)
        tokens = tokens.clone()
        tokens[torch.from_numpy(forced)] = self.end_ids[self.span[alive][forced]]
        return tokens

    def ended(self, alive: np.ndarray, tokens: torch.Tensor) -> np.ndarray:
        span = self.span[alive]
        is_end = (tokens == self.end_ids[span]).numpy()
        done = is_end & (span == len(self.fixed) - 1)
        self.count[alive] += 1
        self.count[alive[is_end]] = 0
        self.span[alive[is_end & ~done]] += 1
        return done


def decode(
    model: BioLM,
    prefilled: Prefill,
    num_samples: int,
    make_rule: Callable[[int], StopRule],
    max_new_tokens: int,
    filters: dict,
    seed: int = 0,
    batch_size: int = 64,
    progress: bool = False,
) -> list[np.ndarray]:
    """Decode `num_samples` rows from one prefilled state, `batch_size` at a time, under a rule.

    Args:
        model: a causal `BioLM`.
        prefilled: the prompt's state (batch 1), repeated for each batch.
        num_samples: rows to decode.
        make_rule: builds the rule of a batch from its number of rows (see `StopRule`).
        max_new_tokens: most tokens per row, the ending token included.
        filters: keyword arguments of `filter_logits` (temperature, top_k, top_p, min_p).
        seed: sample j draws from the stream seeded by (seed, j).
        batch_size: rows decoded together.
        progress: show a progress bar of generated tokens.

    Returns:
        Per row, the emitted tokens without the one that ended it; a row that reached `max_new_tokens`
        without ending has exactly `max_new_tokens` tokens.
    """
    samples: list[np.ndarray] = []
    total = num_samples * max_new_tokens
    # Closed however decoding ends: an open bar's line would run into the error message after it.
    with tqdm(total=total, unit="tok", unit_scale=True, desc="generating", disable=not progress) as bar:
        for first in range(0, num_samples, batch_size):
            rows = list(range(first, min(first + batch_size, num_samples)))
            rule = make_rule(len(rows))
            samples += _decode_batch(model, prefilled, rows, max_new_tokens, rule, filters, seed, bar)
    return samples


def _decode_batch(
    model: BioLM,
    prefilled: Prefill,
    rows: list[int],
    max_new_tokens: int,
    rule: StopRule,
    filters: dict,
    seed: int,
    bar: tqdm,
) -> list[np.ndarray]:
    """Decode the samples numbered `rows` from the prefilled state; see `decode`."""
    layout = model_layout(model)  # a generated delimiter restarts positions, as the model was trained
    n = len(rows)
    device = next(model.parameters()).device
    state = repeat_state(prefilled.state, n)
    logits = prefilled.logits[None].expand(n, -1)
    position = torch.full((n,), prefilled.position, dtype=torch.long)
    streams = SampleStreams(seed, rows)
    alive = np.arange(n)  # batch rows still decoding, in the order of the model's state
    lengths = np.full(n, max_new_tokens)
    tokens_out = np.zeros((n, min(max_new_tokens, 256)), dtype=np.int64)  # grown by doubling
    for t in range(max_new_tokens):
        # Every row draws its uniform each step, stopped or not, so a sample's stream never depends on
        # the other rows of its batch.
        uniforms = torch.from_numpy(streams.next()[alive])
        scores = logits.double().cpu().masked_fill(rule.banned(alive), float("-inf"))
        tokens = rule.choose(alive, sample_from_logits(filter_logits(scores, **filters), uniforms))
        stopped = rule.ended(alive, tokens)
        if t == tokens_out.shape[1]:
            tokens_out = np.concatenate([tokens_out, np.zeros_like(tokens_out)], axis=1)
        tokens_out[alive, t] = tokens.numpy()
        lengths[alive[stopped]] = t
        bar.update(len(alive))
        if stopped.any():
            keep = np.flatnonzero(~stopped)
            alive, tokens, position = alive[keep], tokens[keep], position[keep]
            keep_t = torch.from_numpy(keep).to(device)
            state = map_state(state, lambda s, k=keep_t: s.index_select(0, k))
        if len(alive) == 0 or t == max_new_tokens - 1:
            bar.update(int((max_new_tokens - 1 - lengths.clip(max=max_new_tokens - 1)).sum()))
            break
        # The layout of the training data: a delimiter starts a new member at position 0.
        delimiters = torch.tensor(layout.delimiter_ids)
        fed_position = torch.where(torch.isin(tokens, delimiters), 0, position)
        position = fed_position + 1
        logits, state = model.step(tokens.to(device), state, position_ids=fed_position.to(device))
    return [tokens_out[i, : lengths[i]].copy() for i in range(n)]


def map_state(state: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """Apply `fn` to every tensor of a (nested tuple/list/NamedTuple) model state."""
    if isinstance(state, torch.Tensor):
        return fn(state)
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        return type(state)(*(map_state(s, fn) for s in state))
    if isinstance(state, (list, tuple)):
        return type(state)(map_state(s, fn) for s in state)
    return state


def repeat_state(state: Any, n: int) -> Any:
    """A batch-1 model state repeated to batch n (copies, so that each row can advance on its own)."""
    return map_state(state, lambda t: t.expand(n, *t.shape[1:]).contiguous())


def state_numel(state: Any) -> int:
    """Total number of elements of the tensors of a model state (its memory, in elements)."""
    sizes: list[int] = []
    map_state(state, lambda t: sizes.append(t.numel()) or t)
    return sum(sizes)
