"""Runner output parsers on real outputs of the vendor tools, and their command lines."""
from __future__ import annotations

import shlex

import pytest

from cars_deploy.errors import UserInputError
from cars_deploy.profilers.runners import RUNNERS, RunnerOutputError, runner_for_format

ORT = RUNNERS.get("onnxruntime_perf_test")
TORCH = RUNNERS.get("speed_benchmark_torch")
EXECUTORCH = RUNNERS.get("executor_runner")

# --- onnxruntime_perf_test -------------------------------------------------------------------------
# Before 2020 ("Average time cost", "Latency is ... sec"): quoted in microsoft/onnxruntime issue #17313
# ("Detailed Inference Statistics Output for onnxruntime_perf_test", 2023-08-28).
ORT_OLD = """\
Total time cost: 58.8053
Total iterations: 1000
Average time cost: 58.8053 ms
Total run time: 58.8102 s
Min Latency is 0.0559777 sec
Max Latency is 0.0623472 sec
P50 Latency is 0.0587108 sec
P90 Latency is 0.0599845 sec
P95 Latency is 0.0605676 sec
P99 Latency is 0.0619517 sec
P999 Latency is 0.0623472 sec
"""

# 2020, no space after the colons, no percentiles: microsoft/onnxruntime pull request #2798
# ("add session creation time cost to onnxruntime_perf_test output", comment of 2020-01-08).
ORT_2020 = """\
D:\\onnxruntime-trt7\\build\\Windows\\Debug\\Debug>onnxruntime_perf_test -m times -r 1 d:\\test_resnet50\\model.onnx res.out
Setting intra_op_num_threads to 0
2020-01-08 11:14:46.9047758 [W:onnxruntime:, graph.cc:2412 onnxruntime::Graph::CleanUnusedInitializers] Removing initializer 'gpu_0/imagenet1k_blobs_queue_f22e83c9-22cd-4a8b-a66d-113af6b832b4_0'. It is not used by any node and should be removed from the model.
Session creation time cost:1.84149 s
Total inference time cost:0.734606 s
Total inference requests:1
Average inference time cost:734.606 ms
Total inference run time:0.734761 s
"""

# Current ("Average inference time cost total", "P50 Latency: ... s"), on an Android phone under
# taskset: ArmDeveloperEcosystem/arm-learning-paths, content/learning-paths/mobile-graphics-and-gaming/
# performance_onnxruntime_kleidiai_sme2/profiling_example.md.
ORT_NEW = """\
Setting intra_op_num_threads to 1
Disabling intra-op thread spinning between runs
Session creation time cost: 0.217932 s
First inference time cost: 196 ms
Total inference time cost: 0.49481 s
Total inference requests: 5
Average inference time cost total: 98.961997 ms
Total inference run time: 0.494854 s
Number of inferences per second: 10.104
Avg CPU usage: 11 %
Peak working set size: 271122432 bytes
Avg CPU usage:11
Peak working set size:271122432
Runs:5
Min Latency: 0.0958204 s
Max Latency: 0.101519 s
P50 Latency: 0.0995086 s
P90 Latency: 0.101519 s
P95 Latency: 0.101519 s
P99 Latency: 0.101519 s
P999 Latency: 0.101519 s
"""


@pytest.mark.parametrize(
    "output, mean, runs, median",
    [(ORT_OLD, 58.8053, 1000, 58.7108), (ORT_2020, 734.606, 1, None), (ORT_NEW, 98.961997, 5, 99.5086)],
    ids=["before-2020", "2020", "current"],
)
def test_onnxruntime_perf_test_formats(output, mean, runs, median):
    result = ORT.parse(output, model="m.onnx")
    assert result.mean_ms == pytest.approx(mean) and result.runs == runs
    if median is None:
        assert result.median_ms is None and result.per_call_ms == pytest.approx(mean)
    else:
        assert result.median_ms == pytest.approx(median) and result.per_call_ms == pytest.approx(median)


def test_onnxruntime_perf_test_percentiles_are_read_in_both_forms():
    old = dict(ORT.parse(ORT_OLD, model="m").percentiles_ms)
    new = dict(ORT.parse(ORT_NEW, model="m").percentiles_ms)
    assert old["P90"] == pytest.approx(59.9845) and old["Min"] == pytest.approx(55.9777)
    assert new["P999"] == pytest.approx(101.519) and set(new) == {"Min", "Max", "P50", "P90", "P95", "P99", "P999"}


def test_onnxruntime_perf_test_command():
    args = ORT.arguments("models/a b.onnx", runs=20, warmup=1, threads=4, input_shapes=[(1, 3, 8, 8)])
    assert args == ["-e", "cpu", "-m", "times", "-r", "20", "-x", "4", "-I", "models/a b.onnx"]


# --- speed_benchmark_torch -------------------------------------------------------------------------
# --report_pep=true output of the lite-interpreter build, from a "Building Pytorch mobile benchmarking
# binary" README (found by code search; its repository is not named by the index). The format is the
# one printed by pytorch/pytorch binaries/speed_benchmark_torch.cc.
TORCH_PEP = """\
Starting benchmark.
Running warmup runs.
Main runs.
PyTorchObserver {"type": "NET", "unit": "us", "metric": "latency", "value": "599746"}
PyTorchObserver {"type": "NET", "unit": "us", "metric": "latency", "value": "570505"}
PyTorchObserver {"type": "NET", "unit": "us", "metric": "latency", "value": "583396"}
Main run finished. Microseconds per iter: 584558. Iters per second: 1.71069
"""

# Without --report_pep, on a phone (Samsung/ONE issue #5240, comment of 2020-12-02).
TORCH_SUMMARY = """\
Starting benchmark.
Running warmup runs.
Main runs.
Main run finished. Microseconds per iter: 25635.7. Iters per second: 39.0081
"""

# PyTorchObserver lines of another tool (the operator micro-benchmarks, pytorch/pytorch pull request
# #28128): not NET latencies, so they are not taken for the model's.
TORCH_OPERATOR_BENCH = """\
# Benchmarking PyTorch: add
PyTorchObserver {"type": "add_M64_N64_K64_cpu", "metric": "latency", "unit": "ms", "value": "29.169559478759766"}
PyTorchObserver {"type": "add_M64_N64_K64_cpu", "metric": "latency", "unit": "ms", "value": "29.206514358520508"}
"""


def test_speed_benchmark_torch_observer_lines_give_per_run_times():
    result = TORCH.parse(TORCH_PEP, model="m.ptl")
    assert result.runs == 3 and result.median_ms == pytest.approx(583.396)
    assert result.mean_ms == pytest.approx((599.746 + 570.505 + 583.396) / 3)


def test_speed_benchmark_torch_summary_line_without_observer_lines():
    result = TORCH.parse(TORCH_SUMMARY, model="m.ptl")
    assert result.mean_ms == pytest.approx(25.6357) and result.median_ms is None and result.runs == 0


def test_speed_benchmark_torch_ignores_other_observer_records():
    with pytest.raises(RunnerOutputError, match="speed_benchmark_torch printed no"):
        TORCH.parse(TORCH_OPERATOR_BENCH, model="m.ptl")


def test_speed_benchmark_torch_command_for_several_inputs():
    args = TORCH.arguments("models/add.ptl", runs=50, warmup=5, threads=1, input_shapes=[(1, 8, 4, 4), (1, 8, 4, 4)])
    assert "--input_dims=1,8,4,4;1,8,4,4" in args and "--input_type=float;float" in args
    assert "--input_memory_format=contiguous_format;contiguous_format" in args
    assert {"--iter=50", "--warmup=5", "--report_pep=true", "--model=models/add.ptl", "--pthreadpool_size=1"} <= set(args)


# --- executor_runner -------------------------------------------------------------------------------
# pytorch/executorch docs/source/using-executorch-building-from-source.md ("Verify the Build").
ET_DOCS = """\
I 00:00:00.043703 executorch:executor_runner.cpp:379] Model executed successfully 1 time(s) in 15.013292 ms.
I 00:00:00.043720 executorch:executor_runner.cpp:383] 1 outputs:
OutputX 0: tensor(sizes=[1, 1000], [
  -0.509859, 0.300644, 0.0953884, 0.147724, 0.231202, 0.338554, 0.206888, -0.0575762, -0.389273, -0.0606864,
  ...,
  0.421219, 0.100447, -0.506771, -0.115824, -0.693017, -0.183262, 0.154781, -0.410684, 0.0119296, 0.449713,
])
"""

# Newer runner with per-iteration lines (a RISC-V board log quoted in a test file found by code
# search; its repository is not named by the index).
ET_ITERATIONS = """\
I 00:00:05.833558 executorch:executor_runner.cpp:564] Model loaded in 4463.268273 ms.
I 00:00:06.075611 executorch:executor_runner.cpp:705] Iteration 1 of 1: 241.944288 ms
I 00:00:06.075701 executorch:executor_runner.cpp:714] Model executed successfully 1 time(s) in 241.944288 ms.
"""

# The 2023 runner printed no time (pytorch/executorch issue #1231, 2023-11-17).
ET_2023 = """\
I 00:00:00.382397 executorch:executor_runner.cpp:133] Model file ./resnet18.pte is loaded.
I 00:00:00.437405 executorch:executor_runner.cpp:219] Inputs prepared.
I 00:02:23.767346 executorch:executor_runner.cpp:228] Model executed successfully.
"""


def test_executor_runner_total_and_iterations():
    docs = EXECUTORCH.parse(ET_DOCS, model="m.pte")
    assert docs.mean_ms == pytest.approx(15.013292) and docs.runs == 1 and docs.median_ms is None
    iterations = EXECUTORCH.parse(ET_ITERATIONS, model="m.pte")
    assert iterations.median_ms == pytest.approx(241.944288) and iterations.per_call_ms == pytest.approx(241.944288)
    many = "Model executed successfully 20 time(s) in 100.0 ms."
    assert EXECUTORCH.parse(many, model="m").mean_ms == pytest.approx(5.0)


def test_executor_runner_command():
    assert EXECUTORCH.arguments("models/m.pte", runs=20, warmup=1, threads=4, input_shapes=[]) == [
        "--model_path=models/m.pte", "--num_executions=20", "--cpu_threads=4"]


def test_executor_runner_without_timing_is_refused_with_the_start_of_its_output():
    with pytest.raises(RunnerOutputError, match="Model executed successfully N time") as error:
        EXECUTORCH.parse(ET_2023, model="m.pte")
    assert "resnet18.pte is loaded" in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("runner", [ORT, TORCH, EXECUTORCH], ids=lambda r: r.name)
@pytest.mark.parametrize("garbage", ["", "Segmentation fault\n", "usage: onnxruntime_perf_test [options...] model_path\n"])
def test_garbage_is_a_one_line_user_error(runner, garbage):
    with pytest.raises(RunnerOutputError) as error:
        runner.parse(garbage, model="blk.onnx")
    assert isinstance(error.value, UserInputError) and "\n" not in str(error.value) and "blk.onnx" in str(error.value)


def test_runner_by_model_suffix():
    assert runner_for_format(".onnx") is ORT and runner_for_format(".PTL") is TORCH and runner_for_format(".pte") is EXECUTORCH
    with pytest.raises(UserInputError):
        runner_for_format(".tflite")


def test_arguments_survive_shell_quoting():
    nasty = "models/x 'y' \"z\"; touch canary.onnx"
    args = ORT.arguments(nasty, runs=1, warmup=0, threads=1, input_shapes=[(1,)])
    assert shlex.split(" ".join(shlex.quote(a) for a in args))[-1] == nasty
