"""Masked language modelling: masking statistics, targets, determinism and training steps."""

from __future__ import annotations

from types import SimpleNamespace

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from biolm.configs.schema import OptimConfig
from biolm.data.chem_datamodule import build_chem_data
from biolm.models import ModelConfig
from biolm.tasks.clm import IGNORE_INDEX
from biolm.tasks.mlm import MaskedLMTask, batch_generator, mask_tokens
from biolm.tokenizers import BOS_ID, EOS_ID, MASK_ID, PAD_ID, SEP_ID, SmilesTokenizer

VOCAB = 40
# Steps called directly, without a Trainer, make `self.log` warn; that is the point of those tests.
pytestmark = pytest.mark.filterwarnings("ignore:You are trying to `self.log")


def special_batch(batch: int = 128, length: int = 512) -> torch.Tensor:
    """Random ordinary ids with <bos> first, <sep> inside, <eos> and padding at the end of each row."""
    ids = torch.randint(6, VOCAB, (batch, length), generator=torch.Generator().manual_seed(1))
    ids[:, 0] = BOS_ID
    ids[:, length // 5] = SEP_ID
    ends = torch.randint(length // 2, length, (batch,), generator=torch.Generator().manual_seed(2))
    for row, end in enumerate(ends.tolist()):
        ids[row, end] = EOS_ID
        ids[row, end + 1 :] = PAD_ID
    return ids


def test_masking_statistics_and_specials():
    ids = special_batch()
    random_ids = torch.arange(6, VOCAB)
    masked, labels = mask_tokens(ids, batch_generator(0, 1), random_ids=random_ids, exclude_ids=[7])
    maskable = (ids >= 6) & (ids != 7)
    chosen = labels != IGNORE_INDEX
    assert not (chosen & ~maskable).any()  # never specials, padding or excluded ids
    assert torch.equal(masked[~chosen], ids[~chosen])  # nothing else is touched
    assert torch.equal(labels[chosen], ids[chosen])
    n = chosen.sum().item()
    assert abs(n / maskable.sum().item() - 0.15) < 0.01
    to_mask = (masked[chosen] == MASK_ID).float().mean().item()
    unchanged = (masked[chosen] == ids[chosen]).float().mean().item()
    randomised = 1 - to_mask - unchanged
    # A random replacement can draw the original token: 1 in 34 of the random 10 % look unchanged.
    assert abs(to_mask - 0.8) < 0.02
    assert abs(unchanged - (0.1 + 0.1 / 34)) < 0.015
    assert abs(randomised - (0.1 - 0.1 / 34)) < 0.015
    replaced = masked[chosen][(masked[chosen] != MASK_ID) & (masked[chosen] != ids[chosen])]
    assert ((replaced >= 6) & (replaced < VOCAB)).all()


def test_masks_are_fixed_by_the_generator_seed():
    ids = special_batch(8, 64)
    random_ids = torch.arange(6, VOCAB)
    a = mask_tokens(ids, batch_generator(3, 1, 0), random_ids=random_ids)
    b = mask_tokens(ids, batch_generator(3, 1, 0), random_ids=random_ids)
    c = mask_tokens(ids, batch_generator(3, 1, 1), random_ids=random_ids)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


def make_task(bidirectional: bool, vocab: int = VOCAB) -> MaskedLMTask:
    model = ModelConfig(vocab_size=vocab, d_model=32, n_layers=2, num_heads=2, bidirectional=bidirectional)
    return MaskedLMTask.from_configs(model, OptimConfig(lr=3e-3, warmup_steps=1), max_steps=10, seed=5)


def test_loss_is_the_mean_over_masked_positions_only():
    task = make_task(bidirectional=True)
    batch = {"input_ids": special_batch(4, 96), "labels": torch.zeros(4, 96, dtype=torch.long)}
    loss = task.training_step(batch, batch_idx=2)
    masked, labels = mask_tokens(
        batch["input_ids"], batch_generator(5, 0, 0, 2, 0), random_ids=torch.arange(6, VOCAB)
    )
    logits = task.model(masked).logits
    chosen = labels != IGNORE_INDEX
    expected = F.cross_entropy(logits[chosen], labels[chosen])
    assert torch.allclose(loss, expected, rtol=1e-5)


def test_validation_is_deterministic():
    task = make_task(bidirectional=True)
    batch = {"input_ids": special_batch(4, 64)}
    totals = []
    for _ in range(2):
        task.on_validation_epoch_start()
        task.validation_step(batch, 0)
        task.validation_step(batch, 1)
        totals.append((task._val_nll.item(), task._val_count.item()))
    assert totals[0] == totals[1] and totals[0][1] > 0
    assert task.hparams.mask_prob == 0.15 and task.hparams.seed == 5


@pytest.mark.parametrize("bidirectional", [True, False])
def test_training_steps_reduce_the_loss(bidirectional):
    task = make_task(bidirectional)
    optimizer = task.configure_optimizers()["optimizer"]
    batch = {"input_ids": special_batch(4, 64)}
    losses = []
    for _ in range(6):
        optimizer.zero_grad()
        loss = task.training_step(batch, 0)  # same step and index: the same masks each time
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(map(torch.isfinite, map(torch.tensor, losses)))
    assert losses[-1] < losses[0]


def test_one_lightning_step_on_packed_molecule_sets(tmp_path):
    (tmp_path / "a.smi").write_text("".join(f"{s}\n" for s in ["CCO", "c1ccccc1O", "CC(=O)N", "CCCl"] * 3))
    tok = SmilesTokenizer()
    config = SimpleNamespace(path=str(tmp_path / "a.smi"), seq_len=32, val_fraction=0.25, batch_size=2)
    data = build_chem_data(config, tok, seed=0)
    config.packing = "sets"
    packed = build_chem_data(config, tok, seed=0)
    task = make_task(bidirectional=True, vocab=tok.vocab_size)
    for datamodule in (data, packed):
        trainer = L.Trainer(
            max_steps=1,
            limit_val_batches=1,
            accelerator="cpu",
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        trainer.fit(task, datamodule=datamodule)
        assert trainer.global_step == 1
        first = trainer.validate(task, datamodule=datamodule, verbose=False)[0]["val_loss"]
        again = trainer.validate(task, datamodule=datamodule, verbose=False)[0]["val_loss"]
        assert first == again and first > 0  # the same masks on every validation pass
