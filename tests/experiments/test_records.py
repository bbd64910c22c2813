import json

import pandas as pd
import pytest

from cars_deploy.errors import UserInputError
from experiments.records import ResultsDir


def test_results_dir_appends_atomically_and_refuses_other_settings(tmp_path):
    results = ResultsDir(tmp_path / "r", {"k": 3, "scale": {"C": 8}})
    results.append("models.jsonl", {"model": "a", "accuracy": float("nan")})
    results.append("models.jsonl", {"model": "b", "accuracy": 0.5})
    assert results.read_jsonl("models.jsonl") == [{"model": "a", "accuracy": None}, {"model": "b", "accuracy": 0.5}]
    results.write_csv("t.csv", pd.DataFrame({"x": [1 / 3]}), digits=3)
    assert (tmp_path / "r" / "t.csv").read_text() == "x\n0.333\n"
    results.add_seconds("search", 1.25)
    results.add_seconds("search", 2.0)
    assert json.loads((tmp_path / "r" / "timing.json").read_text()) == {"search": 3.2}
    assert not [p for p in (tmp_path / "r").iterdir() if p.name.startswith(".")]  # no temporary files left
    ResultsDir(tmp_path / "r", {"k": 3, "scale": {"C": 8}})  # the same settings reopen it
    with pytest.raises(UserInputError, match=r"other settings \(k: 3 -> 4\)"):
        ResultsDir(tmp_path / "r", {"k": 4, "scale": {"C": 8}})
    (tmp_path / "r" / "models.jsonl").write_text('{"model": "a"}\nnot json\n')
    with pytest.raises(UserInputError, match="not JSON"):
        results.read_jsonl("models.jsonl")
