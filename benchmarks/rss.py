"""Resident-memory readings of the current process (Linux), shared by the memory benchmarks."""

from __future__ import annotations


def proc_status_kb(field: str) -> int:
    """A memory field of /proc/self/status in kB (VmRSS: resident now, VmHWM: peak resident)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status (Linux only)")


def reset_peak_rss() -> None:
    """Resets VmHWM to the current resident size (Linux >= 4.0); without it the peak includes start-up."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass
