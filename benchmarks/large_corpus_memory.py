"""Peak memory of `biolm train` on large corpora: a 1 GB genome FASTA, a few hundred MB of proteins and
of SMILES, against small ones.

A genome is read through pyfaidx (random access through the `.fai` index); proteins and molecules are
read once, record by record, into a memory-mapped token cache (`biolm.data.cache`). Neither should
hold the corpus in memory. Each case generates its synthetic corpus into a temporary directory (never
into the repository), then runs `biolm train <domain> ... trainer.max_steps=5` in a fresh subprocess
and reads that process's peak resident set (/proc/self/status VmHWM, Linux only) at the end: the
whole run, start-up, index or cache building, the genome scan, training, validation and export
included. A corpus is trained twice: the first run builds the index (genome) or the token cache
(proteins, molecules), the second reuses it; that preparation is timed on its own ("index / store").
Corpora under 32 MB are tokenized in memory on each run (no cache entry).

    python benchmarks/large_corpus_memory.py                       # every case, a markdown table
    python benchmarks/large_corpus_memory.py --cases dna-1g        # some cases
    python benchmarks/large_corpus_memory.py --case dna 1000 DIR   # one run here, JSON (used above)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rss import proc_status_kb  # benchmarks/rss.py, beside this script

MB = 1 << 20
LIMIT_MB = 2048
# name: (domain, corpus size in MB)
CASES = {
    "dna-10m": ("dna", 10),
    "dna-1g": ("dna", 1024),
    "protein-10m": ("protein", 10),
    "protein-300m": ("protein", 300),
    "chem-5m": ("chem", 5),
    "chem-50m": ("chem", 50),
}
OVERRIDES = {
    "dna": ["data.max_val_windows=16", "data.windows_per_epoch=80"],
    "protein": ["data.max_val_windows=32", "data.windows_per_epoch=80"],
    "chem": ["data.max_val_windows=32", "data.unknown=skip"],
}
AMINO_ACIDS = b"ACDEFGHIKLMNPQRSTVWY"


def write_genome(path: Path, megabytes: int) -> None:
    """Random ACGT in 80-column lines, as 4 records (a genome of a few chromosomes)."""
    import numpy as np

    rng = np.random.default_rng(0)
    bases = np.frombuffer(b"ACGT", dtype=np.uint8)
    width, rows_per_chunk = 80, 1 << 14
    per_record = megabytes * MB // 4 // (width + 1)
    with open(path, "wb") as handle:
        for record in range(4):
            handle.write(f">chr{record + 1} synthetic\n".encode())
            left = per_record
            while left:
                rows = min(left, rows_per_chunk)
                block = np.full((rows, width + 1), ord("\n"), dtype=np.uint8)
                block[:, :width] = bases[rng.integers(0, 4, size=(rows, width))]
                handle.write(block.tobytes())
                left -= rows


def write_proteins(path: Path, megabytes: int) -> None:
    """Random proteins of 50-800 residues in 60-column lines, in one FASTA file."""
    import numpy as np

    rng = np.random.default_rng(0)
    letters = np.frombuffer(AMINO_ACIDS, dtype=np.uint8)
    with open(path, "wb") as handle:
        number = 0
        while handle.tell() < megabytes * MB:
            lengths = rng.integers(50, 800, size=1000)
            residues = letters[rng.integers(0, 20, size=int(lengths.sum()))].tobytes()
            parts, at = [], 0
            for n in lengths.tolist():
                seq = residues[at : at + n]
                at += n
                number += 1
                lines = b"\n".join(seq[i : i + 60] for i in range(0, n, 60))
                parts.append(b">p%d synthetic protein\n%s\n" % (number, lines))
            handle.write(b"".join(parts))


def write_molecules(path: Path, megabytes: int) -> None:
    """RDKit's NCI sample (4,999 SMILES, shipped in its wheel) repeated, each copy with its molecules
    written in a new random atom order, so that the file has many distinct lines."""
    from rdkit import Chem, RDConfig, rdBase

    with rdBase.BlockLogs():
        source = Path(RDConfig.RDDataDir) / "NCI" / "first_5K.smi"
        mols = [Chem.MolFromSmiles(line.split()[0]) for line in source.read_text().splitlines() if line]
        mols = [m for m in mols if m is not None]
        with open(path, "w") as handle:
            copy = 0
            while handle.tell() < megabytes * MB:
                copy += 1
                lines = [Chem.MolToRandomSmilesVect(m, 1, randomSeed=copy)[0] for m in mols]
                handle.write("\n".join(lines) + "\n")


def make_corpus(domain: str, megabytes: int, directory: Path) -> Path:
    suffix = {"dna": "fa", "protein": "faa", "chem": "smi"}[domain]
    path = directory / f"{domain}_{megabytes}mb.{suffix}"
    {"dna": write_genome, "protein": write_proteins, "chem": write_molecules}[domain](path, megabytes)
    return path


def prepare(domain: str, corpus: Path) -> None:
    """What a run does before training: the genome index, or the protein / molecule token store."""
    if domain == "dna":
        from biolm.io.genome import open_fasta

        open_fasta(corpus).close()
    elif domain == "protein":
        from biolm.data.protein import ProteinCorpus
        from biolm.tokenizers import ProteinTokenizer

        ProteinCorpus(corpus, ProteinTokenizer(), 0.05, seed=0)
    else:
        import warnings

        from biolm.data import chem

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # biolm before the token cache had no stored_molecule_sets; its reader is timed instead.
            getattr(chem, "stored_molecule_sets", chem.read_molecule_sets)(corpus)


def run_case(domain: str, corpus: Path, run_root: Path) -> dict:
    """One `biolm train` run in this process (meant for a fresh subprocess); its peak memory.

    The preparation (`prepare`) is timed on its own first; the run then reuses what it left (an index,
    a cache entry), except for the in-memory corpora, which the run reads again."""
    import gc

    import torch

    from biolm.cli.main import main

    torch.set_num_threads(2)
    t0 = time.perf_counter()
    prepare(domain, corpus)
    gc.collect()
    prepare_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    argv = ["train", domain, "--no-progress", f"data.path={corpus}", f"run_root={run_root}"]
    argv += ["name=bench", "trainer.max_steps=5", "trainer.log_every_n_steps=1", *OVERRIDES[domain]]
    code = main(argv)
    seconds = time.perf_counter() - t0
    peak = proc_status_kb("VmHWM") / 1024
    return {"code": code, "prepare_s": prepare_s, "seconds": seconds, "peak_mb": peak}


def run_in_subprocess(domain: str, corpus: Path, run_root: Path) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--case", domain, str(corpus), str(run_root)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"case {domain} {corpus} failed (exit {proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--case", nargs=3, metavar=("DOMAIN", "CORPUS", "RUN_ROOT"), help=argparse.SUPPRESS)
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    parser.add_argument("--once", action="store_true", help="one run per corpus (no reuse run)")
    parser.add_argument(
        "--tmp", type=Path, default=None, help="where to write corpora (default: system temp)"
    )
    args = parser.parse_args(argv)
    if args.case:
        domain, corpus, run_root = args.case
        print(json.dumps(run_case(domain, Path(corpus), Path(run_root))))
        return 0
    names = [n.strip() for n in args.cases.split(",") if n.strip()]
    unknown = [n for n in names if n not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {unknown}; known: {', '.join(CASES)}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="biolm-large-corpus-", dir=args.tmp) as tmp:
        tmp = Path(tmp)
        # The token caches of this benchmark go to its temporary directory, not the user's cache.
        os.environ["BIOLM_CACHE_DIR"] = str(tmp / "cache")
        for name in names:
            domain, megabytes = CASES[name]
            t0 = time.perf_counter()
            corpus = make_corpus(domain, megabytes, tmp)
            made = time.perf_counter() - t0
            size = corpus.stat().st_size / MB
            for attempt in ("first",) if args.once else ("first", "again"):
                result = run_in_subprocess(domain, corpus, tmp / "runs")
                rows.append((name, domain, size, attempt, result))
                print(
                    f"{name}: {size:,.0f} MB corpus (written in {made:.0f} s), {attempt} run: peak RSS "
                    f"{result['peak_mb']:,.0f} MB, prepare {result['prepare_s']:.0f} s, "
                    f"run {result['seconds']:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )
            corpus.unlink()
    print(f"5 training steps per run, 2 threads, load average {os.getloadavg()[0]:.1f}\n")
    print("| case | corpus MB | run | peak RSS MB | under 2 GB | index / store s | training run s |")
    print("|---|---:|---|---:|---|---:|---:|")
    for name, _, size, attempt, r in rows:
        ok = "yes" if r["peak_mb"] < LIMIT_MB else "**no**"
        print(
            f"| {name} | {size:,.0f} | {attempt} | {r['peak_mb']:,.0f} | {ok} | {r['prepare_s']:.0f} "
            f"| {r['seconds']:.0f} |"
        )
    return 0 if all(r["peak_mb"] < LIMIT_MB for *_, r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
