"""The pure parts of bench.race: counting a training step's FLOPs, and the summary's ratios."""

import keras
from recipes import build_network

from bench import race


def test_flops_count_two_per_multiply_add_of_each_convolution_and_dense_layer():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(5, 3, padding="same")(x)
    x = keras.layers.GlobalMaxPooling2D()(x)
    network = keras.Model(inputs, keras.layers.Dense(10)(x))
    forward = 2 * (8 * 8 * 3 * 3 * 3 * 4 + 4 * 4 * 3 * 3 * 4 * 5 + 5 * 10)  # pooling halves the second conv's positions
    assert race.forward_flops(network) == forward
    assert race.training_flops(network) == 3 * forward


def test_airbench_networks_flops_include_the_whitening_convolution():
    network = build_network("airbench", (32, 32, 3), dropout=0.0, widths=[8, 8, 8])
    whitening = 2 * (2 * 2 * 3 * 24) * 31 * 31  # 2x2 'valid' patches: 31x31 positions, 24 filters
    convs = (
        2 * 9 * (24 * 8 * 31 * 31 + 8 * 8 * (15 * 15 * 2 + 7 * 7 * 2 + 3 * 3))
    )  # each group pools after its first conv
    assert race.forward_flops(network) == whitening + convs + 2 * 8 * 10


def epochs(seconds, test_tta, images=1000):
    return [
        {
            "seconds": s,
            "cpu_seconds": 2 * s,
            "images": images,
            "val": {"none": a, "tta": a},
            "test": {"none": a - 0.01, "tta": a},
        }
        for s, a in zip(seconds, test_tta, strict=True)
    ]


def test_time_to_accuracy_sums_the_epochs_up_to_the_first_that_reaches_the_target():
    history = epochs([10, 20, 30, 40], [0.5, 0.8, 0.9, 0.95])
    assert race.time_to_accuracy(history, 0.9) == 60
    assert race.time_to_accuracy(history, 0.96) is None
    assert race.images_per_second(history) == 4000 / 100
    assert race.images_per_second(history, "cpu_seconds") == 4000 / 200


def test_the_summary_gives_each_ratio_against_airbench94():
    history = {
        race.AIRBENCH: epochs([10, 10], [0.8, 0.9]),  # 100 img/s; 0.9 after 20 s
        race.OURS: epochs([10, 10, 10], [0.7, 0.85, 0.91]),  # reaches 0.9 after 30 s
        race.OURS_AIRBENCH_NET: epochs([20, 20], [0.8, 0.9]),  # 50 img/s
    }
    flops = {race.AIRBENCH: 1e6, race.OURS: 2e6, race.OURS_AIRBENCH_NET: 1e6}
    peak = {"TensorFlow": 4e8, "PyTorch": 2e8}
    finished = dict.fromkeys(history, True)
    lines = race.summary(history, flops, peak, "a CPU", "mixed_bfloat16", finished)
    text = "\n".join(lines)
    assert "machine: a CPU" in text
    assert (
        "ratio 1, time to airbench94's test accuracy with TTA 0.9000, ours / airbench94 (goal ≤ 1.0): 1.50 "
        "(30.0 s / 20.0 s)" in text
    )
    assert "ours_airbench_net / airbench94 (goal ≥ 1.0): 0.50 (per second of process CPU time: 0.50)" in text
    assert (
        "training FLOP/s of ours / TensorFlow's matrix product (goal ≥ 0.7): 0.50" in text
    )  # 100 img/s x 2 MFLOP / 400 MFLOP/s
    assert "training FLOP/s of airbench94 / TensorFlow's matrix product (goal ≥ 0.7): 0.25" in text


def test_the_summary_says_why_a_ratio_is_missing():
    history = {race.AIRBENCH: epochs([10], [0.8]), race.OURS: epochs([10], [0.85]), race.OURS_AIRBENCH_NET: []}
    flops = dict.fromkeys(history, 1e6)
    lines = race.summary(
        history, flops, {"TensorFlow": 1e9}, "a CPU", "float32", {race.AIRBENCH: True, race.OURS: False}
    )
    assert any("ratio 1" in line and "1.00 (10.0 s / 10.0 s)" in line for line in lines)
    assert any(line.startswith("ratio 2, throughput: not measured") for line in lines)
    unfinished = race.summary(
        history, flops, {"TensorFlow": 1e9}, "a CPU", "float32", {race.AIRBENCH: False, race.OURS: False}
    )
    assert any(line.startswith("ratio 1, time to accuracy: not measured") for line in unfinished)
    not_reached = race.summary(
        {race.AIRBENCH: epochs([10], [0.9]), race.OURS: epochs([10, 10], [0.8, 0.85])},
        flops,
        {"TensorFlow": 1e9},
        "a CPU",
        "float32",
        {race.AIRBENCH: True},
    )
    assert any("not reached: ours' best test tta 0.8500 in 2 epochs (20.0 s)" in line for line in not_reached)


def test_the_machine_line_names_the_instruction_caps_in_force(monkeypatch):
    for name in race.ISA_CAPS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/tmp/xla")  # set, but no cap
    assert "capped" not in race.machine_line()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    assert race.machine_line().endswith("; instructions capped: ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2")
