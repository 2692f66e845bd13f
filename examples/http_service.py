"""A Sudoku-solving HTTP service: concurrent requests share one batch (continuous batching).

    pip install "trm-edge[cpu,examples]"
    trm-edge demo                                       # once: exports the shipped model
    python examples/http_service.py trm-edge-demo/export --port 8000
    curl -s localhost:8000/solve -H 'content-type: application/json' \
         -d '{"puzzle": "4.165.8....7.9..43..37.49...28.41..9.7.836..2....2.358.3241..9..1.3..........5136"}'

One worker thread runs the runtime's loop (SolverFeed); each request waits on its own future, so a
request that arrives mid-flight joins the batch at the next step instead of waiting for a batch to
finish. A malformed puzzle is answered 422 with what is wrong and never reaches the loop.
"""

from __future__ import annotations

import argparse
import asyncio
from contextlib import asynccontextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from trm_edge.runtime import Solver, SolverFeed
from trm_edge.tasks import PuzzleError


class SolveRequest(BaseModel):
    puzzle: str  # 81 cells, '.' or '0' for blanks


class SolveResponse(BaseModel):
    solution: str
    steps: int
    verified: bool | None  # the solution checks out by Sudoku's rules (null: the task cannot verify)
    halt_confidence: float
    latency_ms: float  # time in the batch, from taking a slot to halting


def create_app(export_dir: Path, slots: int = 16, backend: str = "auto") -> FastAPI:
    solver = Solver.load(export_dir, backend=backend, slots=slots)  # puzzles in flight at once
    feed = SolverFeed(solver)

    @asynccontextmanager
    async def lifespan(_: FastAPI):  # type: ignore[no-untyped-def]
        feed.start()
        yield
        feed.close()

    app = FastAPI(title="trm-edge Sudoku service", lifespan=lifespan)

    @app.get("/health")
    def health() -> dict[str, object]:
        return {"status": "ok", "backend": solver.backend_name, "precision": solver.precision, "slots": slots}

    @app.post("/solve")
    async def solve(request: SolveRequest) -> SolveResponse:
        try:
            future = feed.submit(request.puzzle)
        except PuzzleError as err:
            raise HTTPException(status_code=422, detail=str(err)) from None
        result = await asyncio.wrap_future(future)
        return SolveResponse(
            solution=result.text or "", steps=result.steps, verified=result.verified,
            halt_confidence=result.halt_confidence, latency_ms=1e3 * result.latency_s,
        )

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export_dir", type=Path, nargs="?", default=Path("trm-edge-demo/export"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--slots", type=int, default=16, help="puzzles in flight at once (the solver's width)")
    parser.add_argument("--backend", default="auto")
    args = parser.parse_args()
    uvicorn.run(create_app(args.export_dir, args.slots, args.backend), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
