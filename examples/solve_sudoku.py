"""The smallest app that embeds the trm-edge runtime: solve Sudokus with an exported TRM.

No torch needed, only `pip install "trm-edge[cpu]"` and an export directory:

    trm-edge demo                                  # once: exports the shipped model to trm-edge-demo/export
    python examples/solve_sudoku.py                # two built-in puzzles
    python examples/solve_sudoku.py EXPORT_DIR "4.165.8....7.9..43..." ...
"""

from __future__ import annotations

import sys

from trm_edge.errors import TrmEdgeError
from trm_edge.runtime import Solver

EXAMPLES = [
    "4.165.8....7.9..43..37.49...28.41..9.7.836..2....2.358.3241..9..1.3..........5136",
    ".68.924.3...4.3.8.53......9.8.729.....384......9..6...9...6..4..7.....28....7193.",
]


def grid(text: str) -> str:
    rows = [" ".join(text[r * 9 : r * 9 + 9]) for r in range(9)]
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    export_dir = argv[1] if len(argv) > 1 else "trm-edge-demo/export"
    puzzles = argv[2:] or EXAMPLES
    try:
        solver = Solver.load(export_dir, slots=len(puzzles))  # ONNX Runtime CPU, or a GPU if present
        results = solver.solve(puzzles)  # halts each puzzle by the export's policy
    except TrmEdgeError as err:  # a missing export or a malformed puzzle, explained
        print(f"error: {err}", file=sys.stderr)
        return 2
    for result in results:
        print(f"puzzle {result.index + 1}: {result.steps} steps, halting confidence {result.halt_confidence:.2f}")
        print(grid(result.text or ""), end="\n\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
