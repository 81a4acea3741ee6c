"""Which precision to compute in: `precision: auto` takes bfloat16 only where the hardware has it.

Mixed bfloat16 trains faster where the chip multiplies bfloat16 natively: a GPU, an x86 CPU with
AVX512_BF16 or AMX, an Arm CPU with BF16. Everywhere else TensorFlow emulates it in software,
and its gradients are many times slower than float32's. The CPU is asked the way each OS allows:
Linux's /proc/cpuinfo, macOS's sysctl, and elsewhere (Windows) the x86 CPUID instruction itself.
"""

import ctypes
import mmap
import os
import platform
import subprocess
import sys
from pathlib import Path

from cifarcam.core.backend import keras

BFLOAT16_CPU_FLAGS = {"avx512_bf16", "amx_bf16", "bf16"}  # x86's AVX512_BF16 and AMX, Arm's BF16
CPUINFO = Path("/proc/cpuinfo")


def _cpuinfo(cpuinfo):
    """(key, value) pairs of Linux's description of the CPU; none where there is no such file."""
    try:
        lines = cpuinfo.read_text().splitlines()
    except OSError:
        return []
    return [tuple(part.strip() for part in line.split(":", 1)) for line in lines if ":" in line]


def cpu_flags(cpuinfo=CPUINFO):
    """The CPU's feature flags: on Linux all it lists (x86 `flags`, Arm `Features`), elsewhere the bfloat16 ones."""
    if sys.platform.startswith("linux"):
        return {flag for key, value in _cpuinfo(cpuinfo) if key in ("flags", "Features") for flag in value.split()}
    if sys.platform == "darwin" and platform.machine() == "arm64":
        return _sysctl_flags()
    return cpuid_flags()


def _sysctl_flags():
    """Apple silicon's BF16 (M2 and later), as macOS reports it."""
    try:
        answer = subprocess.run(
            ["sysctl", "-n", "hw.optional.arm.FEAT_BF16"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return set()
    return {"bf16"} if answer.stdout.strip() == "1" else set()


# x86-64 machine code of cpuid(leaf, subleaf, uint32 out[4]): eax, ebx, ecx, edx of the CPUID instruction.
_STORE = bytes.fromhex("0fa2 418900 41895804 41894808 4189500c 5b c3")
_CPUID_CODE = {
    "sysv": bytes.fromhex("53 4989d0 89f8 89f1") + _STORE,  # leaf in edi, subleaf in esi, out in rdx
    "windows": bytes.fromhex("53 89c8 89d1") + _STORE,  # leaf in ecx, subleaf in edx, out in r8
}


def _cpuid_function():
    """A callable cpuid(leaf, subleaf) -> (eax, ebx, ecx, edx), or None where the code cannot be run here."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    code = _CPUID_CODE["windows" if sys.platform == "win32" else "sysv"]
    try:
        if sys.platform == "win32":
            kernel32 = ctypes.windll.kernel32
            kernel32.VirtualAlloc.restype = ctypes.c_void_p
            kernel32.VirtualAlloc.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_ulong, ctypes.c_ulong]
            address = kernel32.VirtualAlloc(
                None, len(code), 0x3000, 0x40
            )  # MEM_COMMIT | MEM_RESERVE, EXECUTE_READWRITE
            ctypes.memmove(address, code, len(code))
            keep = None
        else:
            keep = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
            keep.write(code)
            address = ctypes.addressof(ctypes.c_char.from_buffer(keep))
    except (OSError, AttributeError, ValueError):  # no executable memory (a hardened OS): report no flags
        return None
    function = ctypes.CFUNCTYPE(None, ctypes.c_uint32, ctypes.c_uint32, ctypes.POINTER(ctypes.c_uint32))(address)

    def cpuid(leaf, subleaf=0):
        out = (ctypes.c_uint32 * 4)()
        function(leaf, subleaf, out)
        return tuple(out)

    cpuid.memory = keep  # the code's mapping lives as long as the function
    return cpuid


def cpuid_flags():
    """x86's bfloat16 flags, from CPUID leaf 7 (Linux's names): avx512_bf16 (sub-leaf 1, EAX bit 5) and amx_bf16
    (sub-leaf 0, EDX bit 22). Empty on other CPUs."""
    cpuid = _cpuid_function()
    if cpuid is None or cpuid(0)[0] < 7:
        return set()
    leaf7 = cpuid(7, 0)
    flags = {"amx_bf16"} if leaf7[3] >> 22 & 1 else set()
    if leaf7[0] >= 1 and cpuid(7, 1)[0] >> 5 & 1:
        flags.add("avx512_bf16")
    return flags


def has_accelerator():
    """Whether Keras's backend computes on a GPU (or another accelerator) rather than the CPU."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.default_backend() != "cpu"
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    return False


def native_bfloat16(cpuinfo=CPUINFO):
    return has_accelerator() or bool(cpu_flags(cpuinfo) & BFLOAT16_CPU_FLAGS)


def resolve(precision, cpuinfo=CPUINFO):
    """The Keras dtype policy for a `precision` parameter: `auto` becomes mixed_bfloat16 or float32."""
    if precision != "auto":
        return precision
    return "mixed_bfloat16" if native_bfloat16(cpuinfo) else "float32"


def machine_summary(cpuinfo=CPUINFO):
    """One line for benchmark reports: the CPU's model, its cores, and what `auto` resolves to here."""
    model = next((value for key, value in _cpuinfo(cpuinfo) if key == "model name"), "unknown CPU")
    return f"{model}, {os.cpu_count()} cores, precision auto: {resolve('auto', cpuinfo)}"
