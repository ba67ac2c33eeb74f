"""Tokenizer aliases (a converted model's own names of tokens) and the SMILES tokenizer's
`segmentation="characters"` (Chem-xLSTM's cut of bracket atoms), both saved in tokenizer format 3."""

from __future__ import annotations

import pytest

from biolm.tokenizers import DNATokenizer, SmilesTokenizer, TokenizerFormatError, tokenizer_from_dict

VOCAB = ["C", "N", "O", "(", ")", "=", "[", "]", "@", "H", "3", "+", "-", "2", "Fe", "c", "1"]


def test_characters_cut_every_bracket_atom_to_its_symbol_and_single_characters():
    tok = SmilesTokenizer(VOCAB, segmentation="characters")
    assert tok.tokenize("C[C@@H](O)[NH3+]") == [
        "C",
        "[",
        "C",
        "@",
        "@",
        "H",
        "]",
        "(",
        "O",
        ")",
        "[",
        "N",
        "H",
        "3",
        "+",
        "]",
    ]
    assert tok.tokenize("[Fe+2]") == ["[", "Fe", "+", "2", "]"]
    # The default rule keeps '@@', 'H3' and '+2' as one part each.
    atoms = SmilesTokenizer([*VOCAB, "@@", "H3", "+2"])
    assert atoms.tokenize("[C@@H][NH3+][Fe+2]").count("@@") == 1
    assert "".join(tok.decode(tok.encode("C[C@@H](O)[NH3+]"))) == "C[C@@H](O)[NH3+]"


def test_aliases_answer_token_to_id_and_round_trip():
    tok = SmilesTokenizer(VOCAB, segmentation="characters", aliases={"[BEG]": "<bos>", "[END]": "<eos>"})
    assert tok.token_to_id("[BEG]") == tok.bos_id and tok.token_to_id("[END]") == tok.eos_id
    with pytest.raises(KeyError):
        tok.token_to_id("[NOPE]")
    saved = tok.to_dict()
    assert saved["format_version"] == 3 and saved["segmentation"] == "characters"
    again = tokenizer_from_dict(saved)
    assert again == tok and again.aliases == tok.aliases and again.segmentation == "characters"
    dna = DNATokenizer()
    dna.set_aliases({"[PAD]": "<pad>"})
    assert tokenizer_from_dict(dna.to_dict()).token_to_id("[PAD]") == dna.pad_id


def test_plain_tokenizers_keep_their_format_and_bad_options_are_refused():
    assert SmilesTokenizer().to_dict()["format_version"] == 2
    assert SmilesTokenizer(bracket_parts=False).to_dict()["format_version"] == 1
    with pytest.raises(ValueError, match="alias"):
        SmilesTokenizer(VOCAB, aliases={"C": "<bos>"})  # an alias may not shadow a token
    with pytest.raises(ValueError, match="alias"):
        SmilesTokenizer(VOCAB, aliases={"[X]": "Xx"})  # nor name a token that is not there
    with pytest.raises(ValueError, match="segmentation"):
        SmilesTokenizer(VOCAB, segmentation="bytes")
    bad = SmilesTokenizer(VOCAB, segmentation="characters").to_dict()
    bad["segmentation"] = "bytes"
    with pytest.raises(TokenizerFormatError, match="segmentation"):
        tokenizer_from_dict(bad, source="t.json")
    bad = SmilesTokenizer(VOCAB, aliases={"[BEG]": "<bos>"}).to_dict()
    bad["aliases"] = {"[BEG]": "<nope>"}
    with pytest.raises(TokenizerFormatError, match="t.json"):
        tokenizer_from_dict(bad, source="t.json")
