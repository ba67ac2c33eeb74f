"""Per-rank shards without duplicates, and the data position a resumed run starts from."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from biolm.data.datamodule import ResumableData, ShardSampler
from biolm.data.ranks import is_rank_zero


class Epoched(Dataset):
    """Example i of epoch e is (e, i)."""

    def __init__(self, size: int) -> None:
        self.size, self.epoch = size, 0

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input_ids": torch.tensor([self.epoch, index])}


@pytest.mark.parametrize("size", [12, 13, 14])
@pytest.mark.parametrize("world", [1, 2, 3, 5])
def test_training_shards_are_disjoint_equal_and_never_padded(size, world):
    shards = [list(ShardSampler(Epoched(size), r, world, even=True)) for r in range(world)]
    flat = [i for shard in shards for i in shard]
    assert len(flat) == len(set(flat)), "an example on two ranks (or twice on one)"
    assert {len(s) for s in shards} == {size // world}, "ranks must run the same number of steps"
    assert set(flat) == set(range(size - size % world))
    assert all(len(s) == len(ShardSampler(Epoched(size), r, world)) for r, s in enumerate(shards))


@pytest.mark.parametrize("world", [1, 2, 3, 7])
def test_validation_shards_cover_every_example_once(world):
    shards = [list(ShardSampler(Epoched(10), r, world, even=False)) for r in range(world)]
    flat = sorted(i for shard in shards for i in shard)
    assert flat == list(range(10))


def test_set_epoch_reaches_the_dataset_and_resume_skips_the_consumed_prefix():
    data = Epoched(12)
    sampler = ShardSampler(data, rank=1, world_size=2)
    sampler.set_epoch(3)
    assert data.epoch == 3
    sampler.resume(epoch=4, examples=6)  # 3 per rank consumed: ranks interleave, so indices 0..5
    assert data.epoch == 4
    assert list(sampler) == [7, 9, 11]
    assert len(sampler) == 6, "the epoch's length stays whole (Lightning counts the batches done)"
    sampler.set_epoch(5)
    assert list(sampler) == [1, 3, 5, 7, 9, 11], "the skip applies to the resumed epoch only"


def test_resume_with_another_world_size_skips_the_same_prefix():
    # 8 examples consumed by 2 ranks = indices 0..7; 4 ranks then skip 2 each: 0..7 again.
    samplers = [ShardSampler(Epoched(16), r, 4) for r in range(4)]
    for s in samplers:
        s.resume(0, 8)
    assert sorted(i for s in samplers for i in s) == list(range(8, 16))


class _Inner:
    def __init__(self, train: Dataset, val: Dataset) -> None:
        self.train, self.val = train, val

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train, batch_size=2)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val, batch_size=2)


def test_resumable_data_state_round_trip_continues_the_epoch():
    module = ResumableData(_Inner(Epoched(10), Epoched(3)))
    first = iter(module.train_dataloader())
    for _ in range(2):
        next(first)
        module.batch_done(epoch=0, rows=2)
    state = module.state_dict()
    assert state == {"epoch": 0, "examples": 4}

    resumed = ResumableData(_Inner(Epoched(10), Epoched(3)))
    resumed.load_state_dict(state)
    rest = [b["input_ids"][:, 1].tolist() for b in resumed.train_dataloader()]
    assert rest == [[4, 5], [6, 7], [8, 9]]
    assert len(resumed.train_dataloader()) == 5


def test_resumable_data_state_of_a_finished_epoch_points_at_the_next():
    module = ResumableData(_Inner(Epoched(4), Epoched(3)))
    module.train_dataloader()
    module.batch_done(epoch=2, rows=2)
    module.batch_done(epoch=2, rows=2)
    assert module.state_dict() == {"epoch": 3, "examples": 0}
    module.batch_done(epoch=3, rows=2)
    assert module.state_dict() == {"epoch": 3, "examples": 2}


def test_loaders_draw_nothing_from_the_global_generator():
    module = ResumableData(_Inner(Epoched(4), Epoched(3)))
    torch.manual_seed(1)
    before = torch.get_rng_state()
    for loader in (module.train_dataloader(), module.val_dataloader()):
        list(loader)
    assert torch.equal(before, torch.get_rng_state())


@pytest.mark.parametrize(
    "env, zero",
    [
        ({}, True),
        ({"RANK": "0", "LOCAL_RANK": "0"}, True),
        ({"RANK": "3", "LOCAL_RANK": "1"}, False),
        ({"LOCAL_RANK": "1"}, False),  # started by Lightning's own launcher
        ({"NODE_RANK": "1"}, False),  # the first process of a second node
        ({"SLURM_PROCID": "2", "SLURM_LOCALID": "0"}, False),
        ({"SLURM_PROCID": "0"}, True),
    ],
)
def test_is_rank_zero_reads_every_launcher(monkeypatch, env, zero):
    for key in ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert is_rank_zero() is zero


@pytest.mark.parametrize(("rank", "printed"), [("0", True), ("1", False)])
def test_only_rank_zero_describes_the_genome(tmp_path, monkeypatch, capsys, rank, printed):
    from biolm.configs import load_config, packaged_config, to_train_config
    from biolm.domains import DNA

    genome = tmp_path / "g.fa"
    genome.write_text(">chr\n" + "ACGTTGCA" * 500 + "\n")
    monkeypatch.setenv("RANK", rank)
    DNA.training_data(to_train_config(load_config(packaged_config("dna"), [f"data.path={genome}"])))
    assert (str(genome) in capsys.readouterr().out) is printed
