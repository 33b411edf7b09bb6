"""What a run's numbers depend on beyond its config: the CPU instruction set XLA compiles for.

XLA compiles CPU programs for the instruction set of the machine it runs on, and AVX-512 code
rounds differently from AVX2 code: the same run gives other numbers on an AVX-512 machine
(BC's grad norm differs in the 9th digit after 1000 updates; 30k updates turn that into other
success rates). sorlab therefore caps XLA's CPU instruction set at AVX2 by default, so that every
x86-64 machine with AVX2 compiles the same code and repeats the same numbers bit for bit.

SORLAB_CPU_ISA sets the cap: AVX2 (default), another of XLA's names (SSE4_2, AVX, AVX512, ...),
or `native` for no cap (XLA's own choice: the machine's full instruction set). The cap applies
to x86-64 only and to the CPU backend only (a GPU run is not affected). It must be set before
JAX creates its CPU client, which is why `sorlab/__init__.py` calls `apply_cpu_isa_cap()`.

Standard library only: the workflow and every entry point import this before JAX.
"""

from __future__ import annotations

import os
import platform

ENV_VAR = "SORLAB_CPU_ISA"
DEFAULT_CAP = "AVX2"
NATIVE = "native"
# XLA's names (xla/service/cpu/cpu_options), lowest first.
X86_ISAS = ("SSE4_2", "AVX", "AVX2", "AVX512", "AVX512_VNNI", "AVX512_BF16", "AMX", "AMX_FP16")
# /proc/cpuinfo flags that show each level (the highest present is the machine's).
_CPUINFO_FLAGS = {
    "SSE4_2": "sse4_2",
    "AVX": "avx",
    "AVX2": "avx2",
    "AVX512": "avx512f",
    "AVX512_VNNI": "avx512_vnni",
    "AVX512_BF16": "avx512_bf16",
    "AMX": "amx_tile",
    "AMX_FP16": "amx_fp16",
}
_FLAG = "--xla_cpu_max_isa"


def is_x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64")


def requested_cap() -> str:
    """SORLAB_CPU_ISA, checked: ValueError naming the variable and the accepted values."""
    value = os.environ.get(ENV_VAR, DEFAULT_CAP).strip() or DEFAULT_CAP
    if value.lower() == NATIVE:
        return NATIVE
    if value.upper() not in X86_ISAS:
        raise ValueError(f"{ENV_VAR}={value!r}: expected {NATIVE} or one of {', '.join(X86_ISAS)}")
    return value.upper()


def apply_cpu_isa_cap() -> None:
    """Add `--xla_cpu_max_isa=<cap>` to XLA_FLAGS (x86-64 only), unless XLA_FLAGS already names
    one (the user's own choice wins) or SORLAB_CPU_ISA is `native`. A no-op once JAX has created
    its backends: the flags are read then, and `platform_record` says what was in effect."""
    cap = requested_cap()
    flags = os.environ.get("XLA_FLAGS", "")
    if cap == NATIVE or not is_x86() or _FLAG in flags:
        return
    os.environ["XLA_FLAGS"] = f"{flags} {_FLAG}={cap}".strip()


def host_isa() -> str:
    """The machine's highest instruction set in XLA's names (x86-64 Linux), else the machine's
    architecture (e.g. arm64)."""
    if not is_x86():
        return platform.machine().lower()
    try:
        with open("/proc/cpuinfo") as f:
            flags = next(
                (line.split(":", 1)[1].split() for line in f if line.startswith("flags")), []
            )
    except OSError:
        return "x86_64 (instruction set unknown)"
    present = set(flags)
    levels = [isa for isa in X86_ISAS if _CPUINFO_FLAGS[isa] in present]
    return levels[-1] if levels else "x86_64"


def xla_cap_in_effect() -> str | None:
    """The `--xla_cpu_max_isa` value in XLA_FLAGS, or None (no cap: the machine's own)."""
    for part in os.environ.get("XLA_FLAGS", "").split():
        if part.startswith(_FLAG + "="):
            return part.split("=", 1)[1].upper()
    return None


def compiled_isa() -> str:
    """The instruction set XLA compiles CPU code for: the lower of the machine's and the cap."""
    host, cap = host_isa(), xla_cap_in_effect()
    if cap is None or host not in X86_ISAS or cap not in X86_ISAS:
        return host
    return X86_ISAS[min(X86_ISAS.index(host), X86_ISAS.index(cap))]


def platform_record() -> dict:
    """What a number depends on beyond the config, for config.json and every evaluation JSON:
    device kind, the CPU instruction set XLA compiled for, and the numerical libraries."""
    import jax
    import jaxlib
    import numpy

    devices = jax.devices()
    return {
        "backend": jax.default_backend(),
        "device_kind": devices[0].device_kind if devices else "unknown",
        "cpu_isa_host": host_isa(),
        "xla_cpu_max_isa": xla_cap_in_effect() or NATIVE,
        "cpu_isa_compiled": compiled_isa(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "numpy": numpy.__version__,
    }
