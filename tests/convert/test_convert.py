"""`biolm convert` on checkpoints written here in the published formats: the converted directory is an
ordinary biolm model that keeps the reference's vocabulary and tokenization, and bad input is one line
naming the file, with nothing written."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import biolm
from biolm.cli.main import main
from biolm.convert import convert
from tests.convert.helpers import CHEM_TOKENS, write_chem_checkpoint


@pytest.fixture
def chem_checkpoint(tmp_path):
    return write_chem_checkpoint(tmp_path / "chem_ref")


def test_a_chem_xlstm_checkpoint_becomes_a_biolm_model(chem_checkpoint, tmp_path):
    out = convert(chem_checkpoint, tmp_path / "model")
    model = biolm.load(out)
    tok = model.tokenizer
    # The reference's names of its specials are answered; the learned tokens keep their strings.
    assert (tok.token_to_id("[BEG]"), tok.token_to_id("[END]"), tok.token_to_id("[PAD]")) == (
        tok.bos_id,
        tok.eos_id,
        tok.pad_id,
    )
    assert [t for t in CHEM_TOKENS if t not in ("[PAD]", "[BEG]", "[END]")] == tok.vocab
    # Bracket atoms are cut as the reference cuts them: '[', symbol, every other character, ']'.
    assert tok.tokenize("C[C@@H](O)[NH3+]") == list("C[C@@H](O)[NH3+]")
    # Each token's embedding row is the reference's row of that token.
    state = torch.load(chem_checkpoint / "model.pt", weights_only=True)
    for label, token in enumerate(CHEM_TOKENS):
        row = model.embedding.weight[tok.token_to_id(token)]
        torch.testing.assert_close(row, state["model.token_embedding.weight"][label])
    # biolm's specials the reference lacks (<sep>, <mask>, <unk>) are never predicted.
    logits = model(torch.from_numpy(tok.encode("CC(=O)N", add_bos=True))[None]).logits
    for name in ("<sep>", "<mask>", "<unk>"):
        assert torch.isneginf(logits[..., tok.token_to_id(name)]).all()
    assert torch.isfinite(logits[..., tok.token_to_id("C")]).all()


def test_every_verb_takes_the_converted_model(chem_checkpoint, tmp_path, capsys):
    out = tmp_path / "model"
    assert main(["convert", str(chem_checkpoint), "-o", str(out)]) == 0
    assert "converted the Chem-xLSTM checkpoint" in capsys.readouterr().out
    emb = biolm.embed(out, ["CCO", "c1ccccc1N"])
    assert emb.vectors.shape == (2, 16) and np.isfinite(emb.vectors).all()
    samples = biolm.generate(out, n=3, max_new_tokens=8, seed=0)
    assert samples.counts["generated"] == 3
    assert main(["info", str(out)]) == 0
    assert "chem" in capsys.readouterr().out


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


class Opaque:
    """A class a pickle may name; the weights-only unpickler must refuse it."""


def test_bad_checkpoints_are_one_line_and_write_nothing(chem_checkpoint, tmp_path, capsys):
    out = tmp_path / "model"
    weights = chem_checkpoint / "model.pt"
    arguments = chem_checkpoint / "init_arguments.json"
    original_weights, original_arguments = weights.read_bytes(), arguments.read_text()

    def case(expected: str, *extra: str) -> None:
        assert expected in _error(capsys, ["convert", str(chem_checkpoint), "-o", str(out), *extra])
        assert not out.exists()
        weights.write_bytes(original_weights)
        arguments.write_text(original_arguments)

    weights.write_bytes(original_weights[: len(original_weights) // 2])
    case(f"{weights}: not a readable Chem-xLSTM weights")
    torch.save({"model.token_embedding.weight": torch.zeros(2, 2), "x": Opaque()}, weights)
    case("asks for tests.convert.test_convert.Opaque")
    arguments.write_text(json.dumps({**json.loads(original_arguments), "model_dim": 99}))
    case(f"{arguments}: model_dim is 99 but the weights have 16")
    arguments.write_text(json.dumps({**json.loads(original_arguments), "token2label": {"C": 500}}))
    case("outside the 18 embedding rows")
    arguments.write_text("{not json")
    case(f"{arguments}: the Chem-xLSTM settings is not valid JSON")
    state = torch.load(weights, weights_only=True)
    state["model.xlstm_block_stack.blocks.0.xlstm.extra.weight"] = torch.zeros(4)
    torch.save(state, weights)
    case("a parameter biolm's mLSTM block does not have: xlstm_block_stack.blocks.0.xlstm.extra.weight")
    state = torch.load(weights, weights_only=True)
    state["model.xlstm_block_stack.blocks.0.xlstm.proj_up.bias"] = torch.zeros(64)
    torch.save(state, weights)
    case("missing parameter xlstm_block_stack.blocks.0.xlstm.k_proj.bias")


def test_unknown_formats_and_outputs_that_are_inputs(chem_checkpoint, tmp_path, capsys):
    assert "not a checkpoint of a format biolm converts" in _error(
        capsys, ["convert", str(tmp_path), "-o", str(tmp_path / "m")]
    )
    assert "no such checkpoint" in _error(
        capsys, ["convert", str(tmp_path / "nope"), "-o", str(tmp_path / "m")]
    )
    before = sorted(p.name for p in chem_checkpoint.iterdir())
    _error(capsys, ["convert", str(chem_checkpoint), "-o", str(chem_checkpoint)])
    assert sorted(p.name for p in chem_checkpoint.iterdir()) == before


def test_an_xlstm1_checkpoint_needs_the_tokenizer_its_ids_are(tmp_path, capsys):
    from tests.convert.helpers import mlstm_block

    source = tmp_path / "xlstm1"
    source.mkdir()
    (source / "config.yaml").write_text(
        "vocab_size: 31\nmlstm_block:\n  mlstm:\n    num_heads: 2\nnum_blocks: 1\nembedding_dim: 16\n"
        "slstm_at: []\ntie_weights: false\n"
    )
    state = mlstm_block("xlstm_block_stack.blocks.0.", 16, 2, 32)
    state["xlstm_block_stack.post_blocks_norm.weight"] = torch.zeros(16)
    state["token_embedding.weight"] = torch.randn(31, 16)
    state["lm_head.weight"] = torch.randn(31, 16)
    torch.save(state, source / "model.pt")
    assert "--tokenizer" in _error(capsys, ["convert", str(source), "-o", str(tmp_path / "m")])
    assert main(["convert", str(source), "-o", str(tmp_path / "m"), "--tokenizer", "protein"]) == 0
    model = biolm.load(tmp_path / "m")
    # Its ids are the protein tokenizer's: the rows stay where they are.
    torch.testing.assert_close(model.embedding.weight, state["token_embedding.weight"])
    assert model.config.unused_ids is None
    # Tied weights: the output projection is the embedding (a stored head must equal it).
    (source / "config.yaml").write_text(
        (source / "config.yaml").read_text().replace("tie_weights: false", "tie_weights: true")
    )
    assert "lm_head.weight differs from the embedding" in _error(
        capsys, ["convert", str(source), "-o", str(tmp_path / "t"), "--tokenizer", "protein"]
    )
    del state["lm_head.weight"]
    torch.save(state, source / "model.pt")
    tied = biolm.load(convert(source, tmp_path / "t", tokenizer="protein"))
    torch.testing.assert_close(tied.lm_head.weight, state["token_embedding.weight"])


def test_pickle_module_is_not_needed_to_refuse(tmp_path):
    """The refusal comes from torch's weights-only unpickler, not from running the pickle."""
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"a": Opaque()}))
    from biolm.convert.checkpoint import load_torch
    from biolm.errors import InputError

    with pytest.raises(InputError, match="evil.pt"):
        load_torch(path, "weights")


@pytest.mark.parametrize("backend", ["cuda", "vanilla"])
def test_slstm_cells_of_either_layout_give_the_same_model(tmp_path, backend):
    """The same sLSTM cell stored in the CUDA layout (published models) or the vanilla one converts to
    the same weights; the block is biolm's `s` block with a GELU feed-forward."""
    from tests.convert.helpers import mlstm_block, slstm_block

    def write(layout: str):
        source = tmp_path / layout
        source.mkdir(exist_ok=True)
        (source / "config.yaml").write_text(
            f"vocab_size: 11\nslstm_block:\n  slstm:\n    backend: {layout}\n    num_heads: 2\n"
            "num_blocks: 2\nembedding_dim: 16\nslstm_at: [1]\n"
        )
        state = {
            **mlstm_block("xlstm_block_stack.blocks.0.", 16, 2, 32),
            **slstm_block("xlstm_block_stack.blocks.1.", 16, 2, 64, layout=layout),
        }
        state["xlstm_block_stack.post_blocks_norm.weight"] = torch.zeros(16)
        state["token_embedding.weight"] = torch.randn(11, 16, generator=torch.Generator().manual_seed(1))
        state["lm_head.weight"] = torch.randn(11, 16, generator=torch.Generator().manual_seed(2))
        torch.save(state, source / "model.pt")
        return convert(source, tmp_path / f"m_{layout}", tokenizer="dna")

    model = biolm.load(write(backend))
    assert model.config.pattern == "ms" and model.config.ffn_activation == "gelu"
    reference = biolm.load(write("cuda"))
    ids = torch.tensor([[1, 6, 7, 8, 9, 6, 10]])
    torch.testing.assert_close(model(ids).logits, reference(ids).logits)
    # A state passed on gives the logits of one pass, as for biolm's own models.
    head = model(ids[:, :3])
    tail = model(ids[:, 3:], state=head.state)
    torch.testing.assert_close(
        torch.cat([head.logits, tail.logits], 1), model(ids).logits, rtol=1e-5, atol=1e-5
    )


def test_a_sharded_transformers_xlstm_converts_by_its_tokens(tmp_path, capsys):
    from biolm.tokenizers import ProteinTokenizer
    from tests.convert.helpers import write_transformers_checkpoint

    protein = ProteinTokenizer().tokens
    whole = write_transformers_checkpoint(tmp_path / "whole", vocab=protein)
    sharded = write_transformers_checkpoint(tmp_path / "sharded", vocab=protein, shards=3)
    # Its tokenizer.json lists the protein tokenizer's tokens: no --tokenizer needed.
    a, b = biolm.load(convert(whole, tmp_path / "a")), biolm.load(convert(sharded, tmp_path / "b"))
    assert a.config.final_norm == "rms" and a.config.logit_soft_cap == 30.0 and a.config.pattern == "x"
    ids = torch.tensor([[1, 6, 7, 8, 9]])
    torch.testing.assert_close(a(ids).logits, b(ids).logits)
    # The same weights with the vocabulary in another order: rows follow the token strings.
    shuffled = write_transformers_checkpoint(tmp_path / "shuffled", vocab=[*protein[6:], *protein[:6]])
    c = biolm.load(convert(shuffled, tmp_path / "c", tokenizer="protein"))
    state = load_file(shuffled / "model.safetensors")
    torch.testing.assert_close(c.embedding.weight[6], state["backbone.embeddings.weight"][0])
    assert "--tokenizer" in _error(capsys, ["convert", str(shuffled), "-o", str(tmp_path / "d")])
    biased = write_transformers_checkpoint(tmp_path / "biased", vocab=protein, use_bias=True)
    assert "use_bias True; biolm converts use_bias False only" in _error(
        capsys, ["convert", str(biased), "-o", str(tmp_path / "e")]
    )


def test_a_prot_xlstm_checkpoint_keeps_its_token_meaning(tmp_path):
    from biolm.convert.prot_xlstm import VOCABULARY
    from tests.convert.helpers import mlstm_block

    source = tmp_path / "prot"
    source.mkdir()
    config = {
        "mlstm_block": {"mlstm": {"num_heads": 2}},
        "num_blocks": 1,
        "embedding_dim": 16,
        "vocab_size": 38,
        "tie_weights": False,
        "position_embeddings": "rot_1d",
        "rope_base_frequency": 500000,
    }
    (source / "config.json").write_text(json.dumps(config))
    state = {f"backbone.{k}": v for k, v in mlstm_block("xlstm_block_stack.blocks.0.", 16, 2, 32).items()}
    state["backbone.xlstm_block_stack.post_blocks_norm.weight"] = torch.zeros(16)
    state["backbone.token_embedding.weight"] = torch.randn(38, 16)
    state["backbone.lm_head.weight"] = torch.randn(38, 16)
    torch.save(state, source / "pytorch_model.bin")
    model = biolm.load(convert(source, tmp_path / "m"))
    tok = model.tokenizer
    assert model.config.rope == "inner" and model.config.rope_base == 500000.0
    assert tok.token_to_id("<cls>") == tok.bos_id and tok.token_to_id("<mask-3>") == tok.token_to_id(
        "<fim_3>"
    )
    for ref_id, token in enumerate(VOCABULARY):
        if token in (".", "-", "<null_1>"):
            continue  # no biolm token: their rows are left out
        torch.testing.assert_close(
            model.embedding.weight[tok.token_to_id(token)], state["backbone.token_embedding.weight"][ref_id]
        )
    # Its in-context layout travels with the model directory: every member opened by <cls> (<bos>).
    from biolm.data.layout import Layout, model_layout

    assert model_layout(model) == Layout(tok.bos_id, tok.bos_id, tok.eos_id, True, fim="in_place")
    family = tmp_path / "family.fasta"
    family.write_text(">a\nMKV\n>b\nMLLA\n>c\nMKKW\n")
    result = biolm.generate(tmp_path / "m", n=2, max_new_tokens=4, context=family, seed=0)
    ids, positions = result.context.ids, result.context.position_ids
    assert ids[0] == ids[-1] == tok.bos_id and (ids == tok.sep_id).sum() == 0
    assert (ids == tok.bos_id).sum() == result.context.n_members_used + 1
    assert positions[-1] == 0 and result.context.stop_ids == (tok.bos_id, tok.eos_id)
    config["position_embeddings"] = "abs_2d"
    (source / "config.json").write_text(json.dumps(config))
    from biolm.errors import InputError

    with pytest.raises(InputError, match="position_embeddings 'abs_2d'"):
        convert(source, tmp_path / "m2")


def _dna_run(path, **config):
    """A DNA-xLSTM run directory: model_config.json and a Lightning-style checkpoint whose
    hyper_parameters are an OmegaConf config (pickled, as Lightning writes it)."""
    from omegaconf import OmegaConf

    from tests.convert.helpers import mlstm_block

    settings = {
        "d_model": 16,
        "n_layer": 1,
        "vocab_size": 12,
        "m_num_heads": 2,
        "m_bias": True,
        "m_position_embeddings": True,
        "bidirectional": True,
        "rcps": False,
        "s_lstm_at": [],
    }
    settings.update(config)
    (path / "checkpoints" / "test").mkdir(parents=True)
    (path / "model_config.json").write_text(json.dumps({"config": settings}))
    block = mlstm_block("model.backbone.xlstm_block_stack.blocks.0.", 16, 2, 32)
    for name, size in (("proj_up", 64), ("q_proj", 32), ("k_proj", 32), ("v_proj", 32), ("proj_down", 16)):
        block[f"model.backbone.xlstm_block_stack.blocks.0.xlstm.{name}.bias"] = torch.randn(size) * 0.1
    block["model.backbone.xlstm_block_stack.post_blocks_norm.weight"] = torch.zeros(16)
    block["model.backbone.token_embedding.weight"] = torch.randn(12, 16)
    block["model.backbone.lm_head.weight"] = torch.randn(12, 16)
    checkpoint = {
        "state_dict": block,
        "epoch": 0,
        "hyper_parameters": OmegaConf.create({"model": {"config": settings}}),
    }
    torch.save(checkpoint, path / "checkpoints" / "test" / "loss.ckpt")
    return path


def test_a_dna_xlstm_run_converts_and_ps_models_are_refused(tmp_path, capsys):
    run = _dna_run(tmp_path / "ph")
    model = biolm.load(convert(run, tmp_path / "m"))
    config = model.config
    assert (config.rope, config.rope_base, config.projection_bias) == ("head", 500000.0, True)
    assert config.bidirectional and config.bidirectional_scope == "block"
    tok = model.tokenizer
    assert tok.token_to_id("[SEP]") == tok.eos_id and tok.token_to_id("[MASK]") == tok.mask_id
    assert torch.isneginf(
        model(torch.tensor([[7, 8, 9]])).logits[..., tok.sep_id]
    ).all()  # [CLS]/[RESERVED]: none
    ps = _dna_run(tmp_path / "ps", rcps=True)
    assert "rcps true: the reference's PS models are not reverse-complement equivariant" in _error(
        capsys, ["convert", str(ps), "-o", str(tmp_path / "p")]
    )
    torch.save({"state_dict": {}}, run / "checkpoints" / "test" / "last.ckpt")
    assert "several checkpoints" in _error(capsys, ["convert", str(run), "-o", str(tmp_path / "q")])
    # A single checkpoint file may be given; a callback object in it is refused, never imported.
    torch.save({"state_dict": {}, "callbacks": Opaque()}, run / "checkpoints" / "test" / "last.ckpt")
    assert "asks for tests.convert.test_convert.Opaque" in _error(
        capsys, ["convert", str(run / "checkpoints" / "test" / "last.ckpt"), "-o", str(tmp_path / "r")]
    )
