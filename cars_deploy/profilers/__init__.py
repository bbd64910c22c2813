"""On-device latency profiling: the blocks of the search space, timed on a device, in a latency table.

- ``blocks``: every distinct block a genotype's network can contain (``network_blocks``), the blocks
  of one genotype (``genotype_blocks``) and their vectorised form for whole populations (``block_index``);
- ``export_blocks``: each block alone as ONNX (opset 17) or TorchScript Lite, cached by key;
- ``device`` / ``local`` / ``adb``: the ``Device`` protocol, the host CPU and Android phones over ADB
  (``adb_transport``: key, connection and reconnects; ``adb_scripts``: the shell commands sent);
  ``devices``: the registry of device kinds and ``open_device``;
- ``runners``: command lines and output parsers of ``onnxruntime_perf_test``, ``speed_benchmark_torch``
  and ``executor_runner``;
- ``protocol``: warm-up, interleaved rounds, low percentile, per-call overhead subtracted;
- ``table``: ``LatencyTable`` (CSV + JSON sidecar); ``builder``: the ``cars-profile`` driver.
"""
from .blocks import BlockIndex, BlockKey, block_index, genotype_blocks, network_blocks
from .builder import ProfileConfig, build_table, time_model, time_models
from .device import DeviceOptions, parse_device_spec
from .devices import open_device
from .protocol import Measurement, ProtocolConfig, SampleStore, aggregate, measure
from .table import LatencyTable, MissingBlockError, TableError

__all__ = [
    "BlockIndex",
    "BlockKey",
    "DeviceOptions",
    "LatencyTable",
    "Measurement",
    "MissingBlockError",
    "ProfileConfig",
    "ProtocolConfig",
    "SampleStore",
    "TableError",
    "aggregate",
    "block_index",
    "build_table",
    "genotype_blocks",
    "measure",
    "network_blocks",
    "open_device",
    "parse_device_spec",
    "time_model",
    "time_models",
]
