"""Chem-xLSTM checkpoints (ml-jku/Chem-xLSTM, `xLSTMforNTP.save`): a directory with
`init_arguments.json` (the model's settings and its learned SMILES vocabulary, `token2label`) and
`model.pt` (the state dict, keys `model.*` over the xlstm package's `xLSTMLMModel`).

The vocabulary is learned from the training file: `[PAD]` is 0, then tokens in first-seen order
(`[BEG]` and `[END]` among them), and bracket atoms are cut into `[`, symbol, single characters, `]`.
The converted tokenizer keeps those tokens and that rule (a SMILES tokenizer with
`segmentation="characters"`), answers the reference's names of its specials (`[BEG]` is `<bos>`), and
the model never predicts the biolm specials the reference lacks.
"""

from __future__ import annotations

from pathlib import Path

from biolm.convert.build import build_model
from biolm.convert.checkpoint import load_torch, read_json
from biolm.convert.vocabulary import id_map, role_name
from biolm.convert.xlstm_stack import read_stack
from biolm.errors import InputError
from biolm.models import BioLM
from biolm.tokenizers import SmilesTokenizer, Tokenizer

NAME = "Chem-xLSTM"
ARGUMENTS = "init_arguments.json"
WEIGHTS = "model.pt"


def detect(source: Path) -> bool:
    return source.is_dir() and (source / ARGUMENTS).exists() and (source / WEIGHTS).exists()


def read(source: Path, tokenizer_kind: str | None = None) -> tuple[BioLM, Tokenizer]:
    """The biolm model and tokenizer of a Chem-xLSTM checkpoint directory."""
    arguments_path = source / ARGUMENTS
    arguments = read_json(arguments_path, "Chem-xLSTM settings")
    if not isinstance(arguments, dict) or not isinstance(arguments.get("token2label"), dict):
        raise InputError(f"{arguments_path}: not Chem-xLSTM settings (no 'token2label' vocabulary)")
    if arguments.get("mode", "smiles") != "smiles":
        raise InputError(f"{arguments_path}: mode {arguments.get('mode')!r}; biolm converts SMILES models")
    weights_path = source / WEIGHTS
    state = load_torch(weights_path, "Chem-xLSTM weights")
    if not isinstance(state, dict) or "model.token_embedding.weight" not in state:
        raise InputError(f"{weights_path}: not a Chem-xLSTM state dict (no model.token_embedding.weight)")
    state = {key.removeprefix("model."): value for key, value in state.items()}
    embedding, head = state["token_embedding.weight"], state.get("lm_head.weight")
    if head is None:
        raise InputError(f"{weights_path}: missing parameter model.lm_head.weight")
    reference = _vocabulary(arguments["token2label"], embedding.shape[0], arguments_path)
    _check_setting(arguments, "vocab_size", embedding.shape[0], arguments_path)
    _check_setting(arguments, "model_dim", embedding.shape[1], arguments_path)
    stack = read_stack(state, "xlstm_block_stack.", weights_path)
    _check_setting(arguments, "n_layers", stack.settings["n_layers"], arguments_path)
    tokenizer = _tokenizer(reference, arguments_path)
    return build_model(
        stack, tokenizer, id_map(tokenizer, reference), embedding, head, weights_path
    ), tokenizer


def _vocabulary(token2label: dict, slots: int, path: Path) -> list[str | None]:
    """The token of each reference id (None for the slots no token has)."""
    reference: list[str | None] = [None] * slots
    for token, label in token2label.items():
        if not isinstance(label, int) or isinstance(label, bool) or not 0 <= label < slots:
            raise InputError(
                f"{path}: token2label gives {token!r} the label {label!r}, outside the {slots} embedding rows"
            )
        if reference[label] is not None:
            raise InputError(f"{path}: token2label gives the label {label} to two tokens")
        reference[label] = token
    return reference


def _tokenizer(reference: list[str | None], path: Path) -> SmilesTokenizer:
    specials = {token: role_name(token) for token in reference if token is not None and role_name(token)}
    vocab = [token for token in reference if token is not None and token not in specials]
    try:
        return SmilesTokenizer(vocab, segmentation="characters", aliases=specials)
    except ValueError as err:
        raise InputError(f"{path}: a vocabulary biolm's SMILES tokenizer cannot hold: {err}") from None


def _check_setting(arguments: dict, key: str, actual: int, path: Path) -> None:
    stated = arguments.get(key)
    if stated is not None and stated != actual:
        raise InputError(f"{path}: {key} is {stated!r} but the weights have {actual}")
