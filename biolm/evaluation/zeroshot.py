"""Zero-shot variant-effect scores of a deep mutational scan (ProteinGym CSV format).

Score of a variant = log-likelihood(mutant) - log-likelihood(wild type):

- causal models: log p(x_1 .. x_L, <eos> | <bos>), the sum of next-token log-probabilities of the
  whole sequence and its end, for the mutant and the wild type;
- masked (bidirectional / RC-equivariant, `config.stateless`) models, which have no sequence
  likelihood: the masked marginal of Meier et al. (2021), the sum over mutated positions i of
  log p(mutant_i) - log p(wild-type_i), both read at position i of the wild type with position i
  masked. One forward pass per mutated position of the wild type, shared by all variants.

The report gives Spearman's rho against DMS_score and, when the file has `DMS_score_bin`, the AUROC of
the scores for the functional (bin 1) variants, as ProteinGym does.
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from biolm.errors import InputError
from biolm.io.dms import Scan
from biolm.models import BioLM
from biolm.tokenizers import TokenizationError


def encode_sequence(model: BioLM, sequence: str, record: str, source: str) -> np.ndarray:
    """[L] token ids of a scan's sequence; a residue the tokenizer cannot read is an InputError naming
    the file and `record` (e.g. `line 12`)."""
    try:
        return model.tokenizer.encode(sequence, record=record)
    except TokenizationError as err:
        raise InputError(f"{source}: {err.reason}") from None


@torch.no_grad()
def causal_log_likelihoods(
    model: BioLM, sequences: list[np.ndarray], *, batch_tokens: int = 16384, progress: bool = False
) -> np.ndarray:
    """[N] log p(x, <eos> | <bos>) in nats (float64) of token-id arrays under a causal model."""
    device = next(model.parameters()).device
    tok = model.tokenizer
    out = np.zeros(len(sequences))
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    with tqdm(total=len(sequences), unit="seq", desc="scoring", disable=not progress) as bar:
        start = 0
        while start < len(order):
            width = len(sequences[order[start]]) + 2
            stop = start + 1
            while (
                stop < len(order) and (stop - start + 1) * (len(sequences[order[stop]]) + 2) <= batch_tokens
            ):
                stop += 1
            rows = order[start:stop]
            width = max(len(sequences[i]) for i in rows) + 2
            ids = torch.full((len(rows), width), tok.pad_id, dtype=torch.long)
            for r, i in enumerate(rows):
                seq = np.concatenate([[tok.bos_id], sequences[i], [tok.eos_id]]).astype(np.int64)
                ids[r, : len(seq)] = torch.from_numpy(seq)
            # Right padding cannot change the earlier positions of a causal model; it is masked below.
            logp = torch.log_softmax(model(ids.to(device)).logits.double(), dim=-1)[:, :-1]
            targets = ids[:, 1:].to(device)
            picked = logp.gather(-1, targets[..., None])[..., 0]
            lengths = torch.tensor([len(sequences[i]) + 1 for i in rows], device=device)
            keep = torch.arange(width - 1, device=device)[None] < lengths[:, None]
            out[rows] = (picked * keep).sum(dim=1).cpu().numpy()
            bar.update(len(rows))
            start = stop
    return out


@torch.no_grad()
def masked_log_probs(
    model: BioLM, wild_type: np.ndarray, positions: list[int], *, batch_rows: int = 32, progress: bool = False
) -> dict[int, np.ndarray]:
    """{1-based position: [vocab] log-probabilities there with that position masked} (float64).

    The wild type is read as `<bos>` + tokens, as in `embed_ids`.
    """
    device = next(model.parameters()).device
    tok = model.tokenizer
    base = torch.from_numpy(np.concatenate([[tok.bos_id], wild_type]).astype(np.int64))
    out = {}
    with tqdm(total=len(positions), unit="pos", desc="masked marginals", disable=not progress) as bar:
        for start in range(0, len(positions), batch_rows):
            chunk = positions[start : start + batch_rows]
            ids = base.repeat(len(chunk), 1)
            for r, pos in enumerate(chunk):
                ids[r, pos] = tok.mask_id  # position pos sits at index pos after <bos>
            logp = torch.log_softmax(model(ids.to(device)).logits.double(), dim=-1)
            for r, pos in enumerate(chunk):
                out[pos] = logp[r, pos].cpu().numpy()
            bar.update(len(chunk))
    return out


def score_scan(model: BioLM, scan: Scan, *, progress: bool = False) -> tuple[np.ndarray, str]:
    """([N] scores, method name) of every variant of `scan`, as described in the module docstring."""
    wt_ids = encode_sequence(model, scan.wild_type, "wild type", scan.source)
    if not model.config.stateless:
        ids = [
            encode_sequence(model, s, f"line {n}", scan.source)
            for s, n in zip(scan.sequences, scan.lines, strict=True)
        ]
        ll = causal_log_likelihoods(model, [wt_ids, *ids], progress=progress)
        return ll[1:] - ll[0], "log-likelihood ratio (causal)"
    logp = masked_log_probs(model, wt_ids, mutated_positions(scan), progress=progress)
    return marginal_scores(model, scan, logp), "masked marginal"


def mutated_positions(scan: Scan) -> list[int]:
    """The 1-based wild-type positions that some variant of `scan` mutates, in order."""
    return sorted({pos for muts in scan.mutations for _, pos, _ in muts})


def marginal_scores(model: BioLM, scan: Scan, logp: dict[int, np.ndarray]) -> np.ndarray:
    """[N] sum over each variant's mutations of log p_i(mutant) - log p_i(wild type), from per-position
    log-probabilities {1-based position: [vocab]} (a masked or fill-in-the-middle marginal)."""
    scores = np.zeros(len(scan.mutations))
    for v, (muts, line) in enumerate(zip(scan.mutations, scan.lines, strict=True)):
        for wt, pos, mt in muts:
            pair = encode_sequence(model, wt + mt, f"line {line}", scan.source)
            scores[v] += logp[pos][pair[1]] - logp[pos][pair[0]]
    return scores
