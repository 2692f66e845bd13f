"""Serving through NVIDIA Triton Inference Server: the solver model's contract, the Python-backend
model that runs the trm-edge loop inside Triton, `trm-edge serve` (Triton from the nvidia-pytriton
wheel) and the model repository `trm-edge export --format triton` writes for Triton containers."""
