"""The host table built on first use by ``--latency-table local``: one process builds it, another that
asks meanwhile is refused at once (exit 2, naming the builder) and makes nothing."""
from __future__ import annotations

import signal

import pytest

from cars_deploy.errors import UserInputError
from cars_deploy.latency.host import HostTableConfig, ensure_host_table
from cars_deploy.latency.predictor import network_id
from cars_deploy.space import NetworkConfig
from tests.lock_holder import start_holder


def test_a_second_first_use_is_refused_while_the_host_table_is_being_built(tmp_path):
    network = NetworkConfig(kind="cifar", C=4, layers=3, input_size=8)
    tables = tmp_path / "tables"
    base = tables / f"host-{network_id(network)}-ort1"
    holder = start_holder("table", base)  # the first search, profiling
    try:
        with pytest.raises(UserInputError, match=f"latency table {base}.csv is in use by process {holder.pid}"):
            ensure_host_table(network, HostTableConfig(tables_dir=tables, cache_dir=tmp_path / "cache"), show_progress=False)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert not tables.exists() and not (tmp_path / "cache").exists()
