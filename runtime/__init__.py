"""Runtime stage: the torch-free loop that runs an exported model until each puzzle halts.

    from trm_edge.runtime import Solver
    solver = Solver.load("export_dir")
    print(solver.solve(["4.165.8....7.9..43..37.49...28.41..9.7.836..2....2.358.3241..9..1.3..........5136"])[0].text)

    options = SolverOptions(backend="openvino", precision="bf16", slots=16, threads=2)
    solver = Solver.load("export_dir", options)        # every setting in one object (or as keywords)

    VersionedRun(solver, budget=1024).solve([...])  # test-time versions: the first verified one wins
    VersionedRun(solver, budget=1024, kind="trajectories", noise=Noise(scale=0.3))  # nudged by seeded noise
    ArcRunner(solver).solve(read_arc_tasks(path))   # ARC: every trained version, the official vote
"""

from trm_edge.runtime.arc import ArcRunner
from trm_edge.runtime.feed import SolverFeed
from trm_edge.runtime.options import SolverOptions
from trm_edge.runtime.solver import Result, Solver
from trm_edge.runtime.trajectories import Noise
from trm_edge.runtime.versions import VersionedResult, VersionedRun

__all__ = ["ArcRunner", "Noise", "Result", "Solver", "SolverFeed", "SolverOptions", "VersionedResult", "VersionedRun"]
