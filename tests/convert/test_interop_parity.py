"""Parity with the published code bases: every case of `../shared/interop` (tiny random checkpoints
written by the reference code, with the reference's logits) converts with `biolm convert` and gives the
reference's logits at every token both vocabularies share, within the case's tolerance.

Tokens are matched as `../shared/interop/README.md` says: by their string, else by the biolm name of
their role. Formats biolm does not convert yet are strict xfails: when one starts to convert, its case
must pass and the mark go. Cases biolm refuses by decision (`REFUSED`) must be refused, with the reason.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import biolm
from biolm.cli.main import main

INTEROP = Path(__file__).resolve().parents[2].parent / "shared" / "interop"
CASES = sorted(p.name for p in INTEROP.iterdir() if (p / "case.json").is_file()) if INTEROP.is_dir() else []
CONVERTED = {
    "chem_chembl",
    "xlstm1_mixed",
    "hf_xlstm7b",
    "prot_plain",
    "prot_icl",
    "dna_clm_mlstm",
    "dna_ph_mlstm",
}
# DNA-xLSTM PS (rcps) models are not RC-equivariant in the reference (its RC strand reorders the heads);
# biolm refuses them rather than build a model that only claims the property (biolm.convert.dna_xlstm).
REFUSED = {"dna_ps_slstm": "are not reverse-complement equivariant"}
ROLES = {
    "[PAD]": "<pad>",
    "[MASK]": "<mask>",
    "[UNK]": "<unk>",
    "[BOS]": "<bos>",
    "[BEG]": "<bos>",
    "<cls>": "<bos>",
    "[END]": "<eos>",
    "[SEP]": "<eos>",
}


def _biolm_id(tokenizer, token: str | None) -> int | None:
    if token is None:
        return None
    fim = re.fullmatch(r"<mask-(\d+)>", token)
    for name in (token, f"<fim_{fim.group(1)}>" if fim else ROLES.get(token)):
        if name is not None:
            try:
                return tokenizer.token_to_id(name)
            except KeyError:
                pass
    return None


def _cases():
    if not CASES:
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"no interop fixtures at {INTEROP}"))]
    return [
        pytest.param(
            name,
            marks=()
            if name in CONVERTED
            else pytest.mark.xfail(
                strict=True, reason="a format biolm does not convert yet", raises=AssertionError
            ),
        )
        for name in CASES
        if name not in REFUSED
    ]


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_cases_are_refused_with_the_reason(case, tmp_path, capsys):
    if case not in CASES:
        pytest.skip(f"no interop fixture {case} at {INTEROP}")
    assert main(["convert", str(INTEROP / case / "reference"), "-o", str(tmp_path / "m")]) == 2
    assert REFUSED[case] in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("case", _cases())
def test_converted_checkpoint_gives_the_reference_logits(case, tmp_path):
    from safetensors.torch import load_file

    folder = INTEROP / case
    spec = json.loads((folder / "case.json").read_text())
    out = tmp_path / "model"
    code = main(["convert", str(folder / "reference"), "-o", str(out), *spec.get("convert_args", [])])
    assert code == 0, f"biolm convert refused the {case} checkpoint"
    model = biolm.load(out)
    expected = load_file(folder / "expected.safetensors")
    vocab = json.loads((folder / "vocab.json").read_text())
    mapping = [_biolm_id(model.tokenizer, token) for token in vocab]
    ids = expected["input_ids"]
    assert all(mapping[i] is not None for i in ids.unique().tolist()), "an input token has no biolm id"
    biolm_ids = torch.tensor([[mapping[i] for i in row] for row in ids.tolist()])
    kwargs = {"position_ids": expected["position_ids"]} if "position_ids" in expected else {}
    with torch.no_grad():
        logits = model(biolm_ids, **kwargs).logits
    shared = [j for j, b in enumerate(mapping) if b is not None]
    reference = expected["logits"][..., shared].double()
    ours = logits[..., [mapping[j] for j in shared]].double()
    max_abs = float((reference - ours).abs().max())
    rel_rms = float((reference - ours).pow(2).mean().sqrt() / reference.pow(2).mean().sqrt())
    tolerance = spec["tolerance"]
    assert max_abs <= tolerance["max_abs"] and rel_rms <= tolerance["rel_rms"], (max_abs, rel_rms)
    # The biolm tokens the reference lacks are never predicted.
    unused = sorted(set(range(model.tokenizer.vocab_size)) - {b for b in mapping if b is not None})
    assert np.isneginf(logits[..., unused].numpy()).all()


def test_prot_xlstm_proteingym_score_through_biolm_zero_shot(tmp_path):
    """The published ProteinGym score of the in-context case (log-probs of the 20 amino acids at the
    masked residue, after the homologs and the wild type) from biolm's zero-shot FIM scoring, which
    reads the context with the converted model's own layout."""
    if "prot_icl" not in CASES:
        pytest.skip(f"no interop fixture prot_icl at {INTEROP}")
    from safetensors.torch import load_file

    from biolm.data.layout import model_layout
    from biolm.evaluation.zeroshot_context import fim_log_probs, prefill

    folder = INTEROP / "prot_icl"
    model = biolm.load(convert_case(folder, tmp_path))
    expected = load_file(folder / "expected.safetensors")
    vocab = json.loads((folder / "vocab.json").read_text())
    mapping = [_biolm_id(model.tokenizer, token) for token in vocab]
    ids = [mapping[i] for i in expected["input_ids"][0].tolist()]
    start = int(expected["target_start"])
    # The context row is the model's layout of its members: split it at its opening tokens.
    opener = model_layout(model).open_id
    cuts = [i for i, t in enumerate(ids[:start]) if t == opener] + [start]
    members = [np.array(ids[a + 1 : b]) for a, b in zip(cuts, cuts[1:], strict=False)]
    *context, wild_type = members
    state, logits, _ = prefill(model, [*context, wild_type])
    masked = int(expected["position_ids"][0, -1])  # the 1-based position of the masked residue
    logp = fim_log_probs(model, state, wild_type, [masked])[masked]
    amino_acids = [mapping[i] for i in range(4, 24)]
    ours = torch.log_softmax(torch.from_numpy(logp[amino_acids]), -1)
    torch.testing.assert_close(ours.float(), expected["proteingym_logprobs_20aa"], rtol=1e-4, atol=1e-4)


def convert_case(folder: Path, tmp_path: Path) -> Path:
    spec = json.loads((folder / "case.json").read_text())
    out = tmp_path / "model"
    assert main(["convert", str(folder / "reference"), "-o", str(out), *spec.get("convert_args", [])]) == 0
    return out
