"""Issue 6's real-data generation runs: train in-context models on CPU, then `biolm eval generation`.

    python benchmarks/generation_real.py prepare-protein --work runs/gen   # training families
    biolm train protein --config benchmarks/configs/protein_incontext.yaml data.path=runs/gen/protein_train
    python benchmarks/generation_real.py eval-protein --model runs/.../model --work runs/gen

    # the same alignments cut into 2,262 clusters of homologs, one training family each
    python benchmarks/generation_real.py prepare-protein --work runs/gen --cluster-identity 0.65
    biolm train protein --config benchmarks/configs/protein_clusters.yaml \
        data.path=runs/gen/protein_clusters_0.65

    python benchmarks/generation_real.py prepare-chem --work runs/gen       # 20 training / 4 held-out sets
    biolm train chem --config benchmarks/configs/chem_incontext.yaml data.path=runs/gen/chem_train
    python benchmarks/generation_real.py eval-chem --model runs/.../model --work runs/gen

    biolm train chem --config benchmarks/configs/chem_moses.yaml          # unconditional, MOSES train
    python benchmarks/generation_real.py eval-moses --model runs/.../model --work runs/gen

    # the in-context molecule model fine-tuned from the MOSES model (then eval-chem as above)
    biolm train chem --config benchmarks/configs/chem_incontext_moses.yaml \
        init_from=runs/chem_moses/model data.path=runs/gen/chem_train

Proteins: the model is trained on the full Pfam alignments of three families and the TEM-1
(BLAT_ECOLX) homologs, and evaluated on the 12 Pfam seed families. Every sequence of a seed alignment
is left out of the training files (exactly, and, for the beta-lactamases, any training protein that
contains a seed domain), so each scored or context member is unseen in training; 9 of the 12 families
are unseen altogether.

Molecules: MoleculeACE's 24 target sets, 20 for training (chosen by a fixed seed) and 4 held out; the
held-out sets' molecules are the context and the references of set-conditioned generation.

This is a script, not a test: the runs take hours on a CPU.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import sys
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PROTEIN = DATA / "protein"
MOLECULEACE = DATA / "chem" / "moleculeace"
MOSES = DATA / "chem" / "moses"
N_HELD_OUT_SETS = 4


def _fasta(path: Path):
    """(name, cleaned sequence) of every record of a (gzipped) FASTA or A3M file."""
    from biolm.io.proteins import read_protein_file

    for family in read_protein_file(path):
        for record in family.records:
            yield record.name, record.sequence


def _aligned(path: Path):
    """(name, match-column string) of every record of an aligned FASTA / A3M file: inserts (lower case,
    `.`) dropped, so that every row of one alignment has the same width."""
    from Bio import SeqIO

    with gzip.open(path, "rt") as handle:
        for record in SeqIO.parse(handle, "fasta"):
            yield record.id, "".join(c for c in str(record.seq) if c.isupper() or c == "-")


def cluster_alignment(rows: list[str], identity: float, seed: int = 0) -> list[list[int]]:
    """Greedy clustering of equal-width alignment rows: a random unassigned row takes every unassigned
    row with at least `identity` identical residues over the columns where either has a residue."""
    codes = np.frombuffer("".join(rows).encode(), dtype=np.uint8).reshape(len(rows), -1)
    residue = codes != ord("-")
    unassigned = np.ones(len(rows), dtype=bool)
    clusters = []
    for center in np.random.default_rng(seed).permutation(len(rows)):
        if not unassigned[center]:
            continue
        both = residue | residue[center]
        same = ((codes == codes[center]) & residue).sum(axis=1)
        members = np.flatnonzero(unassigned & (same >= identity * np.maximum(both.sum(axis=1), 1)))
        unassigned[members] = False
        clusters.append(members.tolist())
    return clusters


def prepare_protein(
    work: Path,
    cluster_identity: float | None = None,
    min_cluster: int = 3,
    held_out_clusters: int = 0,
    min_held_out_size: int = 48,
) -> Path:
    """Write the training families without any seed-alignment sequence; returns the directory.

    Left out of a training family: any sequence equal to a seed member of any family, and any that
    contains, or is contained in, a seed member of the same family (the full alignment may cut a seed
    domain a few residues differently; the TEM-1 homologs are full-length beta-lactamases, PF13354).

    With `cluster_identity`, each alignment is split into clusters of homologs (greedy, at that
    identity over aligned columns) and every cluster of at least `min_cluster` members is written as a
    family of its own. With four whole families a model can learn each family by heart and never
    needs its context; with thousands of clusters the context is what tells which one a pack is from.

    With `held_out_clusters` (clusters only), that many clusters of each source with at least
    `min_held_out_size` members (chosen with a fixed seed) are written to `<directory>_heldout/`
    instead: held-out members of the training families, for the in-context gain curve (48 members
    leave 16 to score and 32 for the context).
    """
    from biolm.io.proteins import clean_sequence

    seeds = {
        path.name.split("_")[0]: [seq for _, seq in _fasta(path)]
        for path in sorted((PROTEIN / "pfam_seed").glob("*_seed.fasta"))
    }
    every_seed = {seq for members in seeds.values() for seq in members}
    out = work / ("protein_train" if cluster_identity is None else f"protein_clusters_{cluster_identity:g}")
    held = out.with_name(out.name + "_heldout")
    for folder in (out, held):
        shutil.rmtree(folder, ignore_errors=True)
    out.mkdir(parents=True)
    if held_out_clusters:
        held.mkdir()
    sources = {path: path.name.split(".")[0] for path in sorted((PROTEIN / "pfam_full").glob("*.fasta.gz"))}
    sources[PROTEIN / "blat" / "BLAT_ECOLX_ColabFold_2202.a3m.gz"] = "PF13354"
    for source, family in sources.items():
        same_family = seeds.get(family, [])
        names, rows, sequences = [], [], []
        overlapping, duplicates, seen = 0, 0, set()
        for name, row in _aligned(source):
            seq = clean_sequence(row)
            if seq in every_seed or any(s in seq or seq in s for s in same_family):
                overlapping += 1
            elif seq in seen:
                duplicates += 1
            else:
                seen.add(seq)
                names.append(name)
                rows.append(row)
                sequences.append(seq)
        stem = source.name.split(".")[0]
        groups = (
            [list(range(len(rows)))]
            if cluster_identity is None
            else cluster_alignment(rows, cluster_identity)
        )
        kept = [g for g in groups if len(g) >= min_cluster or cluster_identity is None]
        big = [i for i, g in enumerate(kept) if len(g) >= min_held_out_size]
        chosen = np.random.default_rng(0).permutation(big)[:held_out_clusters] if cluster_identity else []
        held_set = {int(i) for i in chosen}
        for index, group in enumerate(kept):
            target = (held if index in held_set else out) / (
                f"{stem}.fasta.gz" if cluster_identity is None else f"{stem}_c{index:05d}.fasta.gz"
            )
            with gzip.open(target, "wt") as handle:
                handle.writelines(f">{names[i]}\n{sequences[i]}\n" for i in group)
        in_kept = sum(len(g) for g in kept)
        print(
            f"{stem}: {len(rows):,} proteins; left out {overlapping:,} overlapping a seed member, "
            f"{duplicates:,} duplicates"
            + (
                ""
                if cluster_identity is None
                else f"; {len(groups):,} clusters at {cluster_identity:.0%} identity, {len(kept):,} of at "
                f"least {min_cluster} members written ({in_kept:,} proteins)"
                + (
                    f", {len(held_set)} of them held out ({sum(len(kept[i]) for i in held_set):,} proteins)"
                    if held_set
                    else ""
                )
            )
        )
    return out


def prepare_chem(work: Path) -> tuple[Path, Path]:
    """Link 20 MoleculeACE sets into `chem_train/` and the other 4 (a fixed-seed choice) into
    `chem_eval/`; returns both directories."""
    sets = sorted(MOLECULEACE.glob("CHEMBL*.csv"))
    held = set(np.random.default_rng(0).choice(len(sets), N_HELD_OUT_SETS, replace=False).tolist())
    train, evaluation = work / "chem_train", work / "chem_eval"
    for folder in (train, evaluation):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    for i, path in enumerate(sets):
        (evaluation if i in held else train).joinpath(path.name).symlink_to(path)
    print(
        f"{len(sets) - len(held)} training sets in {train}; held out in {evaluation}: "
        + ", ".join(sorted(p.name for p in evaluation.iterdir()))
    )
    return train, evaluation


def _sampling(args: argparse.Namespace) -> dict:
    return {"temperature": args.temperature, "top_p": args.top_p, "min_p": args.min_p}


def eval_protein(args: argparse.Namespace) -> None:
    from biolm.evaluation.options import ProteinGenerationOptions
    from biolm.evaluation.protein_generation import run_protein_generation

    options = ProteinGenerationOptions(
        hmm_dir=PROTEIN / "pfam_hmm", num_samples=args.num_samples or 20, **_sampling(args)
    )
    result = run_protein_generation(
        args.model, [PROTEIN / "pfam_seed"], args.out or args.work / "reports" / "protein", options
    )
    print(result["targets"])


def eval_chem(args: argparse.Namespace) -> None:
    from biolm.evaluation.molecule_generation import run_molecule_generation
    from biolm.evaluation.options import MoleculeGenerationOptions

    options = MoleculeGenerationOptions(
        num_unconditional=1000,
        train=args.work / "chem_train",
        num_samples=args.num_samples or 200,
        **_sampling(args),
    )
    result = run_molecule_generation(
        args.model, [args.work / "chem_eval"], args.out or args.work / "reports" / "chem", options
    )
    for name, summary in result["sets"].items():
        print(name, {k: round(v, 4) for k, v in summary.items() if isinstance(v, float)})


def eval_moses(args: argparse.Namespace) -> None:
    from biolm.evaluation.molecule_generation import run_molecule_generation
    from biolm.evaluation.options import MoleculeGenerationOptions

    options = MoleculeGenerationOptions(
        num_unconditional=args.num_samples or 10000,
        train=MOSES / "train.csv.gz",
        test=MOSES / "test.csv.gz",
        max_reference=10000,
        **_sampling(args),
    )
    result = run_molecule_generation(args.model, [], args.out or args.work / "reports" / "moses", options)
    print({k: round(v, 4) for k, v in result["moses"].items()})


STAGES = {
    "prepare-protein": lambda args: prepare_protein(
        args.work, args.cluster_identity, held_out_clusters=args.held_out_clusters
    ),
    "prepare-chem": lambda args: prepare_chem(args.work),
    "eval-protein": eval_protein,
    "eval-chem": eval_chem,
    "eval-moses": eval_moses,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("stage", choices=list(STAGES))
    parser.add_argument("--work", type=Path, default=Path("runs/gen"), help="working directory")
    parser.add_argument("--model", type=Path, help="model directory (eval stages)")
    parser.add_argument(
        "--cluster-identity", type=float, help="prepare-protein: one training family per cluster of homologs"
    )
    parser.add_argument(
        "--held-out-clusters",
        type=int,
        default=0,
        help="prepare-protein with --cluster-identity: clusters of each source (>= 48 members) written to "
        "<dir>_heldout/ instead of training",
    )
    parser.add_argument("--out", type=Path, help="report directory (default: WORK/reports/<domain>)")
    parser.add_argument("--num-samples", type=int, help="samples per family / set (or unconditional, MOSES)")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-p", type=float)
    parser.add_argument("--min-p", type=float)
    args = parser.parse_args(argv)
    if not DATA.is_dir():
        print(f"{DATA} is missing: these runs need the shared real data", file=sys.stderr)
        return 2
    if args.stage.startswith("eval") and args.model is None:
        parser.error("eval stages need --model")
    STAGES[args.stage](args)
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
