"""Reading molecules: SMILES files, CSV/TSV column choice, directories of sets, invalid SMILES."""

from __future__ import annotations

import gzip

import pytest
from rdkit import Chem

from biolm.data.chem import read_molecule_sets, read_molecules
from biolm.data.corpora import builtin_molecules_path
from biolm.errors import InputError
from biolm.io.smiles import ChemDataWarning


def canon(smiles: str) -> str:
    return Chem.MolToSmiles(Chem.MolFromSmiles(smiles))


def test_smi_file_header_names_comments_and_invalid_lines(tmp_path):
    path = tmp_path / "bad.smi"
    path.write_text(
        "SMILES Name\n"  # 1: header
        "CCO ethanol\n"  # 2
        "C1CC unclosed\n"  # 3: invalid
        "\n"  # 4: blank
        "# a comment\n"  # 5
        "c1ccccc1\n"  # 6
        "C(C)(C)(C)(C)C pentavalent\n"  # 7: invalid
        "OC(=O)[C@@H](N)C alanine\n"  # 8
    )
    with pytest.warns(ChemDataWarning) as caught:
        mols = read_molecules(path)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "bad.smi: skipped 2 of 5 molecules (invalid SMILES)" in message
    assert "line 3: 'C1CC'" in message and "line 7: 'C(C)(C)(C)(C)C'" in message
    assert mols.name == "bad" and mols.lines == [2, 6, 8]
    assert mols.smiles == [canon("CCO"), canon("c1ccccc1"), canon("C[C@H](N)C(=O)O")]


def test_many_invalid_lines_are_counted_and_the_first_few_quoted(tmp_path):
    path = tmp_path / "many.smi"
    path.write_text("CC\n" + "".join(f"C1C{i}\n" for i in range(8)))
    with pytest.warns(ChemDataWarning, match=r"skipped 8 of 9 molecules.*line 6: 'C1C4'; and 3 more"):
        assert len(read_molecules(path)) == 1


def test_a_file_without_valid_molecules_is_an_error(tmp_path):
    path = tmp_path / "none.smi"
    path.write_text("C1CC\n")
    with pytest.warns(ChemDataWarning), pytest.raises(InputError, match=r"none\.smi: no valid molecule"):
        read_molecules(path)


def test_csv_column_is_auto_detected_or_named(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('id,Canonical_SMILES,alt\n1,CCO,CCN\n2,"c1ccccc1",CCC\n3,,CCCl\n')
    expected = r"t\.csv: skipped 1 of 3 molecules \(invalid SMILES\): line 4: ''"
    with pytest.warns(ChemDataWarning, match=expected):
        auto = read_molecules(path)
    assert auto.smiles == [canon("CCO"), canon("c1ccccc1")] and auto.lines == [2, 3]
    named = read_molecules(path, smiles_column="alt")
    assert named.smiles == [canon("CCN"), canon("CCC"), canon("CCCl")]
    with pytest.raises(InputError, match=r"t\.csv: no column 'smiles_x' \(smiles_column\)"):
        read_molecules(path, smiles_column="smiles_x")


def test_table_without_a_smiles_column_names_the_columns_and_the_key(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("id\tstructure\n1\tCCO\n")
    with pytest.raises(
        InputError, match=r"no SMILES column found among id, structure; name it with smiles_column"
    ):
        read_molecules(path)
    assert read_molecules(path, smiles_column="structure").smiles == ["CCO"]


def test_gzipped_tsv(tmp_path):
    path = tmp_path / "t.tsv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("smiles\tname\nCCO\tx\nOCC\ty\n")
    mols = read_molecules(path)
    assert mols.name == "t" and mols.smiles == [canon("CCO")] * 2


def test_directory_is_one_set_per_file(tmp_path):
    (tmp_path / "b_target.csv").write_text("smiles,y\nCCO,1\nCCN,2\n")
    (tmp_path / "a_target.smi").write_text("c1ccccc1\n")
    (tmp_path / "notes.md").write_text("not molecules\n")
    with pytest.warns(ChemDataWarning, match=r"ignored 1 other entries: \['notes\.md'\]"):
        sets = read_molecule_sets(tmp_path)
    assert [s.name for s in sets] == ["a_target", "b_target"]
    assert [len(s) for s in sets] == [1, 2]


def test_missing_path_and_empty_directory(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        read_molecule_sets(tmp_path / "missing.smi")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no molecule files"):
        read_molecule_sets(tmp_path / "empty")


def test_builtin_default_is_rdkits_nci_sample():
    path = builtin_molecules_path()
    assert path.name == "first_5K.smi" and path.is_file()


def test_moleculeace_set_reads(shared_data):
    path = shared_data / "chem" / "moleculeace" / "CHEMBL2147_Ki.csv"
    mols = read_molecules(path)
    assert len(mols) == mols.total > 500


def test_real_table_with_invalid_smiles_is_reported(shared_data):
    path = shared_data / "chem" / "moleculenet" / "BBBP.csv"  # columns num,name,p_np,smiles
    with pytest.warns(ChemDataWarning, match=r"BBBP\.csv: skipped 11 of 2050 molecules .*line 61: "):
        mols = read_molecules(path)
    assert len(mols) == 2039
