"""The names of what each export writer writes, in one place: the writers name their files from
here, and the format table's rows (export/format_table.py) list them from here, so a row says
what its writer writes. No torch, no onnx: the CLI reads the table to build its help.

A row lists the top level of what its format's output holds with the default options: files,
folders (ending in /) and, for names a machine decides (an engine's TensorRT version and GPU),
glob patterns. Options add or drop a few, named beside them below.
"""

from __future__ import annotations

from trm_edge.contract.export_dir import METADATA_FILE
from trm_edge.contract.triton import DEFAULT_MODEL_NAME
from trm_edge.contract.validation_file import VALIDATION_FILE

INIT_GRAPH, STEP_GRAPH = "init.onnx", "step.onnx"
INT8_STEP = "step_int8.onnx"  # --precision int8 adds it
SOLVE_FILE = "solve.onnx"  # --format solve and web, or --solve-graph
# An export directory (--format onnx); --no-validate leaves out the validation puzzles.
EXPORT_DIRECTORY = (INIT_GRAPH, STEP_GRAPH, METADATA_FILE, VALIDATION_FILE)

# TensorRT: named by graph, TensorRT version, compute capability and precision (an engine runs only
# where all match), with the timing cache of that TensorRT and GPU beside them.
ENGINE_NAME = "{graph}.trt{version}.{sm}.{precision}.engine"
TIMING_CACHE_NAME = "timing.trt{version}.{sm}.cache"
ENGINE_FILES = (ENGINE_NAME.format(graph="*", version="*", sm="*", precision="*"),
                TIMING_CACHE_NAME.format(version="*", sm="*"))

PROGRAM_FILES = {"executorch": ("init.pte", "step.pte"), "litert": ("init.tflite", "step.tflite")}

TRITON_README = "README.md"
TRITON_STEP_ONNX = "step.onnx"  # beside the models with --triton-step tensorrt (the plan is built from it)


def triton_models(model_name: str = DEFAULT_MODEL_NAME) -> tuple[str, str, str]:
    """The repository's models: the solver clients call, and the init and step graphs it loops."""
    return model_name, f"{model_name}_init", f"{model_name}_step"


TRITON_REPOSITORY = (*(f"{name}/" for name in triton_models()), TRITON_README)

# The page (export/web), its model description, ONNX Runtime Web's folder, and the export it runs.
WEB_PAGE = ("index.html", "solve.js")
WEB_MODEL, WEB_ORT = "model.json", "ort"
WEB_SITE = (SOLVE_FILE, *EXPORT_DIRECTORY, *WEB_PAGE, WEB_MODEL, f"{WEB_ORT}/")
