"""In-context gain: how much a causal model's prediction of a held-out member of a set (a protein
family, a molecule set) improves with the number of other members read before it.

The prompt is the layout of in-context training (`biolm.data.layout`):
`<bos> m1 <sep> ... mk <sep>`, positions restarting at 0 on each delimiter, then the scored member at
positions 1, 2, ... For one context order, the prompts of every size k are prefixes of each other, so
the context is read once, in pieces, and every held-out member is scored from the state after k
members (k = 0 is the prompt `<bos>` alone). The score of a member is the summed negative
log-likelihood of its own tokens (residues or SMILES tokens, not the delimiter that would end it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from biolm.data.layout import DEFAULT_LAYOUT, Layout, model_layout
from biolm.evaluation.options import DEFAULT_SIZES
from biolm.inference.decoding import repeat_state
from biolm.inference.sample_tokens import check_can_generate
from biolm.models import BioLM
from biolm.tokenizers.base import PAD_ID


def split_members(name: str, n: int, held_out: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a set's held-out members and of its context pool, from a seed and the set's name.

    At most half of the members are held out, so the pool is never smaller than the held-out part.

    Returns:
        (held-out indices, pool indices), disjoint, together `range(n)`.
    """
    order = np.random.default_rng([seed, *name.encode()]).permutation(n)
    count = min(held_out, n // 2)
    return order[:count], order[count:]


@torch.no_grad()
def score_targets(
    model: BioLM,
    state,
    logits: torch.Tensor,
    targets: Sequence[np.ndarray],
    batch_rows: int = 32,
    *,
    layout: Layout = DEFAULT_LAYOUT,
    prompt_tokens: int = 0,
):
    """[T] summed NLL (nats, float64) of each target member read after a prompt.

    Args:
        model: a causal `BioLM`.
        state: the model state after the prompt (batch 1).
        logits: [vocab] next-token logits after the prompt's last token.
        targets: [L_t] token ids of each member (L_t >= 1), scored at the positions of the member the
            prompt opens (`Layout.next_positions`: 1..L_t in biolm's layout).
        batch_rows: members scored together.
        layout: the in-context layout; prompt_tokens: the prompt's length (for layouts whose positions
            run on through the stream).
    """
    device = next(model.parameters()).device
    out = np.zeros(len(targets))
    for start in range(0, len(targets), batch_rows):
        rows = targets[start : start + batch_rows]
        n, width = len(rows), max(len(t) for t in rows)
        ids = torch.full((n, width), PAD_ID, dtype=torch.long)
        for r, t in enumerate(rows):
            ids[r, : len(t)] = torch.as_tensor(np.asarray(t, dtype=np.int64))
        positions = torch.from_numpy(layout.next_positions(prompt_tokens, width)).expand(n, width)
        batch_state = repeat_state(state, n)
        # Right padding cannot change earlier positions of a causal model; padded targets are masked.
        step = model(ids.to(device), state=batch_state, position_ids=positions.to(device)).logits
        predicted = torch.cat([logits.to(step)[None, None].expand(n, 1, -1), step[:, :-1]], dim=1)
        logp = torch.log_softmax(predicted.double(), dim=-1)
        picked = logp.gather(-1, ids.to(device)[..., None])[..., 0]
        keep = (
            torch.arange(width, device=device)[None]
            < torch.tensor([len(t) for t in rows], device=device)[:, None]
        )
        out[start : start + n] = -(picked * keep).sum(dim=1).cpu().numpy()
    return out


@torch.no_grad()
def nll_by_context_size(
    model: BioLM, context: Sequence[np.ndarray], targets: Sequence[np.ndarray], sizes: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Score every target after the first k context members, for each k in `sizes`.

    Args:
        model: a causal `BioLM`.
        context: [L_j] token ids of the context members, in prompt order.
        targets: [L_t] token ids of the members to score (none of them in `context`).
        sizes: numbers of context members k, each at most `len(context)`.

    Returns:
        nll [K, T] (summed NLL of each target after k members, float64) and prompt lengths [K] (tokens).
    """
    check_can_generate(model)
    if any(k < 0 or k > len(context) for k in sizes):
        raise ValueError(f"context sizes {list(sizes)} outside 0..{len(context)}")
    device = next(model.parameters()).device
    layout = model_layout(model)
    chunks = layout.chunks(context)
    nll = np.zeros((len(sizes), len(targets)))
    lengths = np.zeros(len(sizes), dtype=np.int64)
    state, logits, read, length = None, None, -1, 0  # read: context members in the state (-1: none)
    for index in np.argsort(sizes, kind="stable"):
        k = int(sizes[index])
        if k > read:
            ids = np.concatenate([c.ids for c in chunks[read + 1 : k + 1]])
            positions = np.concatenate([c.positions for c in chunks[read + 1 : k + 1]])
            out = model(
                torch.from_numpy(ids)[None].to(device),
                state=state,
                position_ids=torch.from_numpy(positions)[None].to(device),
            )
            state, logits, read, length = out.state, out.logits[0, -1].float(), k, length + len(ids)
        nll[index] = score_targets(model, state, logits, targets, layout=layout, prompt_tokens=length)
        lengths[index] = length
    return nll, lengths


@dataclass
class GainCurve:
    """Held-out members' perplexity against the number of context members, per set.

    Attributes:
        sizes: [K] context sizes k.
        names: [F] set names.
        nll: [F, K] summed NLL (nats) over the held-out members and context draws; nan where a set
            has fewer than k members in its pool.
        tokens: [F, K] the tokens scored for those sums.
        prompt_tokens: [F, K] mean prompt length (tokens) at each k.
        held_out: [F] held-out members per set; draws: context orders per set.
    """

    sizes: list[int]
    names: list[str]
    nll: np.ndarray
    tokens: np.ndarray
    prompt_tokens: np.ndarray
    held_out: list[int]
    draws: int

    def perplexity(self) -> np.ndarray:
        """[F, K] per-token perplexity of each set's held-out members."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.exp(self.nll / self.tokens)

    def pooled_perplexity(self, families: np.ndarray | None = None) -> np.ndarray:
        """[K] per-token perplexity over the sets measured at every size (or over `families`, a bool
        mask over the sets), so each point of the curve has the same members."""
        keep = np.isfinite(self.nll).all(axis=1) if families is None else families
        if not keep.any():
            return np.full(len(self.sizes), np.nan)
        return np.exp(self.nll[keep].sum(axis=0) / self.tokens[keep].sum(axis=0))

    def measured_at(self, k: int) -> np.ndarray:
        """[F] bool: sets whose pool had at least k members."""
        return np.isfinite(self.nll[:, self.sizes.index(k)])

    def to_json(self) -> dict:
        """Plain lists for metrics.json (nan for sizes a set could not fill)."""
        ppl = self.perplexity()
        return {
            "sizes": self.sizes,
            "pooled_perplexity": self.pooled_perplexity().tolist(),
            "sets": {
                name: {
                    "perplexity": ppl[f].tolist(),
                    "prompt_tokens": self.prompt_tokens[f].tolist(),
                    "held_out": self.held_out[f],
                }
                for f, name in enumerate(self.names)
            },
            "draws": self.draws,
        }


def gain_curve(
    model: BioLM,
    sets: Mapping[str, Sequence[np.ndarray]],
    sizes: Sequence[int] = DEFAULT_SIZES,
    *,
    held_out: int = 16,
    draws: int = 2,
    seed: int = 0,
    progress: bool = True,
) -> GainCurve:
    """The in-context gain curve of `model` on each set of `sets`.

    Each set's members are split by `split_members` into held-out members (scored) and a pool; for
    each of `draws` seeded orders of the pool, the held-out members are scored after its first k
    members for every k in `sizes` that the pool can fill.

    Args:
        model: a causal `BioLM`.
        sets: set name -> [L_j] token ids of its distinct members (no delimiters).
        sizes: context sizes k (0 = `<bos>` alone).
        held_out: members held out per set (at most half of the set).
        draws: context orders per set.
        seed: seeds the split and the orders.
        progress: a progress bar over sets and draws.
    """
    sizes = sorted({int(k) for k in sizes})
    names = list(sets)
    nll = np.full((len(names), len(sizes)), np.nan)
    tokens = np.zeros((len(names), len(sizes)))
    prompt_tokens = np.full((len(names), len(sizes)), np.nan)
    n_held = []
    with tqdm(total=len(names) * draws, desc="context gain", unit="draw", disable=not progress) as bar:
        for f, name in enumerate(names):
            members = list(sets[name])
            held, pool = split_members(name, len(members), held_out, seed)
            n_held.append(len(held))
            fits = [j for j, k in enumerate(sizes) if k <= len(pool)]
            if not len(held) or not fits:
                bar.update(draws)
                continue
            targets = [members[i] for i in held]
            rng = np.random.default_rng([seed, 1, *name.encode()])
            total, lengths = np.zeros(len(fits)), np.zeros(len(fits))
            for _ in range(draws):
                order = rng.permutation(pool)
                scores, used = nll_by_context_size(
                    model, [members[i] for i in order], targets, [sizes[j] for j in fits]
                )
                total += scores.sum(axis=1)
                lengths += used
                bar.update(1)
            nll[f, fits] = total
            tokens[f, fits] = draws * sum(len(t) for t in targets)
            prompt_tokens[f, fits] = lengths / draws
    return GainCurve(sizes, names, nll, tokens, prompt_tokens, n_held, draws)


def derived_seed(seed: int, name: str, *numbers: int) -> int:
    """A 31-bit seed for one draw of one set: independent draws for different names and numbers."""
    return int(np.random.default_rng([seed, *numbers, *name.encode()]).integers(1 << 31))
