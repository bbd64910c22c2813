"""Host-side STAND-IN for ONNX Runtime's ``onnxruntime_perf_test`` (tests only; not the vendor binary).

The ADB emulator (``adb_emulator.py``) runs commands on this machine, where no Android build of the
real tool can run. This script takes the same arguments the profiler passes to the real tool
(``-e cpu -m times -r N -x THREADS -I [-s] MODEL [RESULT_FILE]``), really times the model with ONNX
Runtime's CPU provider (one untimed warm-up call, then N timed calls, as the real tool does), and
prints the summary in the real tool's current format, line for line as in the output sample of
ArmDeveloperEcosystem/arm-learning-paths (performance_onnxruntime_kleidiai_sme2/profiling_example.md)
and the ``output_stats`` code of microsoft/onnxruntime ``onnxruntime/test/perftest/performance_runner.cc``.

Errors behave like the real tool's: a message and a non-zero exit status.
"""
from __future__ import annotations

import os
import resource
import sys
import time


def _usage(message: str) -> int:
    print(f"onnxruntime_perf_test: {message}", file=sys.stderr)
    return 255


def main(argv: list[str]) -> int:
    options = {"e": "cpu", "m": "duration", "r": "1000", "x": "0"}
    flags: set[str] = set()
    positional: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-e", "-m", "-r", "-x", "-y", "-o", "-t", "-S"):
            if i + 1 >= len(argv):
                return _usage(f"option {arg} needs a value")
            options[arg[1]] = argv[i + 1]
            i += 2
        elif arg in ("-I", "-s", "-Z", "-v"):
            flags.add(arg[1])
            i += 1
        elif arg.startswith("-") and len(arg) > 1:
            return _usage(f"unknown option {arg}")
        else:
            positional.append(arg)
            i += 1
    if not positional:
        return _usage("model_path is required")
    if options["e"] != "cpu" or options["m"] != "times":
        return _usage("this stand-in supports only -e cpu -m times")
    repeats, threads = int(options["r"]), int(options["x"])

    import numpy as np
    import onnxruntime as ort

    session_options = ort.SessionOptions()
    if threads > 0:
        session_options.intra_op_num_threads = threads
        print(f"Setting intra_op_num_threads to {threads}")
    session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    created = time.perf_counter()
    try:
        session = ort.InferenceSession(positional[0], session_options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # the real tool prints ORT's message and exits non-zero
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 255
    session_seconds = time.perf_counter() - created
    rng = np.random.default_rng(0)
    feeds = {
        i.name: rng.standard_normal([d if isinstance(d, int) and d > 0 else 1 for d in i.shape]).astype(np.float32)
        for i in session.get_inputs()
    }
    cpu_start = time.process_time()
    first = time.perf_counter()
    session.run(None, feeds)
    first_ms = int((time.perf_counter() - first) * 1000)
    costs = []
    begin = time.perf_counter()
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, feeds)
        costs.append(time.perf_counter() - start)
    run_time = time.perf_counter() - begin
    cpu_usage = int(100 * (time.process_time() - cpu_start) / max(run_time, 1e-9) / (os.cpu_count() or 1))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    total = sum(costs)

    def g(value: float) -> str:  # std::ostream's default float format: 6 significant digits
        return f"{value:g}"

    print(f"Session creation time cost: {g(session_seconds)} s")
    print(f"First inference time cost: {first_ms} ms")
    print(f"Total inference time cost: {g(total)} s")
    print(f"Total inference requests: {len(costs)}")
    print(f"Average inference time cost total: {total / len(costs) * 1000:.6f} ms")
    print(f"Total inference run time: {g(run_time)} s")
    print(f"Number of inferences per second: {g(len(costs) / run_time)}")
    print(f"Avg CPU usage: {cpu_usage} %")
    print(f"Peak working set size: {peak} bytes")
    print(f"Avg CPU usage:{cpu_usage}")
    print(f"Peak working set size:{peak}")
    print(f"Runs:{len(costs)}")
    ordered = sorted(costs)
    n = len(ordered)
    print(f"Min Latency: {g(ordered[0])} s")
    print(f"Max Latency: {g(ordered[n - 1])} s")
    for label, q in (("P50", 0.5), ("P90", 0.9), ("P95", 0.95), ("P99", 0.99), ("P999", 0.999)):
        print(f"{label} Latency: {g(ordered[int(n * q)])} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
