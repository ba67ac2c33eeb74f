"""Zero-shot scores equal log-likelihood differences computed here, one sequence at a time."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from biolm.errors import InputError
from biolm.evaluation.zeroshot import score_scan
from biolm.io.dms import read_scan
from biolm.models.io import load
from tests.evaluation.helpers import WILD_TYPE, dms_rows, tiny_model_dir, write_table

DMS_HEADER = ["mutant", "mutated_sequence", "DMS_score"]


@pytest.fixture(scope="module")
def scan_path(tmp_path_factory):
    return write_table(tmp_path_factory.mktemp("scan") / "scan.csv", DMS_HEADER, dms_rows())


def _log_likelihood(model, sequence: str) -> float:
    tok = model.tokenizer
    ids = torch.tensor([[tok.bos_id, *model.tokenizer.encode(sequence).tolist(), tok.eos_id]])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits.double(), dim=-1)
    return float(sum(logp[0, t, ids[0, t + 1]] for t in range(ids.shape[1] - 1)))


def test_read_scan_reconstructs_the_wild_type(scan_path):
    scan = read_scan(scan_path)
    assert scan.wild_type == WILD_TYPE
    assert len(scan.mutants) == len(dms_rows()) and scan.lines[0] == 2
    assert scan.mutations[-1] == [(WILD_TYPE[1], 2, "A"), (WILD_TYPE[4], 5, "C")]


def test_causal_score_is_the_log_likelihood_difference(tmp_path, scan_path):
    model = load(tiny_model_dir(tmp_path / "m", seed=1))
    scan = read_scan(scan_path)
    scores, method = score_scan(model, scan)
    wild = _log_likelihood(model, WILD_TYPE)
    expected = [_log_likelihood(model, s) - wild for s in scan.sequences]
    assert "causal" in method
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-5)
    assert np.ptp(scores) > 1e-3  # a random model still tells the variants apart


def test_masked_marginal_for_a_bidirectional_model(tmp_path, scan_path):
    model = load(tiny_model_dir(tmp_path / "b", seed=2, bidirectional=True))
    scan = read_scan(scan_path)
    scores, method = score_scan(model, scan)
    tok = model.tokenizer
    wt = [tok.bos_id, *tok.encode(WILD_TYPE).tolist()]

    def masked(pos: int) -> torch.Tensor:
        ids = torch.tensor([wt])
        ids[0, pos] = tok.mask_id
        with torch.no_grad():
            return torch.log_softmax(model(ids).logits.double(), dim=-1)[0, pos]

    expected = []
    for muts in scan.mutations:
        total = 0.0
        for w, pos, m in muts:
            logp = masked(pos)
            total += float(logp[tok.token_to_id(m)] - logp[tok.token_to_id(w)])
        expected.append(total)
    assert method == "masked marginal"
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)


def test_binned_scans_also_report_auroc(tmp_path):
    from biolm.evaluation.run import run_zeroshot

    rows = [[*row, int(row[2] > 2)] for row in dms_rows()]
    path = write_table(tmp_path / "binned.csv", [*DMS_HEADER, "DMS_score_bin"], rows)
    scan = read_scan(path)
    assert scan.bins.tolist() == [r[3] for r in rows]
    model_dir = tiny_model_dir(tmp_path / "m", seed=1)
    metrics = run_zeroshot(model_dir, path, tmp_path / "out", progress=False)
    scores, _ = score_scan(load(model_dir), scan)
    from sklearn.metrics import roc_auc_score

    assert metrics["auroc"]["mean"] == pytest.approx(roc_auc_score(scan.bins, scores))


def test_scan_errors(tmp_path):
    path = write_table(tmp_path / "s.csv", ["mutant", "DMS_score"], [["K2C", 1.0]])
    with pytest.raises(InputError, match=r"s\.csv: missing column\(s\) mutated_sequence"):
        read_scan(path)
    path = write_table(tmp_path / "s.csv", DMS_HEADER, [["M1A", "AKT", 1.0], ["K2C", "MCA", 0.5]])
    with pytest.raises(InputError, match=r"s\.csv: line 3: mutant K2C implies a wild type"):
        read_scan(path)
    path = write_table(tmp_path / "s.csv", DMS_HEADER, [["M1A", "AKT", "high"]])
    with pytest.raises(InputError, match=r"s\.csv: line 2: DMS_score 'high' is not a finite number"):
        read_scan(path)
