"""Which process of a distributed launch this is, read from the launcher's environment.

Data setup runs before Lightning creates a process group, so it cannot ask the trainer; it reads the
variables that torchrun, srun and Lightning's own launcher set instead.
"""

from __future__ import annotations

import logging
import os

# The run's own story (its data, run directory, resume point, starting weights): the CLI prints it plainly
# on stdout; a library caller sees it where its logging configuration sends INFO records.
RUN_LOG = logging.getLogger("biolm.run")


def is_rank_zero() -> bool:
    """Whether this process is global rank 0 as its launcher set it, before any process group exists.

    torchrun sets RANK; srun SLURM_PROCID; Lightning's own launcher LOCAL_RANK in the processes it
    starts, and NODE_RANK on every node but the first of a multi-node run.
    """
    if "RANK" in os.environ:
        return int(os.environ["RANK"]) == 0
    keys = ("SLURM_PROCID", "NODE_RANK", "GROUP_RANK", "LOCAL_RANK")
    return all(int(os.environ.get(key, "0")) == 0 for key in keys)


def announce(message: str) -> None:
    """Log one line of the run's story at INFO on `biolm.run`, from global rank 0 only."""
    if is_rank_zero():
        RUN_LOG.info(message)
