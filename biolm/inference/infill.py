"""Fill-in-the-middle prompts for protein infilling, in the training FIM format.

`parse_infill` reads a template such as `MKT[?]LLV[5]W` (`[?]` a span of any length, `[n]` exactly n
residues), `infill_prompt` lays it out in the multi-span FIM format of `biolm.data.packing.fim_format`
(built with that function, not a copy of it), and `assemble_infill` puts generated spans back with
`fim_restore`. Every problem with a template is a one-line `InputError` naming the 1-based position.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from biolm.domains import INFILL, domain_of
from biolm.errors import InputError
from biolm.tokenizers import TokenizationError, Tokenizer
from biolm.tokenizers.base import BOS_ID, EOS_ID

_SPAN = re.compile(r"\[([^\[\]]*)\]")
MAX_SPAN_LENGTH = 100_000


@dataclass(frozen=True)
class InfillTemplate:
    """A parsed infill template: `segments[0] span_0 segments[1] span_1 ... segments[n]`.

    Attributes:
        text: the template as given.
        segments: the n + 1 known stretches of residues (upper case; the first and last may be empty).
        span_lengths: per span, its exact length, or None for a span of free length.
    """

    text: str
    segments: tuple[str, ...]
    span_lengths: tuple[int | None, ...]


def _check_stray_bracket(piece: str, offset: int, fail: Any) -> None:
    """A bracket outside a well-formed span: report the first one, with its position in the template."""
    where = [i for i, ch in enumerate(piece) if ch in "[]"]
    if where:
        i = where[0]
        raise fail("unclosed '['" if piece[i] == "[" else "']' without '['", offset + i + 1)


def parse_infill(text: str) -> InfillTemplate:
    """Parse an infill template: residues with spans to generate in square brackets.

    Syntax: `[?]` is a span of any length (the model decides where it ends), `[n]` a span of exactly n
    residues (1 <= n). Example: `MKT[?]LLV[5]W` keeps MKT, LLV and W and fills two spans, the second of
    five residues. Spans may open or close the sequence but two spans need at least one residue between
    them (training never puts spans side by side). Whitespace is ignored; residues may be lower case.

    Raises:
        InputError: one line naming the template and the 1-based position of the problem: no span,
            an unclosed or unopened bracket, an empty or malformed span, adjacent spans.
    """
    shown = text if len(text) <= 60 else text[:57] + "..."

    def fail(message: str, position: int | None = None) -> InputError:
        where = f" at position {position}" if position is not None else ""
        return InputError(
            f"infill template {shown!r}: {message}{where} (syntax: residues with [?] for a span of any "
            "length or [n] for n residues, e.g. MKT[?]LLV[5]W)"
        )

    segments, lengths, start = [], [], 0
    for match in _SPAN.finditer(text):
        between = text[start : match.start()]
        _check_stray_bracket(between, start, fail)
        inside = match.group(1).strip()
        if inside == "?":
            lengths.append(None)
        elif inside.isdigit() and 1 <= int(inside) <= MAX_SPAN_LENGTH:
            lengths.append(int(inside))
        else:
            raise fail(f"span [{match.group(1)}] is neither [?] nor [n] with 1 <= n", match.start() + 1)
        segment = "".join(between.split()).upper()
        if lengths[:-1] and not segment:
            raise fail("two spans without a residue between them", match.start() + 1)
        segments.append(segment)
        start = match.end()
    rest = text[start:]
    _check_stray_bracket(rest, start, fail)
    if not lengths:
        raise fail("no span to fill")
    segments.append("".join(rest.split()).upper())
    return InfillTemplate(text, tuple(segments), tuple(lengths))


@dataclass
class InfillPrompt:
    """A fill-in-the-middle prompt in the training format (`biolm.data.packing.fim_format`):
    `<bos> A <fim_1> C <fim_2> E <fim_1>` for the template `A[?]C[?]E`.

    Generation protocol (what training taught the model): after the prompt, generate span 0; it ends
    when the model emits `span_end_ids[0]` (the next span's sentinel, or `<eos>` after the last span).
    That sentinel is then the input that starts span 1, and so on. A span of fixed length takes exactly
    `span_lengths[j]` residues, after which its end token is fed instead of sampled. Positions simply
    continue (`position_ids` is 0..N-1, as FIM examples have no restarts).

    Attributes:
        ids: [N] int64 prompt ids.
        position_ids: [N] int64, 0..N-1.
        template: the parsed template.
        span_lengths: per span, its length or None (free).
        span_sentinels: per span, the sentinel id that opens it.
        span_end_ids: per span, the token that ends it.
        tokenizer: the model's tokenizer, for `assemble_infill`.
    """

    ids: np.ndarray
    position_ids: np.ndarray
    template: InfillTemplate
    span_lengths: tuple[int | None, ...]
    span_sentinels: tuple[int, ...]
    span_end_ids: tuple[int, ...]
    tokenizer: Tokenizer = field(repr=False)

    @property
    def n_spans(self) -> int:
        return len(self.span_lengths)


def _first_bad_residue(text: str, tokenizer: Tokenizer) -> tuple[int, str]:
    """1-based position and character of the first residue outside the brackets that the tokenizer
    rejects (the segments drop whitespace, so positions are found in the template itself)."""
    depth = 0
    for i, ch in enumerate(text):
        depth += ch == "["
        if depth == 0 and not ch.isspace():
            try:
                tokenizer.encode(ch)
            except TokenizationError:
                return i + 1, ch
        depth -= ch == "]"
    return 0, "?"  # pragma: no cover - the caller saw a segment fail


def _encode_segments(template: InfillTemplate, tokenizer: Tokenizer) -> list[np.ndarray]:
    try:
        return [tokenizer.encode(segment).astype(np.int64) for segment in template.segments]
    except TokenizationError:
        from biolm.tokenizers.protein import EXTRA_AMINO_ACIDS, STANDARD_AMINO_ACIDS

        position, bad = _first_bad_residue(template.text, tokenizer)
        shown = template.text if len(template.text) <= 60 else template.text[:57] + "..."
        raise InputError(
            f"infill template {shown!r}: invalid residue {bad!r} at position {position} (the protein "
            f"alphabet is {STANDARD_AMINO_ACIDS}{EXTRA_AMINO_ACIDS}; gaps and other symbols are not residues)"
        ) from None


def infill_prompt(template: str | InfillTemplate, tokenizer: Tokenizer) -> InfillPrompt:
    """The FIM prompt for an infill template (see `parse_infill` for the syntax).

    Args:
        template: the template text or a parsed template.
        tokenizer: the model's protein tokenizer, with at least one `<fim_k>` sentinel per span.

    Raises:
        InputError: a malformed template, a bad residue, or a model without enough sentinels.
    """
    from biolm.data.packing import fim_format

    if isinstance(template, str):
        template = parse_infill(template)
    n = len(template.span_lengths)
    sentinels = list(getattr(tokenizer, "sentinel_ids", []))
    domain_of(tokenizer).require(INFILL, "infilling (a model trained with FIM)")
    if not sentinels:
        raise InputError(
            "infilling needs a model trained with fill-in-the-middle (task.objective=fim); this model's "
            "tokenizer has no <fim_k> sentinels"
        )
    if n > len(sentinels):
        raise InputError(
            f"infill template {template.text[:60]!r} has {n} spans but the model was trained with at most "
            f"{len(sentinels)} (task.fim_max_spans)"
        )
    segments = _encode_segments(template, tokenizer)
    # fim_format needs each span's content; one placeholder residue stands for it, and only the part
    # before the spans' tail (the body, then the first span's sentinel) becomes the prompt.
    placeholder = np.array([tokenizer.token_to_id("X")], dtype=np.int64)
    parts, spans, at = [], [], 0
    for j, segment in enumerate(segments):
        parts.append(segment)
        at += len(segment)
        if j < n:
            parts.append(placeholder)
            spans.append((at, at + 1))
            at += 1
    formatted = fim_format(np.concatenate(parts), spans, sentinels)
    body = formatted[: sum(len(s) for s in segments) + n + 1]
    ids = np.concatenate([[BOS_ID], body]).astype(np.int64)
    return InfillPrompt(
        ids=ids,
        position_ids=np.arange(len(ids), dtype=np.int64),
        template=template,
        span_lengths=template.span_lengths,
        span_sentinels=tuple(sentinels[:n]),
        span_end_ids=(*sentinels[1:n], EOS_ID),
        tokenizer=tokenizer,
    )


def assemble_infill(prompt: InfillPrompt, spans: Sequence[Any]) -> str:
    """The whole sequence: the template's residues with each generated span in its place.

    Args:
        prompt: the prompt the spans were generated from.
        spans: per span, its ids (list, numpy array or torch tensor; a trailing end token, i.e. the
            next sentinel or `<eos>`, is dropped) or its residues as text.

    Raises:
        ValueError: the wrong number of spans, a special token inside a span, or a fixed-length span of
            another length (a decoding bug, not the user's input).
    """
    from biolm.data.packing import fim_restore
    from biolm.tokenizers.base import as_id_array

    if len(spans) != prompt.n_spans:
        raise ValueError(f"{prompt.n_spans} spans expected, got {len(spans)}")
    tok = prompt.tokenizer
    tail = []
    for j, span in enumerate(spans):
        ids = tok.encode(span, record=f"span {j + 1}") if isinstance(span, str) else as_id_array(span)
        if len(ids) and ids[-1] == prompt.span_end_ids[j]:
            ids = ids[:-1]
        if np.isin(ids, tok.special_ids).any():
            raise ValueError(f"span {j + 1} contains a special token: {ids.tolist()}")
        if prompt.span_lengths[j] is not None and len(ids) != prompt.span_lengths[j]:
            raise ValueError(f"span {j + 1} must have {prompt.span_lengths[j]} residues, got {len(ids)}")
        tail += [[prompt.span_sentinels[j]], ids]
    # The inverse of the training format puts the spans back (prompt.ids[-1] opens the first span).
    fim_ids = np.concatenate([prompt.ids[1:-1], *[np.asarray(p, dtype=np.int64) for p in tail]])
    return tok.decode(fim_restore(fim_ids, list(prompt.span_sentinels)))
