"""Paper recipes (biolm/configs/<domain>/{xlstm,transformer}_*.yaml): each loads through the schema,
builds a model of the size it states, and takes one training step."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F

from biolm.configs import CONFIG_DIR, load_config, packaged_config, to_train_config
from biolm.models.backbone import BioLM

RECIPES = [
    ("dna", "xlstm_500k_1k"),
    ("dna", "xlstm_500k_32k"),
    ("dna", "xlstm_2m_1k"),
    ("dna", "xlstm_2m_32k"),
    ("dna", "transformer_500k_1k"),
    ("dna", "transformer_500k_32k"),
    ("dna", "transformer_2m_1k"),
    ("dna", "transformer_2m_32k"),
    ("protein", "xlstm_26m"),
    ("protein", "xlstm_102m"),
    ("protein", "transformer_26m"),
    ("protein", "transformer_102m"),
    ("chem", "xlstm_15m"),
    ("chem", "transformer_15m"),
]
TARGET = re.compile(r"^# target_parameters: ([\d_]+)\s*$", re.MULTILINE)
TOLERANCE = 0.10
STEP_TOKENS = 48  # a few dozen tokens: the step checks wiring, not speed


def test_every_recipe_file_is_listed():
    on_disk = {
        (path.parent.name, path.stem)
        for pattern in ("*/xlstm_*.yaml", "*/transformer_*.yaml")
        for path in CONFIG_DIR.glob(pattern)
    }
    assert on_disk == set(RECIPES)


@pytest.mark.parametrize("domain, name", RECIPES, ids=[f"{d}/{n}" for d, n in RECIPES])
def test_recipe_builds_to_its_size_and_trains_one_step(domain, name):
    path = packaged_config(domain, name)  # what a `--recipe NAME` shortcut would resolve
    match = TARGET.search(path.read_text())
    assert match, f"{path}: no '# target_parameters: N' line"
    target = int(match.group(1).replace("_", ""))

    config = to_train_config(load_config(path))
    assert config.name == f"{domain}_{name}"
    torch.manual_seed(0)
    model = BioLM(config.model)
    actual = model.num_parameters()
    assert abs(actual - target) <= TOLERANCE * target, f"{name}: {actual:,} parameters, target {target:,}"

    optim = config.optim
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=optim.lr, betas=(optim.beta1, optim.beta2), weight_decay=optim.weight_decay
    )
    ids = torch.randint(0, config.model.vocab_size, (1, STEP_TOKENS))
    model.train()
    logits = model(ids).logits
    assert logits.shape == (1, STEP_TOKENS, config.model.vocab_size)
    loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten())
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    before = model.lm_head.weight.detach().clone()
    optimizer.step()
    assert not torch.equal(before, model.lm_head.weight)
