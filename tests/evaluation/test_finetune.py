"""The fine-tuning module: pooling over real positions only, for causal and packed models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from biolm.evaluation.finetune import FineTuneTask, collate, finetune
from biolm.models.io import load
from tests.evaluation.helpers import tiny_model_dir


@pytest.mark.parametrize("bidirectional", [False, True])
def test_pooling_ignores_padding(tmp_path, bidirectional):
    model = load(tiny_model_dir(tmp_path / "m", bidirectional=bidirectional))
    tok = model.tokenizer
    seqs = [tok.encode("MKTAYIAK"), tok.encode("MKT"), tok.encode("AYIAKQRQIS")]
    task = FineTuneTask(model, "classification", 2).eval()
    batch = collate([(s, 0) for s in seqs], tok.bos_id, tok.pad_id)
    assert batch["lengths"].tolist() == [8, 3, 10] and batch["input_ids"].shape == (3, 11)
    with torch.no_grad():
        together = task.pooled(batch["input_ids"], batch["lengths"])
        for r, s in enumerate(seqs):
            alone = collate([(s, 0)], tok.bos_id, tok.pad_id)
            one = task.pooled(alone["input_ids"], alone["lengths"])
            torch.testing.assert_close(together[r], one[0], rtol=1e-5, atol=1e-5)
            expected = model(alone["input_ids"]).hidden[0, 1:].mean(0)
            torch.testing.assert_close(one[0], expected, rtol=1e-5, atol=1e-5)


def test_finetune_is_seeded_and_predicts_the_test_rows(tmp_path):
    path = tiny_model_dir(tmp_path / "m")
    tok = load(path).tokenizer
    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list("AW"), 10)) for _ in range(48)]
    ids = [tok.encode(s) for s in seqs]
    y = np.array([s.count("W") for s in seqs], dtype=np.float64)
    rows = (ids[:32], y[:32]), (ids[32:40], y[32:40]), (ids[40:], y[40:])
    options = dict(seed=0, lr=3e-3, batch_size=8, max_epochs=2, progress=False)
    a = finetune(load(path), "regression", 1, *rows, **options)
    b = finetune(load(path), "regression", 1, *rows, **options)
    assert a.shape == (8,)
    np.testing.assert_allclose(a, b, rtol=1e-5)
    c = finetune(load(path), "regression", 1, *rows, **{**options, "seed": 1})
    assert not np.allclose(a, c)
    # Stopping inside the first epoch, before any validation, still predicts (with the last weights).
    d = finetune(load(path), "regression", 1, *rows, **{**options, "max_steps": 1})
    assert d.shape == (8,) and np.all(np.isfinite(d))
