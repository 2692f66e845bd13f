"""Stage 2: the recursion step as ONNX (validated against PyTorch) and TensorRT engines.

Entry point: `trm_edge.export.exporter.export` (what `trm-edge export` runs).
"""
