import pytest

from experiments import cars_vs_random, ranking_fidelity, small_model_trap


@pytest.mark.parametrize(
    "module, argv, needle",
    [
        (small_model_trap, ["--threads", "0"], "--threads must be at least 1"),
        (small_model_trap, ["--search-generations", "0"], "--search-generations"),
        (small_model_trap, ["--search-deploy-network", "phone"], "invalid choice"),
        (cars_vs_random, ["--k", "0"], "--k must be at least 1"),
        (cars_vs_random, ["--train-epochs", "0"], "--train-epochs must be at least 1"),
        (ranking_fidelity, ["--n", "2"], "--n must be at least 3"),
        (ranking_fidelity, ["--source", "everything"], "invalid choice"),
    ],
)
def test_bad_flags_are_one_line_errors_that_leave_nothing(module, argv, needle, tmp_path, capsys):
    out = tmp_path / "results"
    try:
        status = module.main([*argv, "--data-root", str(tmp_path / "missing"), "--out", str(out)])
    except SystemExit as exit:  # argparse's own usage errors
        status = exit.code
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and "Traceback" not in err[0], err
    assert not out.exists()


def test_missing_data_is_a_one_line_error(tmp_path, capsys):
    assert small_model_trap.main(["--data-root", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "must hold train/<class>/ and test/<class>/" in err[0]
    assert not (tmp_path / "r").exists()
