"""The README's counts of the hostile-input sweep are the suite's (issue 18, item 4): each row of the
faults table that names a `test_hostile_*.py` file says how many cases it covers, the rows of a file add
up to the tests pytest collects from it, and the summary row's total is their sum."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SWEEP = sorted(p.name for p in (ROOT / "tests" / "robustness").glob("test_hostile_*.py"))


def readme_counts() -> tuple[Counter, int]:
    """Cases per sweep file from the README rows, and the total its summary row states."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    per_file: Counter = Counter()
    for row in text.splitlines():
        found = re.search(r"\((\d+) cases?\) \| `tests/robustness/(test_hostile_\w+\.py)`", row)
        if found:
            per_file[found.group(2)] += int(found.group(1))
    total = re.search(r"\*\*(\d+) cases tried, (\d+) handled cleanly\*\*", text)
    assert total, "the README's summary row of the hostile-input sweep is missing"
    assert total.group(1) == total.group(2)
    return per_file, int(total.group(1))


def collected() -> Counter:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "--collect-only",
            "-m",
            "slow or not slow",
            "-p",
            "no:cacheprovider",
        ]
        + [f"tests/robustness/{name}" for name in SWEEP],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return Counter(Path(line.split("::")[0]).name for line in proc.stdout.splitlines() if "::" in line)


def test_the_readme_counts_are_the_collected_cases():
    per_file, total = readme_counts()
    found = collected()
    assert set(SWEEP) == set(found) == set(per_file)
    assert per_file == found
    assert total == sum(found.values())
