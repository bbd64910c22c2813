import json

import numpy as np
import pytest

from cars_deploy.errors import GenotypeError, UserInputError
from cars_deploy.space import (
    DEFAULT_OP_SET,
    ENCODING_LENGTH,
    GENOTYPES,
    OP_SETS,
    PRIMITIVES,
    PUBLISHED_OPS,
    Genotype,
    op_set,
    parse_genotype,
    random_genotype,
)
from cars_deploy.space.genotype import genotype_from_dict
from cars_deploy.space.genotypes import PUBLISHED
from cars_deploy.space.resolve import resolve_genotype


def test_all_published_genotypes_are_registered():
    expected = {"DARTS_V1", "DARTS_V2"} | {f"CARS_{c}" for c in "ABCDEFGHI"} | {f"CARS_Lat_{c}" for c in "ABCDEFG"}
    assert set(GENOTYPES.names()) == expected


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_published_prints_back_as_written(name):
    assert "".join(str(GENOTYPES.get(name)).split()) == "".join(PUBLISHED[name].split())


def test_print_parse_is_identity_for_published_and_random(rng):
    genotypes = [GENOTYPES.get(n) for n in GENOTYPES] + [random_genotype(rng) for _ in range(1000)]
    for genotype in genotypes:
        assert parse_genotype(str(genotype)) == genotype
        assert genotype_from_dict(json.loads(genotype.to_json())) == genotype
        assert Genotype.decode(genotype.encode()) == genotype


def test_encoding_is_flat_integers():
    code = GENOTYPES.get("DARTS_V2").encode()
    assert code.shape == (ENCODING_LENGTH,) and code.dtype == np.int64
    assert code[:4].tolist() == [0, 4, 1, 4]  # ('sep_conv_3x3', 0), ('sep_conv_3x3', 1)


@pytest.mark.parametrize("op_set_name", sorted(OP_SETS))
def test_random_sampling_is_seeded_uniform_over_its_op_set_and_uses_distinct_inputs(op_set_name):
    ops_allowed = op_set(op_set_name)
    a = [random_genotype(np.random.default_rng(7), ops=ops_allowed) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    rng = np.random.default_rng(1)
    ops = []
    for _ in range(500):
        g = random_genotype(rng, ops=ops_allowed)
        for edges in (g.normal, g.reduce):
            for node in range(4):
                (op1, i1), (op2, i2) = edges[2 * node : 2 * node + 2]
                assert i1 != i2 and max(i1, i2) < node + 2
                ops += [op1, op2]
    names, counts = np.unique(ops, return_counts=True)
    assert sorted(names) == sorted(ops_allowed)
    expected = len(ops) / len(ops_allowed)
    assert np.all(np.abs(counts - expected) < 4 * np.sqrt(expected))  # ~4 sigma


def test_the_default_space_is_that_of_the_published_genotypes():
    published_ops = {op for name in GENOTYPES.names() for g in [GENOTYPES.get(name)] for op, _ in g.normal + g.reduce}
    assert "none" not in published_ops and published_ops <= set(PUBLISHED_OPS)
    assert op_set(DEFAULT_OP_SET) == PUBLISHED_OPS == tuple(op for op in PRIMITIVES if op != "none")
    rng = np.random.default_rng(0)
    assert all("none" not in [op for op, _ in g.normal + g.reduce] for g in (random_genotype(rng) for _ in range(200)))
    with pytest.raises(UserInputError, match="unknown op set 'tiny'; expected one of published, darts"):
        op_set("tiny")


def test_canonical_form_identifies_equivalent_genotypes():
    g = GENOTYPES.get("CARS_A")
    swapped = list(g.normal)
    swapped[0], swapped[1] = swapped[1], swapped[0]
    h = Genotype.of(normal=swapped, reduce=g.reduce)
    assert h != g and h.canonical() == g.canonical()
    none_a = Genotype.of(normal=[("none", 1)] + list(g.normal[1:]), reduce=g.reduce)
    none_b = Genotype.of(normal=[("none", 0)] + list(g.normal[1:]), reduce=g.reduce)
    assert none_a.canonical() == none_b.canonical()
    assert g.canonical() != GENOTYPES.get("CARS_B").canonical()


def test_resolve_accepts_names_strings_json_files_and_csv_rows(tmp_path):
    g = GENOTYPES.get("CARS_H")
    assert resolve_genotype("CARS_H") == g
    assert resolve_genotype(str(g)) == g
    assert resolve_genotype(g.to_json()) == g
    (tmp_path / "g.json").write_text(g.to_json())
    assert resolve_genotype(str(tmp_path / "g.json")) == g
    (tmp_path / "pareto.csv").write_text(f'genotype,accuracy\n"{GENOTYPES.get("CARS_A")}",0.5\n"{g}",0.6\n')
    assert resolve_genotype(f"{tmp_path}/pareto.csv:1") == g
    with pytest.raises(GenotypeError, match="row 2 does not exist"):
        resolve_genotype(f"{tmp_path}/pareto.csv:2")


MALFORMED = {
    "unknown op": "Genotype(normal=[('conv_9x9', 0), ('skip_connect', 1)] + [('skip_connect', 0)] * 6)",
    "unknown op in list": str(GENOTYPES.get("DARTS_V2")).replace("'dil_conv_3x3'", "'dil_conv_9x9'"),
    "index out of range": str(GENOTYPES.get("DARTS_V2")).replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', 5)"),
    "negative index": str(GENOTYPES.get("DARTS_V2")).replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', -1)"),
    "3 entries for a node": str(GENOTYPES.get("DARTS_V2")).replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', 2, 1)"),
    "9 edges": str(GENOTYPES.get("DARTS_V2")).replace("('dil_conv_3x3', 2)]", "('dil_conv_3x3', 2), ('skip_connect', 0)]"),
    "empty cell": "Genotype(normal=[], normal_concat=range(2, 6), reduce=[], reduce_concat=range(2, 6))",
    "truncated": str(GENOTYPES.get("DARTS_V2"))[:120],
    "code injection": "__import__('os').system('echo pwned')",
    "injection inside": "Genotype(normal=__import__('os').listdir('.'), reduce=[])",
    "wrong concat": str(GENOTYPES.get("DARTS_V2")).replace("normal_concat=range(2, 6)", "normal_concat=range(2, 4)"),
    "not a genotype call": "dict(normal=[], reduce=[])",
    "bad json": '{"normal": [["skip_connect", 0]',
    "string index": str(GENOTYPES.get("DARTS_V2")).replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', '2')"),
}


@pytest.mark.parametrize("text", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_genotypes_raise_genotype_error(text):
    with pytest.raises(GenotypeError):
        parse_genotype(text)


def test_decode_refuses_invalid_arrays():
    code = GENOTYPES.get("DARTS_V2").encode()
    code[1] = 99
    with pytest.raises(GenotypeError, match="op index"):
        Genotype.decode(code)
    with pytest.raises(GenotypeError, match="integers"):
        Genotype.decode(code[:-2])
