"""The size bound on SMILES given to RDKit (`biolm.io.smiles`, issue 27 item 4): counting atoms without
RDKit, the bound's setting, and every door to RDKit keeping a too-large molecule out.

Calls that would crash this process if a too-large molecule reached RDKit (a segmentation fault from
about 18,000 atoms) run in a subprocess with a timeout, so a regression fails a test instead of the suite.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings

import pytest
from rdkit import Chem, RDLogger

from biolm.data import cache
from biolm.data.chem import read_molecules, stored_molecule_sets
from biolm.data.corpora import builtin_molecules_path
from biolm.errors import ConfigError, InputError
from biolm.io.smiles import (
    MAX_ATOMS_VARIABLE,
    MAX_SMILES_ATOMS,
    SMILES_CHARS_PER_ATOM,
    ChemDataWarning,
    canonical_smiles,
    check_smiles_size,
    iter_smiles_records,
    max_smiles_atoms,
    smiles_atom_count,
    smiles_too_large,
    warn_skipped,
)


@pytest.fixture(autouse=True)
def _default_bound(monkeypatch):
    monkeypatch.delenv(MAX_ATOMS_VARIABLE, raising=False)


# --- counting -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("smiles", "atoms"),
    [
        ("", 0),
        ("C", 1),
        ("CCO", 3),
        ("c1ccccc1", 6),
        ("ClCBr", 3),  # the l of Cl and the r of Br are not atoms
        ("FC(F)(F)I", 5),
        ("[Na+].[Cl-]", 2),
        ("OC(=O)[C@@H](N)C", 6),
        ("[13CH3][2H]", 2),  # a bracket hydrogen is an atom; H counts inside brackets are not
        ("C%(123)CC%(123)", 3),
        ("*c1ccccc1*", 8),
        ("[nH]1cccc1", 5),
        ("CC[", 3),  # an unclosed bracket counts as one atom
        ("B1(O)OCCO1", 6),
        ("P(=S)(Cl)(Cl)Cl", 5),
    ],
)
def test_atoms_are_counted_without_rdkit(smiles, atoms):
    assert smiles_atom_count(smiles) == atoms


def test_the_count_is_rdkits_on_every_molecule_of_the_builtin_corpus():
    RDLogger.DisableLog("rdApp.*")
    checked = 0
    for record in iter_smiles_records(builtin_molecules_path()):
        mol = Chem.MolFromSmiles(record.smiles)
        if mol is not None:
            assert smiles_atom_count(record.smiles) == mol.GetNumAtoms(), record
            checked += 1
    assert checked > 4900


def test_every_molecule_of_the_shared_chemistry_data_is_within_the_bound(shared_data):
    """The bound keeps every real molecule at hand (ChEMBL peptides up to 245 heavy atoms); MOSES
    (at most 27 atoms, 1.9 million molecules) is left out for time."""
    files = sorted((shared_data / "chem" / "moleculeace").glob("*.csv"))
    files += sorted((shared_data / "chem" / "moleculenet").glob("*.csv"))
    assert files
    largest = 0
    for path in files:
        for record in iter_smiles_records(path):
            assert smiles_too_large(record.smiles) is None, (path.name, record.line)
            largest = max(largest, smiles_atom_count(record.smiles))
    assert 200 < largest <= MAX_SMILES_ATOMS // 4


# --- the bound and its setting ------------------------------------------------------------------------


def test_the_bound_is_inclusive_and_names_the_size():
    assert smiles_too_large("C" * MAX_SMILES_ATOMS) is None
    assert smiles_too_large("C" * (MAX_SMILES_ATOMS + 1)) == f"{MAX_SMILES_ATOMS + 1:,} atoms"
    # Few atoms, many characters: two atoms joined by thousands of ring bonds.
    closures = "".join(f"%({i})" for i in range(1, 3000))
    text = "C" + closures + "C" + closures
    assert len(text) > MAX_SMILES_ATOMS * SMILES_CHARS_PER_ATOM
    assert smiles_too_large(text) == f"{len(text):,} characters"


def test_the_variable_sets_the_bound(monkeypatch):
    assert max_smiles_atoms() == MAX_SMILES_ATOMS
    monkeypatch.setenv(MAX_ATOMS_VARIABLE, "50")
    assert max_smiles_atoms() == 50
    assert smiles_too_large("C" * 51) == "51 atoms" and smiles_too_large("C" * 50) is None
    monkeypatch.setenv(MAX_ATOMS_VARIABLE, " 5000 ")
    assert max_smiles_atoms() == 5000
    monkeypatch.setenv(MAX_ATOMS_VARIABLE, "")
    assert max_smiles_atoms() == MAX_SMILES_ATOMS


@pytest.mark.parametrize("value", ["many", "0", "-1", "1e3", "2.5"])
def test_a_bad_setting_is_a_config_error_naming_it(monkeypatch, value):
    monkeypatch.setenv(MAX_ATOMS_VARIABLE, value)
    with pytest.raises(ConfigError, match=rf"{MAX_ATOMS_VARIABLE} must be a whole number.*got {value!r}"):
        smiles_too_large("CCO")


def test_the_refusal_names_where_the_size_the_bound_and_the_variable():
    with pytest.raises(InputError) as caught:
        check_smiles_size("C" * 20_000, "in.smi: record 'big'")
    message = str(caught.value)
    assert message.startswith("in.smi: record 'big': SMILES of 20,000 atoms is too large for RDKit")
    assert "1,000 atoms" in message and f"set the environment variable {MAX_ATOMS_VARIABLE}" in message
    assert "\n" not in message
    check_smiles_size("CCO", "anywhere")


# --- doors to RDKit ---------------------------------------------------------------------------------------


def test_canonical_smiles_never_gives_a_too_large_molecule_to_rdkit(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("RDKit was given the molecule")

    monkeypatch.setattr(Chem, "MolFromSmiles", refuse)
    assert canonical_smiles("C" * (MAX_SMILES_ATOMS + 1)) is None


def test_canonical_smiles_at_the_bound_is_read():
    assert canonical_smiles("C" * MAX_SMILES_ATOMS) == "C" * MAX_SMILES_ATOMS


def _run(code: str) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter (a segmentation fault there is a failed test here)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "code",
    [
        # generated samples (biolm generate's counts): the 20,000-atom one is invalid
        """
        from biolm.domains.chem import clean_molecules
        kept, counts = clean_molecules(["C" * 20000, "CCO", "C" * 100000], reference=["C" * 20000])
        assert kept == ["CCO"] and counts == {"generated": 3, "valid": 1, "unique": 1, "novel": 1}, counts
        """,
        # eval generation's metrics
        """
        from biolm.evaluation.molecule_metrics import canonical_valid, fragment_counts, scaffold_counts
        assert canonical_valid(["C" * 20000, "OCC", ""]) == [None, "CCO", None]
        assert not fragment_counts(["C" * 20000]) and not scaffold_counts(["C" * 20000])
        """,
        # training's randomized SMILES and the scaffold split refuse in one line
        """
        from biolm.data.chem_dataset import randomized_smiles
        from biolm.evaluation.splits import murcko_scaffold
        from biolm.errors import InputError
        for call in (lambda: randomized_smiles("C" * 20000, 3), lambda: murcko_scaffold("C" * 20000)):
            try:
                call()
            except InputError as err:
                assert "20,000 atoms" in str(err), err
            else:
                raise AssertionError("not refused")
        """,
    ],
    ids=["clean_molecules", "molecule_metrics", "randomized_smiles-and-scaffold"],
)
def test_a_20000_atom_molecule_does_not_reach_rdkit(code):
    done = _run(code)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stderr[-3000:]}"


# --- readers of molecule sets: skipped, counted and explained ------------------------------------------


def test_read_molecules_skips_too_large_molecules_with_their_own_warning(tmp_path):
    path = tmp_path / "set.smi"
    path.write_text(f"CCO a\nC1CC bad\n{'C' * 20_000} big\nc1ccccc1 b\n")
    with pytest.warns(ChemDataWarning) as caught:
        molecules = read_molecules(path)
    assert molecules.lines == [1, 4] and molecules.total == 4
    messages = [str(w.message) for w in caught]  # invalid first, then too large
    assert len(messages) == 2
    assert "skipped 1 of 4 molecules (invalid SMILES): line 2: 'C1CC'" in messages[0]
    assert "skipped 1 of 4 molecules (too large for RDKit: over the bound of 1,000 atoms" in messages[1]
    assert MAX_ATOMS_VARIABLE in messages[1] and "line 3: 'CCCC" in messages[1]
    assert "(20,000 atoms)" in messages[1]


def test_a_set_of_only_too_large_molecules_says_why_it_is_empty(tmp_path):
    path = tmp_path / "big.smi"
    path.write_text("C" * 1001 + "\n" + "C" * 30_000 + "\n")
    with pytest.warns(ChemDataWarning), pytest.raises(InputError) as caught:
        read_molecules(path)
    message = str(caught.value)
    assert "big.smi: no valid molecule (2 records read; 2 too large for RDKit" in message
    assert MAX_ATOMS_VARIABLE in message


def test_a_raised_bound_reads_the_molecule(tmp_path, monkeypatch):
    path = tmp_path / "set.smi"
    path.write_text(f"CCO\n{'C' * 1001}\n")
    monkeypatch.setenv(MAX_ATOMS_VARIABLE, "1001")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ChemDataWarning)
        assert read_molecules(path).lines == [1, 2]


def test_the_cached_store_depends_on_the_bound(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "MIN_CACHED_BYTES", 0)  # cache this small corpus
    monkeypatch.setenv("BIOLM_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "set.smi"
    path.write_text(f"CCO\n{'C' * 1001}\nc1ccccc1\n")
    skipped = r"skipped 1 of 3 .*too large for RDKit.*line 2: 'CCCC.*\(1,001 atoms\)"
    with pytest.warns(ChemDataWarning, match=skipped):
        (first,) = stored_molecule_sets(path)
    assert list(first.lines) == [1, 3]
    # Reused: the warning is given again, from the cache.
    with pytest.warns(ChemDataWarning, match=skipped):
        (again,) = stored_molecule_sets(path)
    assert list(again.lines) == [1, 3]
    monkeypatch.setenv(MAX_ATOMS_VARIABLE, "2000")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ChemDataWarning)
        (raised,) = stored_molecule_sets(path)
    assert list(raised.lines) == [1, 2, 3]


def test_a_skip_warning_of_another_reader_says_when_a_molecule_was_too_large(tmp_path):
    """A reader that counts too-large molecules with the invalid ones (a labelled table) still says why."""
    with pytest.warns(ChemDataWarning) as caught:
        warn_skipped(tmp_path / "t.csv", "invalid SMILES", [(2, "C1CC"), (3, "C" * 5000)], 9)
    message = str(caught[0].message)
    assert "skipped 2 of 9 molecules (invalid SMILES, or too large for RDKit: over the bound" in message
    assert "line 2: 'C1CC'; line 3: 'CCCC" in message and "(5,000 atoms)" in message
