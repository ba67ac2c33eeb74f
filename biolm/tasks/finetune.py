"""Fine-tuning a pretrained backbone with a small head: the LightningModule, its batches and the
Lightning run that trains it and predicts with the best epoch (the recipe around it, with its options
and the linear-probe start, is `biolm.evaluation.finetune`).

The head reads the mean of the final hidden states over each sequence's own positions (not `<bos>`,
not padding). Causal models read right-padded batches (padding cannot change earlier positions);
bidirectional / RC-equivariant models (`config.stateless`) read their rows packed back to back with
`cu_seqlens`, as `biolm.inference.embed_ids` does, so that padding never enters a reverse pass.
Training uses AdamW; Lightning's EarlyStopping and ModelCheckpoint on the validation metric pick the
best epoch, whose weights are restored before predicting the test rows.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Sequence

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from torch.utils.data import DataLoader

from biolm.models import BioLM
from biolm.tasks.lr_schedule import warmup_cosine
from biolm.tasks.metrics import PRIMARY, classification_metrics, regression_metrics, score_for_selection
from biolm.tasks.trainer import build_trainer

HEADS = ("linear", "mlp")
LR_SCHEDULES = ("constant", "warmup-cosine")
WARMUP_FRACTION = 0.1  # of the planned steps (max_epochs x batches, or max_steps), for "warmup-cosine"
log = logging.getLogger(__name__)


def collate(batch: list[tuple[np.ndarray, float]], bos_id: int, pad_id: int) -> dict[str, torch.Tensor]:
    """Rows of (token ids, label) -> `input_ids` [B, 1 + max len] (<bos> first, right-padded),
    `lengths` [B] (tokens after <bos>) and `labels` [B]."""
    lengths = torch.tensor([len(ids) for ids, _ in batch])
    ids = torch.full((len(batch), int(lengths.max()) + 1), pad_id, dtype=torch.long)
    ids[:, 0] = bos_id
    for r, (seq, _) in enumerate(batch):
        ids[r, 1 : len(seq) + 1] = torch.from_numpy(np.asarray(seq, dtype=np.int64))
    labels = torch.tensor(np.array([y for _, y in batch]))
    return {"input_ids": ids, "lengths": lengths, "labels": labels}


def reverse_complement_rows(
    input_ids: torch.Tensor, lengths: torch.Tensor, table: torch.Tensor
) -> torch.Tensor:
    """Rows of `collate` with each sequence (positions 1..length) reverse-complemented in place of
    itself; `<bos>` and padding stay where they are. `table` [vocab] maps an id to its complement."""
    positions = torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)
    inside = (positions >= 1) & (positions <= lengths[:, None])
    source = torch.where(inside, lengths[:, None] + 1 - positions, positions)
    return table[input_ids.gather(1, source)]


def make_loader(
    ids: Sequence[np.ndarray], labels: np.ndarray, tokenizer, batch_size: int, shuffle: bool, seed: int
):
    """A DataLoader of `collate` batches; shuffling is drawn from `seed`."""
    rows = list(zip(ids, labels.tolist(), strict=True))
    return DataLoader(
        rows,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=torch.Generator().manual_seed(seed) if shuffle else None,
        collate_fn=lambda b: collate(b, tokenizer.bos_id, tokenizer.pad_id),
    )


class FineTuneTask(L.LightningModule):
    """Backbone + head for sequence classification or regression.

    Args:
        backbone: a pretrained `BioLM` (trained in place).
        task: "classification" or "regression".
        n_outputs: number of classes, or 1 for regression.
        head: "linear" or "mlp" (one hidden layer of d_model, GELU).
        lr, weight_decay: AdamW settings.
        lr_schedule: "constant", or "warmup-cosine": linear warm-up over the first WARMUP_FRACTION of
            the planned steps, then cosine decay to 0 at the last planned step (early stopping may
            end the run before).
        target_mean, target_sd: regression targets are standardised with these for the loss;
            predictions are returned in the original units.
        rc_table: DNA: [vocab] id -> complement id. Training rows are then reverse-complemented at
            random (each with probability 1/2, drawn from `seed`), and in eval mode outputs are the
            mean over both strands (of class probabilities, returned as their log; of predictions).
        seed: seed of the strand draws.
    """

    def __init__(
        self,
        backbone: BioLM,
        task: str,
        n_outputs: int,
        *,
        head: str = "linear",
        lr: float = 1e-4,
        weight_decay: float = 0.01,
        lr_schedule: str = "constant",
        target_mean: float = 0.0,
        target_sd: float = 1.0,
        rc_table: torch.Tensor | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.task = task
        d = backbone.config.d_model
        if head == "linear":
            self.head = torch.nn.Linear(d, n_outputs)
        else:
            self.head = torch.nn.Sequential(
                torch.nn.Linear(d, d), torch.nn.GELU(), torch.nn.Linear(d, n_outputs)
            )
        self.lr, self.weight_decay, self.lr_schedule = lr, weight_decay, lr_schedule
        self.target_mean, self.target_sd = target_mean, target_sd
        # Not a buffer: the complement table is the tokenizer's, not a weight to checkpoint.
        self.rc_table = rc_table
        self._strand_draws = torch.Generator().manual_seed(seed)
        self._val_outputs: list[tuple[torch.Tensor, torch.Tensor]] = []

    def pooled(self, input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """[B, d_model] mean of the hidden states at positions 1..length of each row."""
        if self.backbone.config.stateless:
            rows = [input_ids[r, : int(n) + 1] for r, n in enumerate(lengths)]
            bounds = torch.tensor([0] + [len(x) for x in rows]).cumsum(0).to(input_ids.device)
            hidden = self.backbone(torch.cat(rows)[None], cu_seqlens=bounds).hidden[0]
            spans = zip(bounds[:-1], bounds[1:], strict=True)
            return torch.stack([hidden[int(a) + 1 : int(b)].mean(0) for a, b in spans])
        hidden = self.backbone(input_ids).hidden
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        keep = ((positions >= 1) & (positions <= lengths[:, None])).to(hidden.dtype)
        return (hidden * keep[..., None]).sum(1) / lengths[:, None].to(hidden.dtype)

    def forward(self, input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """[B, K] logits (classification) or [B] predictions in target units (regression); with
        `rc_table`, in eval mode, the mean over both strands (log of the mean class probabilities)."""
        out = self._one_strand(input_ids, lengths)
        if self.rc_table is None or self.training:
            return out
        other = self._one_strand(self._reverse_complement(input_ids, lengths), lengths)
        if self.task == "classification":
            both = torch.stack([out.log_softmax(-1), other.log_softmax(-1)])
            return torch.logsumexp(both, 0) - torch.log(torch.tensor(2.0, device=out.device))
        return (out + other) / 2

    def _one_strand(self, input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        out = self.head(self.pooled(input_ids, lengths).float())
        if self.task == "classification":
            return out
        return out[:, 0] * self.target_sd + self.target_mean

    def _reverse_complement(self, input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return reverse_complement_rows(input_ids, lengths, self.rc_table.to(input_ids.device))

    def _random_strands(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The batch with each row on the reverse strand with probability 1/2 (training, rc_table)."""
        ids, lengths = batch["input_ids"], batch["lengths"]
        flip = torch.rand(len(ids), generator=self._strand_draws) < 0.5
        flipped = torch.where(flip.to(ids.device)[:, None], self._reverse_complement(ids, lengths), ids)
        return {**batch, "input_ids": flipped}

    def _loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        if self.training and self.rc_table is not None:
            batch = self._random_strands(batch)
        out = self(batch["input_ids"], batch["lengths"])
        if self.task == "classification":
            return F.cross_entropy(out, batch["labels"].long()), out
        scale = (out - batch["labels"].float()) / self.target_sd
        return (scale**2).mean(), out

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, _ = self._loss(batch)
        self.log("train_loss", loss, prog_bar=True, batch_size=len(batch["lengths"]))
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        loss, out = self._loss(batch)
        self.log("val_loss", loss, batch_size=len(batch["lengths"]))
        self._val_outputs.append((out.detach().cpu(), batch["labels"].cpu()))

    def on_validation_epoch_end(self) -> None:
        if not self._val_outputs:
            return
        out = torch.cat([o for o, _ in self._val_outputs]).numpy()
        y = torch.cat([y for _, y in self._val_outputs]).numpy()
        self._val_outputs.clear()
        metrics = evaluate_outputs(self.task, y, out)
        # NaN (e.g. constant predictions) counts as the worst score, so checkpointing stays well defined.
        self.log("val_score", score_for_selection(metrics, PRIMARY[self.task]), prog_bar=True)

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self(batch["input_ids"], batch["lengths"])

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        if self.lr_schedule == "constant":
            return optimizer
        total = int(self.trainer.estimated_stepping_batches)
        schedule = warmup_cosine(max(1, round(WARMUP_FRACTION * total)), total)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def seeded_task(backbone: BioLM, task: str, n_outputs: int, *, seed: int, **options) -> FineTuneTask:
    """A `FineTuneTask` after seeding every generator Lightning knows (workers too) with `seed`, so
    that its head and the whole run after it are drawn from `seed`."""
    L.seed_everything(seed, workers=True, verbose=False)
    return FineTuneTask(backbone, task, n_outputs, seed=seed, **options)


def evaluate_outputs(task: str, y: np.ndarray, out: np.ndarray) -> dict[str, float]:
    """Metrics of raw model outputs: logits [N, K] (softmaxed here) or predictions [N]."""
    if task == "classification":
        proba = torch.softmax(torch.as_tensor(out, dtype=torch.float64), dim=-1).numpy()
        return classification_metrics(y, proba)
    return regression_metrics(y, out)


def fit_and_predict(
    module: FineTuneTask,
    loaders: Sequence[DataLoader],
    *,
    max_epochs: int,
    max_steps: int,
    patience: int,
    accelerator: str = "cpu",
    progress: bool = True,
) -> np.ndarray:
    """Train `module` on the (train, valid) loaders, stopping early on the validation score, and
    predict the test loader with the best epoch's weights.

    Returns:
        Test outputs: [N, K] class probabilities or [N] predictions (float64).
    """
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="biolm-finetune-") as workdir, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
        # Lightning's own deprecation notice about torch's pytree, not ours to act on.
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        # A run stopped before its first validation is reported once, below.
        warnings.filterwarnings("ignore", message=".*could not find the monitored key.*")
        checkpoint = ModelCheckpoint(dirpath=workdir, monitor="val_score", mode="max", save_top_k=1)
        # Not strict: a run stopped by max_steps inside its first epoch has no validation score yet.
        stopping = EarlyStopping(
            monitor="val_score", mode="max", patience=patience, strict=False, check_on_train_epoch_end=False
        )
        trainer = build_trainer(
            root_dir=workdir,
            callbacks=[checkpoint, stopping],
            logger=False,
            progress=progress,
            accelerator=accelerator,
            devices=1,
            max_epochs=max_epochs,
            max_steps=max_steps,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            deterministic=False,
        )
        trainer.fit(module, loaders[0], loaders[1])
        ckpt = "best" if checkpoint.best_model_path else None
        if ckpt is None:
            log.warning(
                "training stopped before any validation (max_steps); predicting with the last weights"
            )
        outputs = trainer.predict(module, loaders[2], ckpt_path=ckpt)
    out = torch.cat(outputs).double()
    if module.task == "classification":
        out = torch.softmax(out, dim=-1)
    return out.numpy()


def pooled_states(
    module: FineTuneTask, rows: Sequence[np.ndarray], batch_size: int, progress: bool = False
) -> np.ndarray:
    """[N, d] pooled final states of token-id rows, with the backbone frozen and in eval mode; with
    `rc_table`, the N rows of the reverse strands follow ([2N, d])."""
    from tqdm.auto import tqdm

    was_training = module.training
    module.eval()
    tok = module.backbone.tokenizer
    loader = make_loader(rows, np.zeros(len(rows)), tok, batch_size, False, 0)
    forward, reverse = [], []
    with torch.no_grad():
        for batch in tqdm(loader, desc="probe features", disable=not progress, leave=False):
            ids, lengths = batch["input_ids"], batch["lengths"]
            forward.append(module.pooled(ids, lengths).float())
            if module.rc_table is not None:
                reverse.append(module.pooled(module._reverse_complement(ids, lengths), lengths).float())
    module.train(was_training)
    return torch.cat(forward + reverse).numpy()
