"""Decoding engine: prefill a prompt chunk by chunk, then sample token by token from the state.

The prompt is laid out as the in-context training data is (`biolm.data.packing.pack_members`,
`biolm.data.molsets`): `<bos> m1 <sep> m2 <sep> ...`, each member starting at its delimiter with
position 0. Decoding continues that layout: a generated token's position is one more than the previous
token's, restarting at 0 after a delimiter, so models with RoPE attention (`t` blocks) see positions as
in training. The other blocks ignore positions.

Memory: the recurrent blocks (m, s, a, x) carry a state of fixed size, so neither the prompt length
(read `chunk_len` tokens at a time) nor the number of generated tokens changes the memory of decoding,
except for the generated ids themselves (8 bytes each). Softmax attention blocks (`t`) keep a KV cache
that grows by one entry per token, prompt and generated alike.

Reproducibility: sample `j` draws its randomness from its own stream, seeded by `(seed, j)`, so the same
seed gives the same samples whatever `batch_size` is, up to floating-point differences between batched
and unbatched matrix products (they change a token only when a draw falls within about 1e-6 of a
boundary between two tokens' probability intervals, and then the sample diverges from there).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from biolm.errors import InputError
from biolm.inference.sampling import SampleStreams, filter_logits, sample_from_logits
from biolm.models import BioLM
from biolm.tokenizers.base import BOS_ID, EOS_ID, NUM_SPECIAL, SEP_ID

# Tokens that start a member: positions restart at 0 on them.
DELIMITER_IDS = (BOS_ID, SEP_ID)


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


def member_positions(ids: np.ndarray) -> np.ndarray:
    """Positions restarting at 0 on every `<bos>`/`<sep>`, counting from 0 before the first one.

    Args:
        ids: [L] token ids.

    Returns:
        [L] int64 positions, e.g. `<bos> A B <sep> C` -> 0 1 2 0 1.
    """
    index = np.arange(len(ids))
    starts = np.where(np.isin(ids, DELIMITER_IDS), index, 0)
    return index - np.maximum.accumulate(starts) if len(ids) else index


def check_can_generate(model: BioLM) -> None:
    """Raise a one-line `InputError` for a model that has no recurrent state to decode from."""
    if model.config.stateless:
        mode = "bidirectional" if model.config.bidirectional else "reverse-complement equivariant"
        raise InputError(
            f"cannot generate from a {mode} model: it reads each sequence from both ends (a masked "
            "model, for embedding), so it has no state to continue a sequence; use a causal model"
        )


@torch.no_grad()
def prefill(model: BioLM, prompt_ids: Any, position_ids: Any = None, chunk_len: int = 4096) -> Prefill:
    """Read a prompt `chunk_len` tokens at a time through the chunkwise kernels, carrying the state.

    Args:
        model: a causal `BioLM`.
        prompt_ids: [L] token ids (list, numpy array or tensor), L >= 1, usually starting with `<bos>`.
        position_ids: [L] RoPE positions, or None for `member_positions(prompt_ids)`.
        chunk_len: tokens per forward call; bounds the activations' memory whatever L is.

    Returns:
        The `Prefill`: state, last logits, next position.

    Raises:
        InputError: a bidirectional or RC-equivariant model.
        ValueError: an empty prompt, or positions not of the prompt's length.
    """
    check_can_generate(model)
    ids = _as_ids(prompt_ids)
    if len(ids) == 0:
        raise ValueError("the prompt is empty; give at least one token (e.g. <bos>)")
    positions = member_positions(ids) if position_ids is None else _as_ids(position_ids)
    if positions.shape != ids.shape:
        raise ValueError(f"position_ids has {len(positions)} entries for a prompt of {len(ids)} tokens")
    if chunk_len < 1:
        raise ValueError(f"chunk_len must be at least 1, got {chunk_len}")
    device = next(model.parameters()).device
    ids_t, pos_t = torch.from_numpy(ids).to(device), torch.from_numpy(positions).to(device)
    state, logits = None, None
    for start in range(0, len(ids), chunk_len):
        piece = slice(start, start + chunk_len)
        out = model(ids_t[None, piece], state=state, position_ids=pos_t[None, piece])
        state, logits = out.state, out.logits[0, -1].float()
    return Prefill(state, logits, int(positions[-1]) + 1, len(ids))


@torch.no_grad()
def generate(
    model: BioLM,
    num_samples: int,
    *,
    max_new_tokens: int,
    prompt_ids: Any = None,
    prompt_position_ids: Any = None,
    prefilled: Prefill | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
    stop_ids: Sequence[int] | None = None,
    banned_ids: Sequence[int] | None = None,
    seed: int = 0,
    batch_size: int = 64,
    progress: bool = True,
) -> list[np.ndarray]:
    """Sample `num_samples` continuations of one prompt, `batch_size` at a time.

    The prompt is prefilled once (or `prefilled` is reused, e.g. across calls with other settings) and
    its state repeated for each batch. A row stops at its first stop token or after `max_new_tokens`;
    stopped rows leave the batch, which decodes until every row is done.

    Args:
        model: a causal `BioLM` (its `tokenizer` attribute, if any, names the special tokens).
        num_samples: number of samples.
        max_new_tokens: most tokens generated per sample, the stop token included.
        prompt_ids: [L] ids to continue; None: just `<bos>`. Not together with `prefilled`.
        prompt_position_ids: [L] positions of the prompt; None: restarting at each `<bos>`/`<sep>`.
        prefilled: the result of `prefill`, to skip reading the prompt again.
        temperature, top_k, top_p, min_p: logit filters, see `biolm.inference.sampling.filter_logits`.
        stop_ids: tokens that end a sample (not included in it); None: `<eos>` and `<sep>`.
        banned_ids: tokens never sampled; None: every special token that is not a stop token
            (`<pad>`, `<bos>`, `<mask>`, `<unk>`, protein FIM sentinels, ...).
        seed: samples depend only on the seed and their index (not on `batch_size`, see module doc).
        batch_size: rows decoded together.
        progress: show a progress bar of generated tokens.

    Returns:
        One int64 array of token ids per sample, without the prompt and the stop token.

    Raises:
        InputError: a bidirectional or RC-equivariant model.
        ValueError: bad counts, filters or token sets.
    """
    check_can_generate(model)
    if num_samples < 0 or max_new_tokens < 0 or batch_size < 1:
        raise ValueError(
            f"need num_samples >= 0, max_new_tokens >= 0 and batch_size >= 1; got {num_samples}, "
            f"{max_new_tokens}, {batch_size}"
        )
    filter_logits(torch.zeros(1, 2), temperature, top_k, top_p, min_p)  # validates the settings now
    if prefilled is not None and (prompt_ids is not None or prompt_position_ids is not None):
        raise ValueError("pass either prefilled or prompt_ids/prompt_position_ids, not both")
    if prefilled is None:
        prompt = [BOS_ID] if prompt_ids is None else prompt_ids
        prefilled = prefill(model, prompt, prompt_position_ids)
    vocab = prefilled.logits.shape[-1]
    stop, banned = _token_sets(model, vocab, stop_ids, banned_ids)

    rule = StopRule(stop, banned)
    filters = dict(temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p)
    return decode(
        model, prefilled, num_samples, lambda n: rule, max_new_tokens, filters, seed, batch_size, progress
    )


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
    bar = tqdm(total=total, unit="tok", unit_scale=True, desc="generating", disable=not progress)
    for first in range(0, num_samples, batch_size):
        rows = list(range(first, min(first + batch_size, num_samples)))
        rule = make_rule(len(rows))
        samples += _decode_batch(model, prefilled, rows, max_new_tokens, rule, filters, seed, bar)
    bar.close()
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
    n = len(rows)
    device = next(model.parameters()).device
    state = _map_state(prefilled.state, lambda t: t.expand(n, *t.shape[1:]).contiguous())
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
            state = _map_state(state, lambda s, k=keep_t: s.index_select(0, k))
        if len(alive) == 0 or t == max_new_tokens - 1:
            bar.update(int((max_new_tokens - 1 - lengths.clip(max=max_new_tokens - 1)).sum()))
            break
        # The layout of the training data: a delimiter starts a new member at position 0.
        fed_position = torch.where(torch.isin(tokens, torch.tensor(DELIMITER_IDS)), 0, position)
        position = fed_position + 1
        logits, state = model.step(tokens.to(device), state, position_ids=fed_position.to(device))
    return [tokens_out[i, : lengths[i]].copy() for i in range(n)]


def _token_sets(
    model: BioLM, vocab: int, stop_ids: Sequence[int] | None, banned_ids: Sequence[int] | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stop ids [K] and a [vocab] bool mask of banned ids, with the defaults of `generate`."""
    tokenizer = getattr(model, "tokenizer", None)
    specials = list(tokenizer.special_ids) if tokenizer is not None else list(range(NUM_SPECIAL))
    stop = [EOS_ID, SEP_ID] if stop_ids is None else [int(i) for i in stop_ids]
    banned_list = [i for i in specials if i not in stop] if banned_ids is None else list(banned_ids)
    for name, ids in (("stop_ids", stop), ("banned_ids", banned_list)):
        bad = [i for i in ids if not 0 <= int(i) < vocab]
        if bad:
            raise ValueError(f"{name} {bad} outside the vocabulary (0..{vocab - 1})")
    banned = torch.zeros(vocab, dtype=torch.bool)
    banned[torch.as_tensor(banned_list, dtype=torch.long)] = True
    if banned.all():
        raise ValueError("banned_ids cover the whole vocabulary: nothing left to sample")
    return torch.tensor(stop, dtype=torch.long), banned


def _as_ids(ids: Any) -> np.ndarray:
    """A 1-D int64 numpy array from a list, array or tensor of ids."""
    if isinstance(ids, torch.Tensor):
        ids = ids.detach().cpu().numpy()
    arr = np.asarray(ids)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise ValueError(f"expected a 1-D sequence of integer ids, got {arr.dtype} of shape {arr.shape}")
    return arr.astype(np.int64)


def _map_state(state: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """Apply `fn` to every tensor of a (nested tuple/list/NamedTuple) model state."""
    if isinstance(state, torch.Tensor):
        return fn(state)
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        return type(state)(*(_map_state(s, fn) for s in state))
    if isinstance(state, (list, tuple)):
        return type(state)(_map_state(s, fn) for s in state)
    return state


def state_numel(state: Any) -> int:
    """Total number of elements of the tensors of a model state (its memory, in elements)."""
    sizes: list[int] = []
    _map_state(state, lambda t: sizes.append(t.numel()) or t)
    return sum(sizes)


@torch.no_grad()
def sample(
    model: BioLM,
    num_samples: int,
    length: int,
    *,
    prompt: str = "",
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
    seed: int = 0,
    batch_size: int = 64,
    progress: bool = True,
) -> list[str]:
    """Sample `num_samples` texts of exactly `length` new tokens after `<bos>` + `prompt`.

    A thin wrapper over `generate` that never stops early: special tokens are never sampled.

    Returns:
        The generated continuations (prompt not included), decoded to text.
    """
    tok = model.tokenizer
    ids = generate(
        model,
        num_samples,
        max_new_tokens=length,
        prompt_ids=[tok.bos_id, *tok.encode(prompt, record="prompt")],
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        min_p=min_p,
        stop_ids=[],
        banned_ids=tok.special_ids,
        seed=seed,
        batch_size=batch_size,
        progress=progress,
    )
    return [tok.decode(row) for row in ids]
