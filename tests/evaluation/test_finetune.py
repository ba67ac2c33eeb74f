"""The fine-tuning module: pooling over real positions only, for causal and packed models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from biolm.evaluation.finetune import finetune
from biolm.models.io import load
from biolm.tasks.finetune import FineTuneTask, collate
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


def test_the_best_validation_epoch_is_restored_before_predicting(tmp_path, monkeypatch):
    path = tiny_model_dir(tmp_path / "m")
    tok = load(path).tokenizer
    rng = np.random.default_rng(1)
    seqs = ["".join(rng.choice(list("AWK"), 9)) for _ in range(24)]
    ids = [tok.encode(s) for s in seqs]
    y = np.array([s.count("W") for s in seqs], dtype=np.float64)
    rows = (ids[:16], y[:16]), (ids[16:20], y[16:20]), (ids[20:], y[20:])
    snapshots = []

    def second_epoch_is_best(self):
        # Replaces the real metric: epoch 1 scores best, so its weights must come back for predicting.
        self._val_outputs.clear()
        snapshots.append({k: v.detach().clone() for k, v in self.state_dict().items()})
        self.log("val_score", 1.0 if self.current_epoch == 1 else 0.0)

    monkeypatch.setattr(FineTuneTask, "on_validation_epoch_end", second_epoch_is_best)
    out = finetune(
        load(path), "regression", 1, *rows, lr=1e-2, batch_size=8, max_epochs=4, patience=5, progress=False
    )
    assert len(snapshots) == 4

    def predict_with(state):
        module = FineTuneTask(load(path), "regression", 1, target_mean=y[:16].mean(), target_sd=y[:16].std())
        module.load_state_dict(state)
        batch = collate(list(zip(rows[2][0], rows[2][1], strict=True)), tok.bos_id, tok.pad_id)
        with torch.no_grad():
            return module.eval()(batch["input_ids"], batch["lengths"]).double().numpy()

    np.testing.assert_allclose(out, predict_with(snapshots[1]), rtol=1e-5, atol=1e-6)
    assert not np.allclose(out, predict_with(snapshots[3]), rtol=1e-4)


def test_finetune_trains_a_bidirectional_model_through_packed_rows(tmp_path):
    path = tiny_model_dir(tmp_path / "b", bidirectional=True)
    tok = load(path).tokenizer
    ids = [tok.encode(s) for s in ["MKTAY", "MKW", "AYIAKQ", "WWKT"] * 3]
    y = np.array([0, 1, 0, 1] * 3)
    before = load(path).state_dict()
    backbone = load(path)
    out = finetune(
        backbone,
        "classification",
        2,
        (ids, y),
        (ids[:4], y[:4]),
        (ids[:4], y[:4]),
        max_epochs=1,
        progress=False,
    )
    assert out.shape == (4, 2) and np.allclose(out.sum(1), 1)
    changed = [k for k, v in backbone.state_dict().items() if not torch.equal(v, before[k])]
    assert changed  # the backbone itself was trained, not only the head


def _probe_rows(tok, n: int, seed: int, letters: str = "ACGT", length: int = 12):
    rng = np.random.default_rng(seed)
    seqs = ["".join(rng.choice(list(letters), length - (i % 3))) for i in range(n)]
    return [tok.encode(s) for s in seqs], seqs


@pytest.mark.parametrize(
    "task, labels",
    [
        ("classification", lambda seqs: np.array([s.count("G") > 2 for s in seqs], dtype=float)),
        # Three classes, of which class 3 (of 4 outputs) never occurs: its probability must stay ~0.
        ("classification", lambda seqs: np.array([s.count("G") % 3 for s in seqs], dtype=float)),
        ("regression", lambda seqs: np.array([s.count("G") + 0.5 * s.count("C") for s in seqs])),
    ],
)
def test_a_probe_start_makes_the_head_the_probe(tmp_path, task, labels):
    from biolm.evaluation.finetune import start_from_probe
    from biolm.evaluation.probe import fit_probe, predict
    from biolm.tasks.finetune import pooled_states

    model = load(tiny_model_dir(tmp_path / "m", kind="dna"))
    tok = model.tokenizer
    ids, seqs = _probe_rows(tok, 60, seed=0)
    y = labels(seqs)
    n_outputs = {"regression": 1}.get(task, 4 if y.max() == 2 else 2)
    mean, sd = (0.0, 1.0) if task == "classification" else (y[:40].mean(), y[:40].std())
    module = FineTuneTask(model, task, n_outputs, target_mean=mean, target_sd=sd)
    start_from_probe(module, (ids[:40], y[:40]), (ids[40:50], y[40:50]), batch_size=7, seed=0)

    # The same probe fitted by hand on the same features predicts what the head now outputs.
    features = pooled_states(module, ids, batch_size=7)
    y_fit = y.astype(int) if task == "classification" else y
    probe, _ = fit_probe(
        task, features[:40], y_fit[:40], features[40:50], y_fit[40:50], seed=0, n_classes=n_outputs
    )
    expected = predict(task, probe, features[50:], n_outputs)
    batch = collate(list(zip(ids[50:], y[50:], strict=True)), tok.bos_id, tok.pad_id)
    with torch.no_grad():
        out = module.eval()(batch["input_ids"], batch["lengths"]).double()
    got = torch.softmax(out, -1).numpy() if task == "classification" else out.numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


def test_reverse_complement_rows_keeps_bos_and_padding(tmp_path):
    from biolm.tasks.finetune import reverse_complement_rows

    tok = load(tiny_model_dir(tmp_path / "m", kind="dna")).tokenizer
    seqs = ["ACGTTG", "GGA", "TTTACN"]
    batch = collate([(tok.encode(s), 0) for s in seqs], tok.bos_id, tok.pad_id)
    flipped = reverse_complement_rows(
        batch["input_ids"], batch["lengths"], torch.tensor(tok.complement_table)
    )
    expected = collate([(tok.encode(s), 0) for s in ["CAACGT", "TCC", "NGTAAA"]], tok.bos_id, tok.pad_id)
    assert torch.equal(flipped, expected["input_ids"])


def test_rc_augment_predicts_the_same_for_both_strands_and_trains_on_both(tmp_path):
    from biolm.tasks.finetune import reverse_complement_rows

    path = tiny_model_dir(tmp_path / "m", kind="dna")
    tok = load(path).tokenizer
    table = torch.tensor(tok.complement_table)
    ids, _ = _probe_rows(tok, 16, seed=1)
    batch = collate([(x, 0) for x in ids], tok.bos_id, tok.pad_id)
    rc_ids = reverse_complement_rows(batch["input_ids"], batch["lengths"], table)
    module = FineTuneTask(load(path), "classification", 2, rc_table=table, seed=3)
    torch.nn.init.normal_(module.head.weight)
    with torch.no_grad():
        one = torch.softmax(module.eval()(batch["input_ids"], batch["lengths"]), -1)
        other = torch.softmax(module(rc_ids, batch["lengths"]), -1)
        plain = torch.softmax(module._one_strand(batch["input_ids"], batch["lengths"]), -1)
    torch.testing.assert_close(one, other, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(one, plain, atol=1e-4)  # the mean over strands is not one strand's output
    torch.testing.assert_close(one.sum(-1), torch.ones(16))

    drawn = module.train()._random_strands(batch)["input_ids"]
    is_rc = (drawn == rc_ids).all(1) & ~(drawn == batch["input_ids"]).all(1)
    assert torch.equal(is_rc | (drawn == batch["input_ids"]).all(1), torch.ones(16, dtype=torch.bool))
    assert 0 < int(is_rc.sum()) < 16  # some rows of each strand
    again = FineTuneTask(load(path), "classification", 2, rc_table=table, seed=3).train()
    assert torch.equal(again._random_strands(batch)["input_ids"], drawn)  # seeded


def test_finetune_options_that_do_not_fit_the_model_are_config_errors(tmp_path):
    from biolm.errors import ConfigError

    path = tiny_model_dir(tmp_path / "m")  # a protein model
    tok = load(path).tokenizer
    ids = [tok.encode("MKTAY")] * 4
    rows = (ids, np.array([0, 1, 0, 1]))
    with pytest.raises(ConfigError, match="rc_augment needs a DNA model"):
        finetune(load(path), "classification", 2, rows, rows, rows, rc_augment=True, progress=False)
    with pytest.raises(ConfigError, match="needs the linear head"):
        finetune(load(path), "classification", 2, rows, rows, rows, head="mlp", head_init="probe")
    with pytest.raises(ConfigError, match="head_init must be one of"):
        finetune(load(path), "classification", 2, rows, rows, rows, head_init="zeros")
    with pytest.raises(ConfigError, match="lr_schedule must be one of"):
        finetune(load(path), "classification", 2, rows, rows, rows, lr_schedule="linear")
    with pytest.raises(ConfigError, match="set max_epochs or max_steps"):
        finetune(
            load(path), "classification", 2, rows, rows, rows, lr_schedule="warmup-cosine", max_epochs=-1
        )


@pytest.mark.parametrize("schedule", ["constant", "warmup-cosine"])
def test_the_learning_rate_follows_the_schedule_over_the_planned_steps(tmp_path, monkeypatch, schedule):
    from biolm.tasks.lr_schedule import warmup_cosine

    path = tiny_model_dir(tmp_path / "m")
    tok = load(path).tokenizer
    ids = [tok.encode(s) for s in ["MKTAY", "MKW", "AYIAKQ", "WWKT"] * 5]
    y = np.array([0, 1, 0, 1] * 5)
    seen = []

    def record_lr(self, batch, batch_idx):
        seen.append(self.optimizers().param_groups[0]["lr"])

    monkeypatch.setattr(FineTuneTask, "on_train_batch_start", record_lr)
    options = dict(lr=1e-2, batch_size=4, max_epochs=2, patience=5, lr_schedule=schedule, progress=False)
    finetune(load(path), "classification", 2, (ids, y), (ids[:4], y[:4]), (ids[:4], y[:4]), **options)
    # 20 rows in batches of 4, 2 epochs: 10 planned steps; warm-up 10 % of them, one step.
    factors = [warmup_cosine(1, 10)(step) for step in range(10)] if schedule != "constant" else [1.0] * 10
    assert seen == pytest.approx([1e-2 * f for f in factors])
