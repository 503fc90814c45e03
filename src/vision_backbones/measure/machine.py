"""The machine a measurement ran on: CPU model, the vector ISA it offers, cores, load and versions.

Every benchmark records this next to its figures (a ratio measured with AVX-512 or AMX says little
about an AVX2 laptop). The CPU is read from ``/proc/cpuinfo`` (Linux), else from ``lscpu``, else
from :mod:`platform`; :func:`isa_flags` keeps only the flags that decide which kernels
oneDNN/ATen run, and ``torch_cpu_capability`` is what PyTorch itself dispatches to.
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

# x86 (``flags``) then Arm (``Features``): the ones that change which conv/matmul kernels run.
ISA_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx_vnni",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "amx_fp16",
    "asimd",
    "asimdhp",
    "asimddp",
    "sve",
    "sve2",
    "bf16",
    "i8mm",
)
PACKAGES = ("torchvision", "timm", "onnxruntime", "onnx")


def _parse(lines: Sequence[str], keys: dict[str, str]) -> dict[str, str]:
    """The first value of each ``key: value`` line whose key (lower-cased) is in ``keys``."""
    found: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.partition(":")
        name = keys.get(key.strip().lower())
        if sep and name is not None and name not in found:
            found[name] = value.strip()
    return found


@functools.lru_cache(maxsize=1)
def _cpu_fields() -> dict[str, str]:
    keys = {"model name": "model", "flags": "flags", "features": "flags"}
    try:
        found = _parse(Path("/proc/cpuinfo").read_text().splitlines(), keys)
    except OSError:
        found = {}
    if "model" not in found or "flags" not in found:
        try:
            lscpu = subprocess.run(
                ["lscpu"], capture_output=True, text=True, timeout=10, env={**os.environ, "LC_ALL": "C"}, check=False
            )
            found = {**_parse(lscpu.stdout.splitlines(), keys), **found}
        except (OSError, subprocess.SubprocessError):
            pass
    return found


def cpu_model() -> str:
    """The CPU's marketing name (e.g. ``AMD EPYC 9654 96-Core Processor``), or the architecture."""
    return _cpu_fields().get("model") or platform.processor() or platform.machine() or "unknown"


def isa_flags() -> list[str]:
    """The vector-ISA flags of :data:`ISA_FLAGS` this CPU reports, in that order."""
    flags = set(_cpu_fields().get("flags", "").split())
    return [flag for flag in ISA_FLAGS if flag in flags]


def package_versions(packages: Sequence[str] = PACKAGES) -> dict[str, str]:
    versions = {"python": platform.python_version(), "torch": torch.__version__}
    for module in packages:
        try:
            versions[module] = __import__(module).__version__
        except ImportError:
            versions[module] = "not installed"
    return versions


def machine_info(packages: Sequence[str] = PACKAGES) -> dict[str, Any]:
    """CPU, ISA flags, PyTorch's CPU kernel level, cores, platform, versions and load average."""
    return {
        "cpu": cpu_model(),
        "isa": isa_flags(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "logical_cores": os.cpu_count(),
        "affinity_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "versions": package_versions(packages),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def describe(info: dict[str, Any]) -> str:
    """One line: ``CPU (ISA: ...; PyTorch kernels: ...), N logical cores (M usable)``."""
    isa = " ".join(info.get("isa") or []) or "none reported"
    capability = info.get("torch_cpu_capability") or "unknown"
    return f"{info['cpu']} (ISA: {isa}; PyTorch CPU kernels: {capability}), {info['logical_cores']} logical cores ({info['affinity_cores']} usable)"
