"""Which precision to compute in: `precision: auto` takes bfloat16 only where the hardware has it.

Mixed bfloat16 trains faster where the chip multiplies bfloat16 natively: a GPU, an x86 CPU with
AVX512_BF16 or AMX, an Arm CPU with BF16. Everywhere else TensorFlow emulates it in software,
and its gradients are many times slower than float32's.
"""

import os
from pathlib import Path

from cifarcam.backend import keras

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
    """The CPU's feature flags as Linux lists them (x86 `flags`, Arm `Features`); empty elsewhere."""
    return {flag for key, value in _cpuinfo(cpuinfo) if key in ("flags", "Features") for flag in value.split()}


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
