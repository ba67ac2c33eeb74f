"""Checkpoints: atomic writes, no non-finite weights on disk, clear errors for bad files, the choice of
the checkpoint to resume from, and the merge of the metrics of several sessions."""

from __future__ import annotations

import logging
import os

import lightning as L
import pytest
import torch

from biolm.errors import ConfigError, InputError
from biolm.tasks import checkpoints
from biolm.tasks.checkpoints import AtomicCheckpointIO, check_checkpoint, resume_checkpoint
from biolm.tasks.runner import merge_metrics


def fake_checkpoint(step: int = 3, weight: float = 1.0, **model_config) -> dict:
    return {
        "global_step": step,
        "epoch": 0,
        "state_dict": {"w": torch.full((4, 4), weight)},
        "hyper_parameters": {"model_config": {"d_model": 16, **model_config}},
    }


def test_save_is_atomic_when_the_write_fails_midway(tmp_path, monkeypatch):
    io, path = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    io.save_checkpoint(fake_checkpoint(step=1), path)
    good = path.read_bytes()

    def broken_save(obj, handle, *args, **kwargs):
        handle.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoints.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        io.save_checkpoint(fake_checkpoint(step=2), path)
    assert path.read_bytes() == good, "the previous checkpoint must survive a failed write"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"], "no temporary file left"
    assert check_checkpoint(path) == 1


def test_nonfinite_weights_are_never_written(tmp_path, caplog):
    io, path = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    io.save_checkpoint(fake_checkpoint(step=1), path)
    with caplog.at_level(logging.ERROR, logger="biolm.tasks.checkpoints"):
        io.save_checkpoint(fake_checkpoint(step=2, weight=float("nan")), path)
        io.save_checkpoint(fake_checkpoint(step=3, weight=float("inf")), tmp_path / "other.ckpt")
    assert check_checkpoint(path) == 1
    assert not (tmp_path / "other.ckpt").exists()
    assert "not writing checkpoint" in caplog.text and "NaN or inf" in caplog.text


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "text"])
def test_bad_checkpoints_are_one_line_input_errors_naming_the_file(tmp_path, damage):
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint(fake_checkpoint(), path)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flip":  # one bit of the weights: only the archive's checksums can tell
        at = data.index(torch.ones(16).numpy().tobytes()) + 5
        path.write_bytes(data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :])
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        path.write_text("not a checkpoint\n")
    with pytest.raises(InputError) as err:
        check_checkpoint(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_load_checkpoint_of_a_truncated_file_is_an_input_error(tmp_path):
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint(fake_checkpoint(), path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(InputError, match="last.ckpt: unreadable checkpoint"):
        AtomicCheckpointIO().load_checkpoint(path)


def test_a_checkpoint_of_another_model_shape_is_a_config_error(tmp_path):
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint(fake_checkpoint(), path)
    with pytest.raises(ConfigError, match="model.d_model=16, the config says 32"):
        check_checkpoint(path, {"d_model": 32, "n_layers": 2})


def _write(directory, name, step, mtime):
    path = directory / name
    AtomicCheckpointIO().save_checkpoint(fake_checkpoint(step=step), path)
    os.utime(path, (mtime, mtime))
    return path


def _damage(path, data):
    mtime = path.stat().st_mtime
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))


def test_resume_takes_the_newest_good_checkpoint_and_names_the_bad_ones(tmp_path, caplog):
    ckpts = tmp_path / "checkpoints"
    ckpts.mkdir()
    old = _write(ckpts, "on_exception.ckpt", 2, 1000)
    last = _write(ckpts, "last.ckpt", 4, 2000)
    _write(ckpts, "best-step=5.ckpt", 5, 3000)  # newer, but written after a validation: fallback only
    (ckpts / ".last.ckpt.tmp-999").write_bytes(b"half")  # a write killed midway
    assert resume_checkpoint(tmp_path) == last
    assert not (ckpts / ".last.ckpt.tmp-999").exists()

    _damage(last, last.read_bytes()[:50])
    with caplog.at_level(logging.WARNING, logger="biolm.tasks.checkpoints"):
        assert resume_checkpoint(tmp_path) == old
    assert "last.ckpt: truncated or corrupt checkpoint" in caplog.text

    _damage(old, b"")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="biolm.tasks.checkpoints"):
        assert resume_checkpoint(tmp_path).name == "best-step=5.ckpt"
    assert "written after a validation" in caplog.text

    _damage(ckpts / "best-step=5.ckpt", b"junk")
    with pytest.raises(InputError, match=r"no good checkpoint to resume from: .*last.ckpt") as err:
        resume_checkpoint(tmp_path)
    assert "\n" not in str(err.value)


def test_resume_without_checkpoints_says_so(tmp_path):
    with pytest.raises(InputError, match="no checkpoint to resume from"):
        resume_checkpoint(tmp_path)


class _Tiny(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_on_exception_checkpoint_is_not_written_before_the_first_step(tmp_path):
    from torch.utils.data import DataLoader, TensorDataset

    from biolm.tasks.checkpoints import SafeOnExceptionCheckpoint

    class Fail(L.Callback):
        def __init__(self, at: int) -> None:
            self.at = at

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            if trainer.global_step == self.at:
                raise RuntimeError("boom")

    loader = DataLoader(TensorDataset(torch.randn(8, 2)), batch_size=2)
    for at, written in [(0, False), (2, True)]:
        directory = tmp_path / str(at)
        trainer = L.Trainer(
            max_steps=4,
            callbacks=[SafeOnExceptionCheckpoint(dirpath=directory), Fail(at)],
            logger=False,
            default_root_dir=directory,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        with pytest.raises(RuntimeError, match="boom"):
            trainer.fit(_Tiny(), loader)
        assert (directory / "on_exception.ckpt").exists() is written


def test_merge_metrics_lets_a_resumed_session_supersede_the_killed_one(tmp_path):
    logs = tmp_path / "logs"
    (logs / "version_0").mkdir(parents=True)
    (logs / "version_1").mkdir(parents=True)
    # Killed after logging step 4 (its last checkpoint was at step 3) and halfway through a line.
    (logs / "version_0" / "metrics.csv").write_text(
        "epoch,step,train_loss,val_loss\n0,0,2.5,\n0,1,2.4,\n0,2,2.3,\n0,2,,2.35\n0,3,2.2,\n1,4,9.9,\n1,5,9"
    )
    (logs / "version_1" / "metrics.csv").write_text("epoch,step,train_loss,val_loss\n1,4,2.1,\n1,5,2.0,\n")
    rows = (merge_metrics(tmp_path)).read_text().splitlines()
    assert rows == [
        "epoch,step,train_loss,val_loss",
        "0,0,2.5,",
        "0,1,2.4,",
        "0,2,2.3,",
        "0,2,,2.35",
        "0,3,2.2,",
        "1,4,2.1,",
        "1,5,2.0,",
    ]


class Metadata:
    """A type the weights-only unpickler does not know (as a newer Lightning might add, or an attacker)."""


def test_a_checkpoint_asking_for_an_unknown_type_is_refused_in_one_line(tmp_path):
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({**fake_checkpoint(step=7), "extra": Metadata()}, path)
    with pytest.raises(checkpoints.UnsafeCheckpointError) as info:
        check_checkpoint(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: refused checkpoint: its pickle asks for ")
    assert "test_checkpoint_io.Metadata" in message
    with pytest.raises(checkpoints.UnsafeCheckpointError, match="test_checkpoint_io.Metadata"):
        AtomicCheckpointIO().load_checkpoint(path)
