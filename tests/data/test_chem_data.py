"""Molecule datasets: randomized SMILES, vocabulary checks, examples, set packing, the DataModule."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from rdkit import Chem

from biolm.configs import load_config, packaged_config, to_train_config
from biolm.data.chem import MoleculeSet
from biolm.data.chem_datamodule import build_chem_data, split_molecules
from biolm.data.chem_dataset import IGNORE_INDEX, MoleculeDataset, MoleculeEncoder, randomized_smiles
from biolm.data.layout import DEFAULT_LAYOUT
from biolm.data.molsets import PackedSets, packed_example
from biolm.data.packing import pad_batch
from biolm.errors import InputError
from biolm.io.smiles import ChemDataWarning
from biolm.tokenizers import SmilesTokenizer

DRUGS = [
    "CC(=O)Oc1ccccc1C(=O)O",
    "CN1C=NC2=C1C(=O)N(C(=O)N2C)C",
    "C[C@H](N)C(=O)O",
    "CC(C)Cc1ccc(cc1)[C@@H](C)C(=O)O",
    "O=C(O)C/C=C/c1ccccc1",
    "c1ccc2c(c1)ccc1ccccc12",
    "CCN(CC)CCOC(=O)c1ccc(N)cc1",
    "OC[C@H]1OC(O)[C@H](O)[C@@H](O)[C@@H]1O",
]


def canon(smiles: str) -> str:
    return Chem.MolToSmiles(Chem.MolFromSmiles(smiles))


def molecule_set(name: str, smiles: list[str]) -> MoleculeSet:
    return MoleculeSet(
        name, f"{name}.smi", [canon(s) for s in smiles], list(range(1, len(smiles) + 1)), len(smiles)
    )


@pytest.fixture
def tok():
    return SmilesTokenizer()


def test_randomized_smiles_is_the_same_molecule_and_seeded():
    for smiles in map(canon, DRUGS):
        forms = {randomized_smiles(smiles, seed) for seed in range(1, 11)}
        assert {canon(f) for f in forms} == {smiles}  # stereochemistry included
        assert randomized_smiles(smiles, 5) == randomized_smiles(smiles, 5)
    assert len({randomized_smiles(canon(DRUGS[3]), s) for s in range(1, 11)}) > 3


def test_training_examples_are_random_reproducible_and_validation_canonical(tok):
    encoder = MoleculeEncoder(tok, "error", 128)
    smiles = [canon(s) for s in DRUGS]
    a = MoleculeDataset(smiles, encoder, seed=3, train=True)
    b = MoleculeDataset(smiles, encoder, seed=3, train=True)
    texts = [tok.decode(a[i]["input_ids"]) for i in range(len(a))]
    assert texts == [tok.decode(b[i]["input_ids"]) for i in range(len(b))]
    assert sorted(canon(t) for t in texts) == sorted(smiles)  # a permutation of the molecules
    assert texts != [smiles[a.molecule(i)] for i in range(len(a))]  # randomized, not canonical
    b.epoch = 1
    assert [b.molecule(i) for i in range(len(b))] != [a.molecule(i) for i in range(len(a))]
    assert texts != [tok.decode(b[i]["input_ids"]) for i in range(len(b))]
    val = MoleculeDataset(smiles, encoder, seed=3, train=False)
    assert [tok.decode(val[i]["input_ids"]) for i in range(len(val))] == smiles


def test_example_and_batch_layout(tok):
    encoder = MoleculeEncoder(tok, "error", 64)
    val = MoleculeDataset(["CCO", "c1ccccc1"], encoder, seed=0, train=False)
    ex = val[0]
    assert ex["input_ids"].tolist() == [tok.bos_id, *tok.encode("CCO").tolist(), tok.eos_id]
    assert ex["labels"].tolist() == [*tok.encode("CCO").tolist(), tok.eos_id, IGNORE_INDEX]
    batch = pad_batch([val[0], val[1]])
    assert batch["input_ids"].shape == batch["labels"].shape == (2, 10)
    assert batch["input_ids"].dtype == torch.long and set(batch) == {"input_ids", "labels"}
    assert batch["input_ids"][0, 5:].tolist() == [tok.pad_id] * 5
    assert batch["labels"][0, 4:].tolist() == [IGNORE_INDEX] * 6


def test_unknown_tokens_error_skip_or_replace(tok):
    mols = MoleculeSet("odd", "odd.smi", ["CCO", "C[Qq]1ccccc1", "CCN"], [1, 2, 3], 3)
    with pytest.raises(InputError, match=r"odd\.smi: line 2: SMILES token '\[Qq\]'.*data\.unknown=skip"):
        MoleculeEncoder(tok, "error", 64).check(mols)
    with pytest.warns(
        ChemDataWarning, match=r"odd\.smi: skipped 1 of 3 molecules \(tokens outside the vocab"
    ):
        kept = MoleculeEncoder(tok, "skip", 64).check(mols)
    assert kept.lines == [1, 3]
    encoder = MoleculeEncoder(tok, "replace", 64)
    with pytest.warns(ChemDataWarning, match=r"read as <unk>: \[Qq\] x1"):
        assert len(encoder.check(mols)) == 3
    assert tok.unk_id in encoder.encode(mols.smiles[1]).tolist()
    with pytest.raises(InputError, match="data.unknown must be one of"):
        MoleculeEncoder(tok, "ignore", 64)


def test_too_long_molecules_are_skipped_with_a_warning(tok):
    mols = molecule_set("long", ["CC", "C" * 20, "CCC"])
    with pytest.warns(
        ChemDataWarning, match=r"skipped 1 of 3 molecules \(over data\.seq_len=10 tokens\): line 2"
    ):
        assert MoleculeEncoder(tok, "error", 10).check(mols).lines == [1, 3]


def test_layout_runs_respect_the_budget():
    lengths = [3, 4, 2, 7, 1, 1, 8]
    packs = DEFAULT_LAYOUT.runs(lengths, budget=10)
    assert [i for p in packs for i in p] == list(range(len(lengths)))
    assert all(1 + sum(lengths[i] + 1 for i in p) <= 10 for p in packs)
    assert packs == [[0, 1], [2], [3], [4, 5], [6]]


def test_packed_example_positions_restart_per_molecule(tok):
    mols = [np.array([10, 11, 12]), np.array([13]), np.array([14, 15])]
    ex = packed_example(mols)
    b, s, e = tok.bos_id, tok.sep_id, tok.eos_id
    assert ex["input_ids"].tolist() == [b, 10, 11, 12, s, 13, s, 14, 15, e]
    assert ex["position_ids"].tolist() == [0, 1, 2, 3, 0, 1, 0, 1, 2, 3]
    assert ex["labels"].tolist() == [10, 11, 12, s, 13, s, 14, 15, e, IGNORE_INDEX]


def test_packed_sets_budget_membership_and_epoch_shuffle(tok):
    sets = [molecule_set("a", DRUGS[:4]), molecule_set("b", DRUGS[4:])]
    encoder = MoleculeEncoder(tok, "error", 48)
    train = PackedSets(sets, encoder, seed=1, train=True)
    members = {name: {canon(s) for s in m.smiles} for name, m in zip("ab", sets, strict=True)}

    def molecules_of(dataset):
        out = []
        for i in range(len(dataset)):
            ex = dataset[i]
            assert len(ex["input_ids"]) <= 48
            ids = ex["input_ids"].tolist()
            cuts = [j for j, t in enumerate(ids) if t in (tok.bos_id, tok.sep_id, tok.eos_id)]
            mols = [canon(tok.decode(ids[x + 1 : y])) for x, y in zip(cuts, cuts[1:], strict=False)]
            assert any(set(mols) <= m for m in members.values())  # one set per example
            assert (ex["position_ids"][torch.tensor(cuts[:-1])] == 0).all()
            out.append(mols)
        return out

    epoch0 = molecules_of(train)
    assert sorted(m for p in epoch0 for m in p) == sorted(canon(s) for s in DRUGS)  # each once
    assert len(epoch0) > 2  # the budget forced several packs
    again = PackedSets(sets, encoder, seed=1, train=True)
    assert molecules_of(again) == epoch0
    train.epoch = 1
    epoch1 = molecules_of(train)
    assert len(epoch1) == len(epoch0) and epoch1 != epoch0
    val = PackedSets(sets, encoder, seed=1, train=False)
    val.epoch = 3
    first = val[0]["input_ids"].tolist()
    end = min(j for j, t in enumerate(first) if t in (tok.sep_id, tok.eos_id))
    assert tok.decode(first[1:end]) == sets[0].smiles[0]  # canonical, file order


def test_split_is_fixed_by_name_and_disjoint():
    mols = molecule_set("target", DRUGS * 5)
    train, val = split_molecules(mols, 0.25)
    assert len(val) == 10 and len(train) == 30
    assert set(train.lines).isdisjoint(val.lines) and sorted(train.lines + val.lines) == mols.lines
    assert split_molecules(mols, 0.25)[1].lines == val.lines


def test_build_chem_data_from_a_directory_of_sets(tmp_path, tok):
    for k in range(3):
        (tmp_path / f"set{k}.csv").write_text("smiles,y\n" + "".join(f"{s},{k}\n" for s in DRUGS * 2))
    config = SimpleNamespace(path=str(tmp_path), seq_len=64, val_fraction=0.25, batch_size=4, packing="sets")
    data = build_chem_data(config, tok, seed=0)
    assert "3 set(s); 36 training, 12 validation molecules" in data.description
    batch = next(iter(data.train_dataloader()))
    assert set(batch) == {"input_ids", "labels", "position_ids"}
    assert batch["input_ids"].shape == batch["position_ids"].shape and batch["input_ids"].shape[0] == 4
    assert (batch["input_ids"][:, 0] == tok.bos_id).all()
    val_a = next(iter(data.val_dataloader()))
    val_b = next(iter(build_chem_data(config, tok, seed=9).val_dataloader()))
    assert torch.equal(val_a["input_ids"], val_b["input_ids"])  # the run seed leaves validation alone
    config.max_val_windows = 2
    assert len(build_chem_data(config, tok, seed=0).val_set) == 2
    with pytest.raises(InputError, match="data.packing must be one of"):
        build_chem_data(SimpleNamespace(path=str(tmp_path), packing="bags"), tok, 0)


def test_packaged_config_builds_the_builtin_corpus(tok):
    config = to_train_config(load_config(packaged_config("chem")))
    with pytest.warns(ChemDataWarning, match="first_5K.smi"):
        data = build_chem_data(config.data, tok, seed=config.seed)
    assert "built-in" in data.description
    assert len(data.train_set) > 4500 and len(data.val_set) > 200
    batch = next(iter(data.train_dataloader()))
    assert batch["input_ids"].shape[0] == config.data.batch_size
    assert batch["input_ids"].max() < tok.vocab_size


def test_a_random_form_that_does_not_fit_falls_back_to_canonical(tok):
    smiles = canon("CC(C)Cc1ccc(cc1)[C@@H](C)C(=O)O")
    budget = len(tok.encode(smiles)) + 2  # exactly the canonical form
    encoder = MoleculeEncoder(tok, "error", budget)
    draws = [encoder.training_ids(smiles, seed) for seed in range(1, 30)]
    assert all(encoder.fits(ids) for ids in draws)
    assert smiles in {tok.decode(ids) for ids in draws}
    assert {canon(tok.decode(ids)) for ids in draws} == {smiles}
