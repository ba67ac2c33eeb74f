"""Live parity with the `xlstm` package (NX-AI, PyPI 1.0.8; `pip install biolm[interop]`): a random
`xLSTMLMModel` with mLSTM and sLSTM blocks (the sLSTM on the package's vanilla CPU backend), saved as its
users save it (config.yaml + `torch.save(state_dict)`), converts to a biolm model with its logits.
Skipped when the package is not installed."""

from __future__ import annotations

import pytest
import torch

import biolm
from biolm.convert import convert

xlstm = pytest.importorskip("xlstm", reason="the xlstm package is not installed (biolm[interop])")
dacite = pytest.importorskip("dacite")

CONFIG = """\
vocab_size: 31
mlstm_block:
  mlstm:
    conv1d_kernel_size: 4
    qkv_proj_blocksize: 4
    num_heads: 4
slstm_block:
  slstm:
    backend: vanilla
    num_heads: 4
    conv1d_kernel_size: 4
  feedforward:
    proj_factor: 1.3
    act_fn: {act}
context_length: 64
num_blocks: 4
embedding_dim: 32
slstm_at: [1, 2]
tie_weights: false
bias: false
"""


@pytest.mark.parametrize("act", ["gelu", "swish"])
def test_an_xlstm_package_model_converts_with_its_logits(tmp_path, act):
    from omegaconf import OmegaConf
    from xlstm import xLSTMLMModel, xLSTMLMModelConfig

    text = CONFIG.format(act=act)
    data = OmegaConf.to_container(OmegaConf.create(text))
    config = dacite.from_dict(xLSTMLMModelConfig, data, config=dacite.Config(strict=True))
    torch.manual_seed(0)
    reference = xLSTMLMModel(config)
    reference.reset_parameters()
    with torch.no_grad():  # nothing at its initial value: offsets of norms, biases, recurrent kernels
        for name, param in reference.named_parameters():
            param.add_(torch.randn_like(param) * (0.5 if "bias" in name else 0.2))
    reference.eval()
    source = tmp_path / "xlstm"
    source.mkdir()
    (source / "config.yaml").write_text(text)
    torch.save(reference.state_dict(), source / "model.pt")
    model = biolm.load(convert(source, tmp_path / "model", tokenizer="protein"))
    ids = torch.randint(0, 31, (2, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, ours = reference(ids).double(), model(ids).logits.double()
    rel = float((expected - ours).pow(2).mean().sqrt() / expected.pow(2).mean().sqrt())
    assert rel <= 1e-5, rel
    assert (
        model.config.pattern == "mssm"
        and model.config.ffn_activation == {"gelu": "gelu", "swish": "silu"}[act]
    )
