"""What the CPU this runs on can do natively, where it decides how to compute (numpy only).

`TRM_EDGE_NO_NATIVE_BF16=1` makes trm-edge treat the CPU as one without native bf16 or fp16 (an
AVX2 machine): the runtime's `auto` never lowers the precision, explicit bf16/fp16 is refused,
recipes train in float32 and the PyTorch peers skip bf16. One machine can so run both paths (the
test suite passes either way); it changes what trm-edge chooses, not what the hardware does.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

from trm_edge.env_flags import flag_is_set

NO_NATIVE_BF16_ENV = "TRM_EDGE_NO_NATIVE_BF16"
# The flags that decide the fastest step (shown by doctor, part of the runtime's cached choice).
DECIDING_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_fp16", "avx512_vnni",
                  "avx_vnni", "asimd", "bf16")


def native_half_precision_switched_off() -> bool:
    """Whether TRM_EDGE_NO_NATIVE_BF16 asks to treat this CPU as having no native bf16/fp16."""
    return flag_is_set(NO_NATIVE_BF16_ENV)


def cpu_name_and_flags() -> tuple[str, list[str]]:
    """The CPU's model name and which of DECIDING_FLAGS it lists (Linux /proc/cpuinfo)."""
    name, flags = platform.processor() or platform.machine(), set[str]()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                name = value.strip()
            elif key.strip() in ("flags", "Features") and not flags:
                flags = set(value.split())
    except OSError:
        pass
    return name, [f for f in DECIDING_FLAGS if f in flags]


def cpu_has_native_bf16() -> bool:
    """AVX-512 BF16 or AMX on x86 (Linux /proc/cpuinfo), unless switched off. Elsewhere PyTorch's
    bf16 autocast emulates bf16 and runs several times slower than float32 (measured 6x on a Zen 3
    core)."""
    if native_half_precision_switched_off():
        return False
    flags = cpu_name_and_flags()[1]
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cpu_has_int8_dot_products() -> bool:
    """Whether an x86 CPU multiplies int8 in its vector units (AVX-512 VNNI or AVX-VNNI), where an int8
    step can beat float (docs/int8.md: without VNNI it runs 0.84-0.95x fp32 on a Zen 3). True off x86,
    where these flags say nothing."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return True
    flags = cpu_name_and_flags()[1]
    return "avx512_vnni" in flags or "avx_vnni" in flags


def usable_cores() -> list[int]:
    """The CPU cores this process may run on (its affinity; all of them where the OS has no such call)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:
        return list(range(os.cpu_count() or 1))
