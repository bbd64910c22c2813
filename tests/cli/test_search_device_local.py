from cars_deploy.cli.search import _apply_local_device, _parser, main


def _args(*argv):
    return _parser().parse_args(list(argv))


def test_device_local_selects_the_host_table_for_a_latency_search():
    args = _args("--objective", "latency", "--device", "local", "--out", "run")
    notice = _apply_local_device(args)
    assert args.device == "auto" and args.latency_table == "local"
    assert "deprecated" in notice and "--latency-table local" in notice


def test_device_local_keeps_an_explicit_table_and_other_objectives():
    args = _args("--objective", "latency", "--device", "local", "--latency-table", "t.csv", "--out", "run")
    _apply_local_device(args)
    assert args.latency_table == "t.csv"
    args = _args("--objective", "params", "--device", "local", "--out", "run")
    _apply_local_device(args)
    assert args.device == "auto" and args.latency_table is None


def test_other_devices_are_untouched():
    args = _args("--objective", "latency", "--device", "cpu", "--out", "run")
    assert _apply_local_device(args) is None
    assert args.device == "cpu" and args.latency_table is None


def test_device_local_prints_one_deprecation_line(tmp_path, capsys):
    assert main(["--device", "local", "--resume", str(tmp_path / "missing")]) == 2
    notice, error = capsys.readouterr().err.splitlines()
    assert notice == ("cars-search: --device local is deprecated; use --latency-table local (--device is the torch "
                      "device of the search)")
    assert "not a search run" in error
