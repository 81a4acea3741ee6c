"""Run the pipeline one stage at a time and print each stage's wall time and peak memory.

    python -m bench.stage_times            # every stage, forced to run
    python -m bench.stage_times evaluate   # just the named stages

Each stage runs as `dvc repro --force --single-item STAGE`, so together they are one full
`dvc repro`. Peak RSS is the largest resident set of the stage's processes (Linux wait4).
"""

import os
import platform
import subprocess
import sys
import time

import yaml

MB = 1024  # ru_maxrss is in KiB on Linux


def run_stage(stage):
    started = time.perf_counter()
    process = subprocess.Popen(["dvc", "repro", "--force", "--single-item", stage])
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"stage {stage} failed")
    return time.perf_counter() - started, usage.ru_maxrss / MB


def main():
    stages = sys.argv[1:] or list(yaml.safe_load(open("dvc.yaml"))["stages"])
    rows = [(stage, *run_stage(stage)) for stage in stages]
    print(f"\nmachine: {platform.node()}, {os.cpu_count()} cores, {platform.processor() or platform.machine()}")
    print("| stage | wall time | peak RSS |\n|---|---|---|")
    for stage, seconds, peak_mb in rows:
        print(f"| {stage} | {seconds / 60:.1f} min ({seconds:.0f} s) | {peak_mb:.0f} MB |")
    total = sum(seconds for _, seconds, _ in rows)
    print(f"| all | {total / 60:.1f} min ({total:.0f} s) | {max(peak for *_, peak in rows):.0f} MB |")


if __name__ == "__main__":
    main()
