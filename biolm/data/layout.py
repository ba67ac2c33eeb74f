"""The in-context layout: how the members of a set (a protein family, a molecule set) share one token
stream, with their position ids. Training packers, generation prompts, zero-shot and screening
contexts and the in-context gain curve all build their streams here, so that a model sees at
inference exactly the layout it was trained on.

The layout biolm trains with (`DEFAULT_LAYOUT`):

    ids        <bos> m1 ...  <sep> m2 ...  <sep> ... mk ...  <eos>
    positions  0     1 .. n1 0     1 .. n2 0     ... 1 .. nk nk + 1

Each member's segment starts at its delimiter (`<bos>` or `<sep>`) with position 0, so a token's
position is its position in its own member (1-based after the delimiter) and says nothing about how
many members came before it. The closing `<eos>` is no delimiter: it ends the last member and takes
the position after that member's last token, as it would in the member alone (`<bos> m <eos>`).

A stream that ends with the `<sep>` after member k is a prompt: the next token is the first of member
k + 1, at position 1. A different layout (a converted published model's, say) is another `Layout`
value, not a branch in the code that uses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from biolm.tokenizers.base import BOS_ID, EOS_ID, SEP_ID


@dataclass(frozen=True)
class Stream:
    """A laid-out token stream.

    Attributes:
        ids: [N] int64 token ids.
        positions: [N] int64 position ids.
        members: [N] int64 index of the member each token belongs to (a delimiter belongs to the member
            it opens; the closing token to the last member).
    """

    ids: np.ndarray
    positions: np.ndarray
    members: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class Layout:
    """Members of a set in one stream: `open` m1 `separator` m2 ... mk `close`.

    Attributes:
        open_id: the token before the first member.
        separator_id: the token before every later member.
        close_id: the token after the last member.
        restart_positions: positions restart at 0 on each member's opening token (True), or run on
            through the whole stream (False).
        fim: how a member with one masked token is written for fill-in-the-middle scoring (`FIM_TARGETS`):
            "cut" (biolm's: `x_<i s x_>i s`, positions 1, 2, ...) or "in_place" (Prot-xLSTM's ProteinGym
            target: the token replaced by `s` in place, then the closing token at position 0, then `s`
            at the masked token's position).
    """

    open_id: int = BOS_ID
    separator_id: int = SEP_ID
    close_id: int = EOS_ID
    restart_positions: bool = True
    fim: str = "cut"

    def __post_init__(self) -> None:
        if self.fim not in FIM_TARGETS:
            raise ValueError(f"fim must be one of {', '.join(FIM_TARGETS)}, got {self.fim!r}")

    @property
    def stop_ids(self) -> tuple[int, ...]:
        """The tokens that end a generated member: another member follows, or the set ends."""
        return (self.separator_id, self.close_id)

    @property
    def delimiter_ids(self) -> tuple[int, ...]:
        """The tokens that open a member."""
        return (self.open_id, self.separator_id)

    @staticmethod
    def cost(length: int) -> int:
        """Tokens a member of `length` tokens adds to a stream: itself and the token after it."""
        return length + 1

    def stream_tokens(self, lengths: Sequence[int]) -> int:
        """Tokens of the stream (prompt or closed) of members of these lengths: 1 + sum(n_j + 1)."""
        return 1 + sum(self.cost(n) for n in lengths)

    def choose(
        self,
        lengths: Sequence[int],
        budget: int,
        max_members: int | None = None,
        *,
        skip_long: bool = False,
    ) -> list[int]:
        """Indices of the members taken, in the given order, while the stream fits `budget` tokens.

        Args:
            lengths: token count of each candidate member (no specials), in the order to try them.
            budget: the most tokens of the stream.
            max_members: at most this many members (None: as many as fit).
            skip_long: a member too long for what is left of the budget is passed over and the next one
                tried (to fill the budget from a mix of fragments and whole sequences); False: it ends
                the choice, as training packs a set (no member is cut, none is skipped over).
        """
        chosen: list[int] = []
        used = self.stream_tokens([])
        for index, n in enumerate(lengths):
            if max_members is not None and len(chosen) >= max_members:
                break
            if used + self.cost(n) > budget:
                if skip_long:
                    continue
                break
            chosen.append(index)
            used += self.cost(n)
        return chosen

    def runs(self, lengths: Sequence[int], budget: int) -> list[list[int]]:
        """Consecutive runs of members covering every index once, each as long as fits `budget` (a
        member that alone exceeds it is a run of its own)."""
        runs: list[list[int]] = []
        current: list[int] = []
        used = self.stream_tokens([])
        for index, n in enumerate(lengths):
            if current and used + self.cost(n) > budget:
                runs.append(current)
                current, used = [], self.stream_tokens([])
            current.append(index)
            used += self.cost(n)
        if current:
            runs.append(current)
        return runs

    def chunks(self, members: Sequence[np.ndarray]) -> list[Stream]:
        """The prompt in pieces: the opening token, then each member with the separator after it. The
        first k + 1 pieces together are the prompt of the first k members (`prompt(members[:k])`), so a
        model can read a context once and be asked after every member."""
        pieces = [_stream([self.open_id], [0], 0)]
        start = 1
        for j, member in enumerate(members):
            member = np.asarray(member, dtype=np.int64)
            ids = np.concatenate([member, [self.separator_id]])
            if self.restart_positions:
                positions = np.concatenate([np.arange(1, len(member) + 1), [0]])
            else:
                positions = np.arange(start, start + len(ids))
            # The separator opens member j + 1.
            pieces.append(_stream(ids, positions, np.concatenate([np.full(len(member), j), [j + 1]])))
            start += len(ids)
        return pieces

    def prompt(self, members: Sequence[np.ndarray]) -> Stream:
        """`open m1 sep ... mk sep`: the stream that opens member k + 1."""
        return _concat(self.chunks(members))

    def closed(self, members: Sequence[np.ndarray]) -> Stream:
        """`open m1 sep ... mk close`: a whole set, as training packs it (at least one member)."""
        if not len(members):
            raise ValueError("a closed stream needs at least one member")
        head = self.prompt(members)
        last = len(members) - 1
        # The separator after the last member becomes the closing token, which belongs to that member
        # and follows its last token (or its delimiter, when it is empty).
        position = head.positions[-2] + 1
        return Stream(
            np.concatenate([head.ids[:-1], [self.close_id]]),
            np.concatenate([head.positions[:-1], [position]]),
            np.concatenate([head.members[:-1], [last]]),
        )

    def next_positions(self, prompt_tokens: int, count: int) -> np.ndarray:
        """[count] positions of the first `count` tokens of the member a prompt of `prompt_tokens`
        tokens opens (1, 2, ... for restarting positions)."""
        start = 1 if self.restart_positions else prompt_tokens
        return np.arange(start, start + count, dtype=np.int64)

    def fim_target(self, member: np.ndarray, position: int, sentinel: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, positions) of `member` with its token at 1-based `position` masked by `sentinel`, read
        as the member a prompt opens; the model's last output predicts the masked token."""
        member = np.asarray(member, dtype=np.int64)
        if self.fim == "cut":
            ids = np.concatenate([member[: position - 1], [sentinel], member[position:], [sentinel]])
            return ids.astype(np.int64), np.arange(1, len(ids) + 1, dtype=np.int64)
        body = member.copy()
        body[position - 1] = sentinel
        ids = np.concatenate([body, [self.close_id, sentinel]]).astype(np.int64)
        positions = np.concatenate([np.arange(1, len(body) + 1), [0, position]]).astype(np.int64)
        return ids, positions

    def positions_of(self, ids: np.ndarray) -> np.ndarray:
        """[L] positions of any stream of ids, e.g. `<bos> A B <sep> C` -> 0 1 2 0 1 (counting from 0
        before the first delimiter)."""
        ids = np.asarray(ids)
        index = np.arange(len(ids), dtype=np.int64)
        if not self.restart_positions or not len(ids):
            return index
        starts = np.where(np.isin(ids, self.delimiter_ids), index, 0)
        return index - np.maximum.accumulate(starts)


def _stream(ids, positions, members) -> Stream:
    as_ids = np.asarray(ids, dtype=np.int64)
    return Stream(
        as_ids,
        np.asarray(positions, dtype=np.int64),
        np.broadcast_to(np.asarray(members, dtype=np.int64), as_ids.shape).copy(),
    )


def _concat(pieces: Sequence[Stream]) -> Stream:
    return Stream(
        *(np.concatenate([getattr(p, key) for p in pieces]) for key in ("ids", "positions", "members"))
    )


FIM_TARGETS = ("cut", "in_place")
# The layout every biolm model is trained with.
DEFAULT_LAYOUT = Layout()
# The keys of a layout as a model directory stores it (token names, so that it reads with any vocabulary).
SPEC_KEYS = ("open", "separator", "close", "restart_positions", "fim")


def layout_spec(
    open_token: str, separator: str, close: str, restart_positions: bool = True, fim: str = "cut"
) -> dict:
    """A layout as a model directory's config.yaml stores it (`layout:`): token names, not ids."""
    return {
        "open": open_token,
        "separator": separator,
        "close": close,
        "restart_positions": restart_positions,
        "fim": fim,
    }


def layout_from_spec(spec: dict, tokenizer) -> Layout:
    """The `Layout` of a stored spec, its tokens looked up in `tokenizer` (aliases included).

    Raises:
        ValueError: a spec with other keys, a token the tokenizer lacks, or a non-boolean
            `restart_positions`.
    """
    if not isinstance(spec, dict) or set(spec) != set(SPEC_KEYS):
        raise ValueError(f"a layout has exactly the keys {', '.join(SPEC_KEYS)}")
    if not isinstance(spec["restart_positions"], bool):
        raise ValueError("layout restart_positions must be true or false")
    ids = {}
    for key in ("open", "separator", "close"):
        try:
            ids[key] = tokenizer.token_to_id(spec[key])
        except (KeyError, TypeError):
            raise ValueError(f"layout {key} token {spec[key]!r} is not in the model's tokenizer") from None
    return Layout(ids["open"], ids["separator"], ids["close"], spec["restart_positions"], spec["fim"])


def model_layout(model) -> Layout:
    """The in-context layout a model was trained with: its directory's (`model.layout_spec`, e.g. a
    converted Prot-xLSTM's), else biolm's own."""
    spec = getattr(model, "layout_spec", None)
    return layout_from_spec(spec, model.tokenizer) if spec else DEFAULT_LAYOUT
