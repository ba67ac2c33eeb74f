"""Sampling from a model: prefill the prompt once, then decode token by token from the state."""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from biolm.models import BioLM


def filter_logits(
    logits: torch.Tensor, temperature: float, top_k: int | None, top_p: float | None
) -> torch.Tensor:
    """Temperature, then keep the top-k tokens, then the smallest set with probability >= top_p."""
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, index = torch.sort(logits, descending=True, dim=-1)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        # Drop a token when the tokens ranked above it already reach top_p; the best token always stays.
        drop = (cumulative - sorted_logits.softmax(-1)) >= top_p
        logits = logits.masked_fill(drop.scatter(-1, index, drop), float("-inf"))
    return logits


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
    seed: int = 0,
    batch_size: int = 64,
    progress: bool = True,
) -> list[str]:
    """Sample `num_samples` sequences of `length` new tokens after `<bos>` + `prompt`.

    Special tokens are never sampled. The prompt is read in one chunkwise pass and its state is
    shared by every sample; decoding then costs constant memory per step.

    Returns:
        The generated continuations (prompt not included), decoded to text.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    device = next(model.parameters()).device
    tok = model.tokenizer
    generator = torch.Generator(device="cpu").manual_seed(seed)
    prompt_ids = torch.tensor(
        [tok.bos_id, *tok.encode(prompt, record="prompt")], dtype=torch.long, device=device
    )
    prefill = model(prompt_ids[None], state=None)
    banned = torch.zeros(tok.vocab_size, dtype=torch.bool, device=device)
    banned[tok.special_ids] = True

    samples: list[str] = []
    bar = tqdm(
        total=num_samples * length, unit="tok", unit_scale=True, desc="generating", disable=not progress
    )
    for first in range(0, num_samples, batch_size):
        rows = min(batch_size, num_samples - first)
        state = _repeat_state(prefill.state, rows)
        logits = prefill.logits[:, -1].expand(rows, -1)
        tokens = []
        for _ in range(length):
            scores = filter_logits(
                logits.float().masked_fill(banned, float("-inf")), temperature, top_k, top_p
            )
            probs = scores.softmax(-1).cpu()
            next_ids = torch.multinomial(probs, 1, generator=generator)[:, 0].to(device)
            tokens.append(next_ids)
            logits, state = model.step(next_ids, state)
            bar.update(rows)
        generated = torch.stack(tokens, dim=1).cpu()
        samples += [tok.decode(row) for row in generated]
    bar.close()
    return samples


def _repeat_state(state, rows: int):
    """The prefilled state (batch 1) repeated for `rows` samples; works on any nesting of tuples."""
    if isinstance(state, torch.Tensor):
        return state.expand(rows, *state.shape[1:]).contiguous()
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        return type(state)(*(_repeat_state(s, rows) for s in state))
    if isinstance(state, (list, tuple)):
        return type(state)(_repeat_state(s, rows) for s in state)
    return state
