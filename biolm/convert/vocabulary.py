"""A reference checkpoint's vocabulary against a biolm tokenizer: which biolm id each reference id is,
and the embedding and output rows moved accordingly.

A reference token is found by its own string (`tokenizer.token_to_id`, aliases included), else by the
biolm name of its role (`[PAD]` is `<pad>`, `<cls>` is `<bos>`, `<mask-k>` is `<fim_k>`, ...).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch

from biolm.tokenizers import Tokenizer

# The biolm name of a reference special token's role.
ROLE_NAMES = {
    "[PAD]": "<pad>",
    "<pad>": "<pad>",
    "[MASK]": "<mask>",
    "<mask>": "<mask>",
    "[UNK]": "<unk>",
    "<unk>": "<unk>",
    "[BOS]": "<bos>",
    "[BEG]": "<bos>",
    "<cls>": "<bos>",
    "<bos>": "<bos>",
    "[END]": "<eos>",
    "[SEP]": "<eos>",
    "<eos>": "<eos>",
}
_FIM_MASK = re.compile(r"<mask-(\d+)>")


def role_name(token: str) -> str | None:
    """The biolm name of a reference special token's role, or None for an ordinary token."""
    found = _FIM_MASK.fullmatch(token)
    if found:
        return f"<fim_{found.group(1)}>"
    return ROLE_NAMES.get(token)


def biolm_id(tokenizer: Tokenizer, token: str) -> int | None:
    """The biolm id of a reference token (its string, else its role's name); None if biolm lacks it."""
    for name in (token, role_name(token)):
        if name is None:
            continue
        try:
            return tokenizer.token_to_id(name)
        except KeyError:
            continue
    return None


def id_map(tokenizer: Tokenizer, reference: Sequence[str | None]) -> list[int | None]:
    """The biolm id of each reference id (None for an unused slot or a token biolm lacks)."""
    return [None if token is None else biolm_id(tokenizer, token) for token in reference]


def output_matrix(state: dict, embedding, tied: bool, source) -> object:
    """The output projection of a checkpoint: its `lm_head.weight`, or the input embedding when the
    model ties the two (`tie_weights`), where a stored head must then equal it."""
    from biolm.errors import InputError

    head = state.get("lm_head.weight")
    if tied:
        if head is not None and not torch.equal(head, embedding):
            raise InputError(f"{source}: tie_weights is true but lm_head.weight differs from the embedding")
        return embedding
    if head is None:
        raise InputError(f"{source}: missing parameter lm_head.weight (and tie_weights is not true)")
    return head


def moved_rows(weight: torch.Tensor, mapping: Sequence[int | None], vocab_size: int) -> torch.Tensor:
    """[vocab_size, d] rows of a reference [V_ref, d] embedding or output matrix at their biolm ids;
    biolm ids no reference id maps to get zeros (their logits are masked: `unused_ids`)."""
    out = torch.zeros(vocab_size, weight.shape[1], dtype=weight.dtype)
    for ref_id, new_id in enumerate(mapping):
        if new_id is not None:
            out[new_id] = weight[ref_id]
    return out


def unused_ids(mapping: Sequence[int | None], vocab_size: int) -> list[int]:
    """The biolm ids that no reference id maps to: the model never predicts them."""
    used = {i for i in mapping if i is not None}
    return [i for i in range(vocab_size) if i not in used]
