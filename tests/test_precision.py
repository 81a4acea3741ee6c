"""`precision: auto` computes in bfloat16 only where the CPU (or an accelerator) has it natively."""

import keras
import numpy as np
import pytest
from recipes import build_network

from cifarcam.training import models, precision

ZEN3 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse sse2 avx avx2 fma f16c\n"
ZEN4 = ZEN3.replace("avx2", "avx2 avx512f avx512_bf16")
SAPPHIRE_RAPIDS = ZEN3.replace("avx2", "avx2 avx512f amx_bf16 amx_tile")
GRAVITON3 = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\nCPU implementer\t: 0x41\n"


@pytest.mark.parametrize(
    "cpuinfo, policy",
    [(ZEN3, "float32"), (ZEN4, "mixed_bfloat16"), (SAPPHIRE_RAPIDS, "mixed_bfloat16"), (GRAVITON3, "mixed_bfloat16")],
)
def test_auto_takes_bfloat16_only_on_cpus_that_compute_it_natively(tmp_path, cpuinfo, policy):
    (tmp_path / "cpuinfo").write_text(cpuinfo)
    assert precision.resolve("auto", tmp_path / "cpuinfo") == policy


def test_an_unreadable_cpuinfo_means_no_native_bfloat16(tmp_path):
    assert precision.cpu_flags(tmp_path / "missing") == set()
    assert precision.resolve("auto", tmp_path / "missing") == "float32"  # these tests run on a CPU


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16", "mixed_float16"])
def test_a_named_precision_is_kept_whatever_the_cpu(tmp_path, policy):
    (tmp_path / "cpuinfo").write_text(ZEN3)
    assert precision.resolve(policy, tmp_path / "cpuinfo") == policy


def test_cpuid_finds_the_bfloat16_flags_that_linux_lists():
    """Windows and Intel Macs have no /proc/cpuinfo: `auto` asks CPUID there, checked here against Linux."""
    assert precision.cpuid_flags() == precision.cpu_flags() & {"avx512_bf16", "amx_bf16"}


def test_this_machine_reads_its_own_flags():
    flags = precision.cpu_flags()
    assert precision.CPUINFO.exists() == bool(flags)
    assert precision.resolve("auto") == ("mixed_bfloat16" if flags & precision.BFLOAT16_CPU_FLAGS else "float32")


def bfloat16_model(arch="resnet"):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build_network(arch, (32, 32, 3), dropout=0.0, widths=[8, 16, 16])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    if arch == "airbench":  # its whitening starts at zero until set from images
        model.get_layer("whiten").adapt(np.random.default_rng(1).random((50, 32, 32, 3)))
    return model


@pytest.mark.parametrize("arch", ["resnet", "airbench"])
def test_a_bfloat16_model_loads_computing_in_float32_where_bfloat16_is_emulated(tmp_path, arch):
    model = bfloat16_model(arch)
    model.save(tmp_path / "model.keras")
    (tmp_path / "cpuinfo").write_text(ZEN3)
    loaded = models.load(tmp_path / "model.keras", cpuinfo=tmp_path / "cpuinfo")
    assert {layer.compute_dtype for layer in loaded.layers if layer.weights} == {"float32"}
    assert all(layer.dtype_policy.name == "float32" for layer in loaded.layers)
    images = np.random.default_rng(0).random((4, 32, 32, 3)).astype("float32")
    exact = loaded.predict(images, verbose=0)
    rounded = model.predict(images, verbose=0)
    assert np.allclose(exact, rounded, atol=0.05) and not np.array_equal(
        exact, rounded
    )  # same weights, finer arithmetic


def test_a_bfloat16_model_keeps_its_precision_where_bfloat16_is_native(tmp_path):
    bfloat16_model().save(tmp_path / "model.keras")
    (tmp_path / "cpuinfo").write_text(ZEN4)
    loaded = models.load(tmp_path / "model.keras", cpuinfo=tmp_path / "cpuinfo")
    assert loaded.get_layer("stage1_conv").compute_dtype == "bfloat16"
    assert loaded.get_layer("logits").compute_dtype == "float32"


def test_the_machine_summary_names_the_cpu_and_what_auto_takes_there(tmp_path):
    (tmp_path / "cpuinfo").write_text("model name\t: AMD EPYC 9R14 96-Core Processor\n" + ZEN4)
    summary = precision.machine_summary(tmp_path / "cpuinfo")
    assert summary.startswith("AMD EPYC 9R14 96-Core Processor, ") and summary.endswith(
        "precision auto: mixed_bfloat16"
    )
