"""Property-based tests of the genotype reader (issue 15): whatever text, JSON or bytes it is given, it
returns a valid genotype or raises ``GenotypeError``, never anything else, and in bounded time; every
valid genotype survives each of its forms unchanged."""
from __future__ import annotations

import json

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cars_deploy.errors import GenotypeError
from cars_deploy.space import GENOTYPES
from cars_deploy.space.genotype import Genotype, parse_genotype, random_genotype, read_genotype_file
from cars_deploy.space.primitives import PRIMITIVES

# A deadline per example is the "bounded time" of the contract: a hang or a huge allocation fails it.
BOUNDED = settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])

_PUBLISHED = [str(GENOTYPES.get(name)) for name in GENOTYPES.names()]
_FRAGMENTS = ["Genotype(", "normal=", "reduce=", "normal_concat=", "reduce_concat=", "range(", "[", "]", "(", ")",
              ", ", "'sep_conv_3x3'", "'none'", "0", "1", "-1", "9" * 30, "10**26", "__import__('os')", "{", "}",
              '"normal": ', "[[", "]]", "\0", "\\x00"]


def _outcome(text: str) -> Genotype | None:
    try:
        genotype = parse_genotype(text)
    except GenotypeError as exc:
        assert "\n" not in str(exc).strip()  # one line
        return None
    genotype.validate()
    return genotype


@BOUNDED
@given(st.text(max_size=400))
def test_arbitrary_text_is_a_genotype_or_a_genotype_error(text):
    _outcome(text)


@BOUNDED
@given(st.lists(st.sampled_from(_FRAGMENTS), max_size=60).map("".join))
def test_genotype_like_text_is_a_genotype_or_a_genotype_error(text):
    _outcome(text)


@BOUNDED
@given(st.sampled_from(_PUBLISHED), st.integers(0, 400), st.integers(0, 40), st.sampled_from(_FRAGMENTS))
def test_mutated_published_genotypes_are_a_genotype_or_a_genotype_error(text, at, cut, insert):
    _outcome(text[:at] + insert + text[at + cut:])


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=12)
    | st.sampled_from(PRIMITIVES) | st.integers(-3, 8),
    lambda children: st.lists(children, max_size=10) | st.dictionaries(
        st.sampled_from(["normal", "reduce", "normal_concat", "reduce_concat", "genotype", "x"]), children, max_size=5),
    max_leaves=60,
)


@BOUNDED
@given(_JSON)
def test_arbitrary_json_is_a_genotype_or_a_genotype_error(value):
    _outcome(json.dumps(value))


@BOUNDED
@given(st.integers(1, 20_000), st.sampled_from(["[", "{\"normal\": ["]))
def test_deeply_nested_json_is_a_genotype_error(depth, opening):
    text = opening + "[" * depth + "]" * depth + ("]}" if opening.startswith("{") else "]")
    assert _outcome(text) is None


@BOUNDED
@given(st.binary(max_size=2000))
def test_arbitrary_file_bytes_are_a_genotype_or_a_genotype_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("g") / "genotype.txt"
    path.write_bytes(data)
    try:
        read_genotype_file(path)
    except GenotypeError:
        pass


@BOUNDED
@given(st.integers(0, 2**32 - 1))
def test_valid_genotypes_round_trip_through_every_form(seed):
    genotype = random_genotype(np.random.default_rng(seed))
    assert parse_genotype(str(genotype)) == genotype
    assert parse_genotype(genotype.to_json()) == genotype
    assert Genotype.decode(genotype.encode()) == genotype
    assert parse_genotype(str(genotype.canonical())) == genotype.canonical()
