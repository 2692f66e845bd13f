"""Which NVIDIA GPU is here, asked of the CUDA driver directly (no torch, no CUDA toolkit).

Engines are named by the GPU's compute capability, and the runtime must find the engine that
was built for the GPU it runs on, so both sides ask the same question the same way.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass


@dataclass(frozen=True)
class GpuInfo:
    name: str
    compute_capability: tuple[int, int]

    @property
    def sm(self) -> str:
        """'sm87' for a Jetson Orin, 'sm90' for an H100."""
        return f"sm{self.compute_capability[0]}{self.compute_capability[1]}"


def cuda_gpu(index: int = 0) -> GpuInfo | None:
    """The GPU at `index` through libcuda, or None where there is no driver or no GPU."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None
    device = ctypes.c_int()
    if cuda.cuInit(0) != 0 or cuda.cuDeviceGet(ctypes.byref(device), index) != 0:
        return None
    major, minor = ctypes.c_int(), ctypes.c_int()
    # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75, _MINOR = 76
    if cuda.cuDeviceGetAttribute(ctypes.byref(major), 75, device) != 0:
        return None
    if cuda.cuDeviceGetAttribute(ctypes.byref(minor), 76, device) != 0:
        return None
    name = ctypes.create_string_buffer(256)
    cuda.cuDeviceGetName(name, 256, device)
    return GpuInfo(name.value.decode(errors="replace"), (major.value, minor.value))
