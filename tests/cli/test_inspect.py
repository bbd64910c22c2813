import json
import shutil
import subprocess
import sys

import pytest

from cars_deploy.cli.inspect import main
from tests.space.test_genotype import MALFORMED


def test_json_report_of_a_published_genotype(capsys):
    assert main(["--genotype", "DARTS_V2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["params"] == 3_349_342 and report["mult_adds"] > 0 and report["name"] == "DARTS_V2"


def test_table_of_every_published_genotype_on_a_small_network(capsys):
    assert main(["--all", "--network", "imagenet", "--C", "8", "--layers", "5", "--input-size", "64"]) == 0
    out = capsys.readouterr().out
    assert "CARS_Lat_G" in out and "DARTS_V1" in out


@pytest.mark.parametrize("text", list(MALFORMED.values()) + ["NOT_A_NAME", "missing/file.json", "runs/x/pareto.csv:3"],
                         ids=list(MALFORMED) + ["unknown name", "missing file", "missing csv"])
def test_malformed_genotype_exits_2_with_one_line(text, capsys):
    assert main(["--genotype", text]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("cars-inspect: error:") and "Traceback" not in err


def test_malformed_json_file(tmp_path, capsys):
    path = tmp_path / "g.json"
    path.write_text('{"normal": [["sep_conv_3x3", 0]], "reduce": 5}')
    assert main(["--genotype", str(path)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_bad_sizes_and_usage_errors_are_one_line(capsys):
    assert main(["--genotype", "CARS_A", "--network", "imagenet", "--input-size", "100"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    with pytest.raises(SystemExit) as exit_info:
        main(["--genotype", "CARS_A", "--network", "phone"])
    assert exit_info.value.code == 2 and capsys.readouterr().err.count("\n") == 1


def test_console_script_end_to_end():
    script = shutil.which("cars-inspect") or shutil.which("cars-inspect", path=str(__import__("pathlib").Path(sys.executable).parent))
    assert script, "cars-inspect is not installed next to this interpreter"
    bad = subprocess.run([script, "--genotype", "__import__('os').system('touch pwned')"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    good = subprocess.run([script, "-g", "CARS_Lat_B", "--json"], capture_output=True, text=True)
    assert good.returncode == 0 and json.loads(good.stdout)["params"] > 0
