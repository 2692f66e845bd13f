"""The export directory's contract: what the export stage writes and the runtime reads (core, numpy only).

- `metadata`: trm_edge.json as types (`ExportMetadata`);
- `export_dir`: reading and writing trm_edge.json, its schema and bounds checked first;
- `validation_file`: validation.npz, the puzzles an export validated on;
- `held_out`: held-out puzzle files (`.npz`, with or without labels) both stages read;
- `triton`: the solver model's contract in a Triton model repository (names, shapes, batching).

Neither stage imports the other: both import this.
"""
