"""Decoding engine: prefill a prompt chunk by chunk, then sample token by token from the state.

The prompt is laid out as the in-context training data is (`biolm.data.layout`):
`<bos> m1 <sep> m2 <sep> ...`, each member starting at its delimiter with position 0. Decoding
continues that layout: a generated token's position is one more than the previous token's, restarting
at 0 after a delimiter, so models with RoPE attention (`t` blocks) see positions as in training. The
other blocks ignore positions.

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

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from biolm.data.layout import model_layout
from biolm.errors import InputError
from biolm.inference.arguments import check_sampling
from biolm.inference.decoding import InfillRule, Prefill, StopRule, decode, state_numel
from biolm.inference.infill import InfillPrompt, assemble_infill
from biolm.models import BioLM
from biolm.tokenizers.base import BOS_ID, EOS_ID, NUM_SPECIAL, SEP_ID

# Prefill and state_numel live in biolm.inference.decoding and are part of this module's interface.
__all__ = [
    "Prefill",
    "check_can_generate",
    "prefill",
    "sample_infill_tokens",
    "sample_tokens",
    "state_numel",
]


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
        position_ids: [L] RoPE positions, or None for the model's layout's `positions_of(prompt_ids)`.
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
    positions = model_layout(model).positions_of(ids) if position_ids is None else _as_ids(position_ids)
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
def sample_tokens(
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
        temperature, top_k, top_p, min_p: logit filters, see `biolm.inference.sampling.filter_logits`
            (checked once here, by `biolm.inference.arguments.check_sampling`).
        stop_ids: tokens that end a sample (not included in it); None: `<eos>` and `<sep>`.
        banned_ids: tokens never sampled; None: every special token that is not a stop token
            (`<pad>`, `<bos>`, `<mask>`, `<unk>`, protein FIM sentinels, ...). Ids the model has beyond
            its tokenizer's vocabulary are never sampled either.
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
    check_sampling(temperature, top_k, top_p, min_p, seed)
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


@torch.no_grad()
def sample_infill_tokens(
    model: BioLM,
    prompt: InfillPrompt,
    num_samples: int,
    *,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
    seed: int = 0,
    batch_size: int = 64,
    progress: bool = True,
) -> list[str | None]:
    """Fill the spans of an infill prompt (`biolm.inference.infill.infill_prompt`), `num_samples` times.

    The spans are generated one after another in the training format (see `InfillRule`); fixed-length
    spans get exactly their length. Arguments as for `sample_tokens`; `max_new_tokens` counts every span
    and its end token.

    Returns:
        Per sample, the whole sequence with the spans filled in, or None when the spans were not all
        closed within `max_new_tokens`.
    """
    check_can_generate(model)
    check_sampling(temperature, top_k, top_p, min_p, seed)
    prefilled = prefill(model, prompt.ids, prompt.position_ids)
    banned = torch.zeros(prefilled.logits.shape[-1], dtype=torch.bool)
    banned[torch.as_tensor(prompt.tokenizer.special_ids, dtype=torch.long)] = True
    banned[prompt.tokenizer.vocab_size :] = True  # ids beyond the tokenizer's (a padded vocabulary)

    def make_rule(rows: int) -> InfillRule:
        return InfillRule(prompt.span_end_ids, prompt.span_lengths, banned, rows)

    filters = dict(temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p)
    rows = decode(
        model, prefilled, num_samples, make_rule, max_new_tokens, filters, seed, batch_size, progress
    )
    filled: list[str | None] = []
    for ids in rows:
        if len(ids) == max_new_tokens:  # never reached the last span's end
            filled.append(None)
            continue
        cuts = np.flatnonzero(np.isin(ids, prompt.span_end_ids[:-1]))
        filled.append(assemble_infill(prompt, np.split(ids, cuts + 1)))
    return filled


def _token_sets(
    model: BioLM, vocab: int, stop_ids: Sequence[int] | None, banned_ids: Sequence[int] | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stop ids [K] and a [vocab] bool mask of banned ids, with the defaults of `sample_tokens`."""
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
    # A model built with more ids than its tokenizer has (a padded vocabulary) must not emit ids that
    # cannot be decoded.
    if tokenizer is not None:
        banned[tokenizer.vocab_size :] = True
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
