"""Property-based tests of the numeric command-line options (issue 15, item 7): every numeric option of
every console script goes through ``cli/_numbers.py``, and any value out of range, not finite or not a
number exits 2 with one stderr line and creates nothing."""
from __future__ import annotations

import argparse
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cars_deploy.cli import _numbers, export, inspect, profile, search, train
from cars_deploy.cli._numbers import FloatRange, IntRange

# Enough arguments for each command to get past its required ones to the option under test.
BASE = {
    "cars-train": (train._parser, ["CARS_H", "--out", "out"]),
    "cars-search": (search._parser, ["--out", "run"]),
    "cars-profile": (profile._parser, ["--device", "local", "--out", "t"]),
    "cars-export": (export._parser, ["CARS_H", "--out", "exp"]),
    "cars-inspect": (inspect._parser, ["--genotype", "CARS_H"]),
}


def _numeric_options() -> list[tuple[str, str, IntRange | FloatRange]]:
    found = []
    for prog, (make, _) in BASE.items():
        for action in make()._actions:
            if isinstance(action.type, (IntRange, FloatRange)):
                found.append((prog, action.option_strings[0], action.type))
    return found


OPTIONS = _numeric_options()


def test_no_numeric_option_bypasses_the_validation_layer():
    """Plain ``type=int`` / ``type=float`` would let NaN, infinities and absurd sizes through."""
    for prog, (make, _) in BASE.items():
        for action in make()._actions:
            assert action.type not in (int, float), f"{prog} {action.option_strings} uses type={action.type.__name__}"
    flags = {(prog, flag) for prog, flag, _ in OPTIONS}
    for needed in [("cars-train", "--lr"), ("cars-train", "--weight-decay"), ("cars-train", "--seed"),
                   ("cars-train", "--C"), ("cars-train", "--layers"), ("cars-train", "--input-size"),
                   ("cars-export", "--num-classes"), ("cars-profile", "--read-timeout"), ("cars-search", "--expand")]:
        assert needed in flags


def _bad_value(kind: IntRange | FloatRange) -> st.SearchStrategy[str]:
    # ("--" is left out: argparse itself drops it from "--flag=--" and never calls the type.)
    junk = st.sampled_from(["", " ", "abc", "1e", "0x10", "1,5", "nan", "inf", "-inf", "1" * 5000])
    if isinstance(kind, IntRange):
        out = st.integers(max_value=kind.low - 1) | st.integers(min_value=kind.high + 1)
        return out.map(str) | st.floats(allow_nan=True).map(repr) | junk
    below = st.floats(max_value=kind.low, exclude_max=not kind.low_open, allow_nan=False)
    above = st.floats(min_value=kind.high, exclude_min=not kind.high_open, allow_nan=False)
    return (below | above).map(repr) | st.sampled_from(["nan", "NaN", "inf", "-inf", "Infinity", "1e999"]) | junk


@pytest.mark.parametrize("prog, flag, kind", OPTIONS, ids=[f"{p} {f}" for p, f, _ in OPTIONS])
@settings(max_examples=25, deadline=5000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_out_of_range_values_exit_2_in_one_line_and_create_nothing(prog, flag, kind, data, run_cli):
    value = data.draw(_bad_value(kind))
    argv = [*BASE[prog][1], f"{flag}={value}"]
    run_cli(prog, argv).assert_refused(prog, 2, flag)


@settings(max_examples=200, deadline=1000)
@given(st.integers(-(2**70), 2**70), st.integers(0, 2**40), st.integers(0, 2**40))
def test_int_range_accepts_exactly_its_interval(value, low, width):
    kind = IntRange(low, low + width)
    if low <= value <= low + width:
        assert kind(str(value)) == value
    else:
        with pytest.raises(argparse.ArgumentTypeError):
            kind(str(value))


@settings(max_examples=200, deadline=1000)
@given(st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.booleans())
def test_float_range_accepts_only_finite_values_inside(value, low_open, high_open):
    kind = FloatRange(0.0, 1.0, low_open, high_open)
    inside = math.isfinite(value) and (0.0 < value if low_open else 0.0 <= value) and (
        value < 1.0 if high_open else value <= 1.0)
    if inside:
        assert kind(repr(value)) == value
    else:
        with pytest.raises(argparse.ArgumentTypeError):
            kind(repr(value))


def test_seed_bound_is_numpy_and_torch_seed_range():
    assert _numbers.SEED(str(2**32 - 1)) == 2**32 - 1
    with pytest.raises(argparse.ArgumentTypeError):
        _numbers.SEED(str(2**32))
