from __future__ import annotations

import dataclasses

import torch

from biolm.configs.schema import OptimConfig
from biolm.models import ModelConfig
from biolm.tasks.clm import CausalLMTask

TINY = ModelConfig(vocab_size=31, d_model=16, n_layers=1, num_heads=2, chunk_size=8)


def make_task() -> CausalLMTask:
    task = CausalLMTask(dataclasses.asdict(TINY), dataclasses.asdict(OptimConfig()), max_steps=10)
    task.log = lambda *args, **kwargs: None  # no Trainer attached
    return task


def test_position_ids_reach_the_model_only_when_the_batch_has_them(monkeypatch):
    task = make_task()
    seen = []
    real = task.model.forward

    def spy(ids, *args, **kwargs):
        seen.append(kwargs.get("position_ids"))
        return real(ids, *args, **kwargs)

    monkeypatch.setattr(task.model, "forward", spy)
    ids = torch.randint(6, 31, (2, 12))
    labels = ids.roll(-1, 1)
    task.training_step({"input_ids": ids, "labels": labels}, 0)
    assert seen[-1] is None
    positions = torch.arange(12).remainder(5).expand(2, 12)
    loss = task.training_step({"input_ids": ids, "labels": labels, "position_ids": positions}, 0)
    assert torch.equal(seen[-1], positions) and torch.isfinite(loss)


def test_loss_ignores_ignore_index_labels():
    task = make_task()
    ids = torch.randint(6, 31, (1, 10))
    labels = torch.full((1, 10), -100)
    labels[0, 3] = 7
    full = task.training_step({"input_ids": ids, "labels": labels}, 0)
    logits = task(ids)
    expected = torch.nn.functional.cross_entropy(logits[0, 3:4], labels[0, 3:4])
    torch.testing.assert_close(full, expected)
