"""`python -m trm_edge ...` (what torchrun runs: `torchrun --nproc-per-node N -m trm_edge train ...`)."""

from trm_edge.app.cli import run

run()
