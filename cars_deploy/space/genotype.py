"""``Genotype``: one architecture of the DARTS cell space, and every way it is read and written.

A genotype names a normal and a reduction cell. Each cell has ``NUM_NODES`` intermediate nodes; node
``k`` (numbered from 2, inputs 0 and 1 being the two previous cells) sums two edges, each an
``(op, input)`` pair with ``input < k``. The cell's output concatenates all intermediate nodes.

Forms, all lossless for genotypes of this space:
- the DARTS notation ``Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=range(2, 6), ...)``,
  read by walking Python's syntax tree (never evaluated) and printed back the same way;
- JSON (``to_dict`` / ``from_dict``);
- a flat integer array (``encode`` / ``decode``) of ``(input, op index)`` per edge, the form evolution
  works on.
``canonical()`` gives one representative of all genotypes that build the same network, for de-duplication.
"""
from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ..errors import GenotypeError
from .op_sets import PUBLISHED_OPS, primitive_indices
from .primitives import PRIMITIVES

__all__ = [
    "NUM_NODES",
    "EDGES_PER_CELL",
    "ENCODING_LENGTH",
    "CONCAT",
    "Edge",
    "Genotype",
    "parse_genotype",
    "random_genotype",
    "random_node",
    "genotype_from_dict",
    "read_genotype_file",
]

#: Intermediate nodes per cell, as in DARTS and CARS.
NUM_NODES = 4
#: Two edges per node.
EDGES_PER_CELL = 2 * NUM_NODES
#: Length of ``Genotype.encode()``: (input, op) for each edge of the normal then the reduction cell.
ENCODING_LENGTH = 2 * EDGES_PER_CELL * 2
#: The concatenated nodes: all intermediate ones.
CONCAT: tuple[int, ...] = tuple(range(2, 2 + NUM_NODES))
#: Longest DARTS-notation text accepted; real genotypes are about 500 characters.
MAX_TEXT_LENGTH = 20_000
#: Longest JSON text and largest genotype file read (a model card with its settings is a few kB); a
#: larger file is refused without being read whole.
MAX_FILE_BYTES = 1 << 20
#: Largest integer accepted anywhere in a genotype: inputs are 0..NUM_NODES, concat entries 2..NUM_NODES+1;
#: anything much larger (a 4,000-digit literal) is refused before it is printed or compared.
_MAX_LITERAL = 10**6

Edge = tuple[str, int]
_OP_INDEX = {name: i for i, name in enumerate(PRIMITIVES)}


@dataclass(frozen=True)
class Genotype:
    """A pair of cells; construct through ``Genotype.of`` or the readers, which validate."""

    normal: tuple[Edge, ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[Edge, ...]
    reduce_concat: tuple[int, ...]
    # How the concat lists were written (``range(2, 6)`` or ``[2, 3, 4, 5]``), kept only so that a
    # genotype prints back the way it was given; it plays no part in equality or hashing.
    concat_as_list: bool = field(default=False, compare=False)

    @classmethod
    def of(
        cls,
        *,
        normal: Iterable[Sequence[Any]],
        reduce: Iterable[Sequence[Any]],
        normal_concat: Iterable[int] = CONCAT,
        reduce_concat: Iterable[int] = CONCAT,
        concat_as_list: bool = False,
    ) -> "Genotype":
        """Builds and validates a genotype from any sequences of ``(op, input)`` pairs."""
        genotype = cls(
            normal=_edges("normal", normal),
            normal_concat=tuple(normal_concat),
            reduce=_edges("reduce", reduce),
            reduce_concat=tuple(reduce_concat),
            concat_as_list=concat_as_list,
        )
        genotype.validate()
        return genotype

    def validate(self) -> None:
        """Raises ``GenotypeError`` naming the first problem; a valid genotype builds a network.

        Two edges of one node may read the same input (the network is well defined); the random
        sampler never produces that, as in the paper.
        """
        for cell, edges, concat in (("normal", self.normal, self.normal_concat), ("reduce", self.reduce, self.reduce_concat)):
            if not edges:
                raise GenotypeError(f"{cell} cell is empty; expected {EDGES_PER_CELL} (op, input) pairs")
            if len(edges) != EDGES_PER_CELL:
                raise GenotypeError(
                    f"{cell} cell has {len(edges)} (op, input) pairs; expected {EDGES_PER_CELL} "
                    f"(2 for each of {NUM_NODES} nodes)"
                )
            for position, (op, index) in enumerate(edges):
                node = 2 + position // 2
                if op not in _OP_INDEX:
                    raise GenotypeError(f"{cell} cell, node {node}: unknown op {_short(op)}; known: {', '.join(PRIMITIVES)}")
                if not 0 <= index < node:
                    raise GenotypeError(
                        f"{cell} cell, node {node}: input {_short(index)} out of range (must be 0..{node - 1})"
                    )
            if tuple(concat) != CONCAT:
                raise GenotypeError(f"{cell}_concat is {_short(list(concat))}; this space concatenates nodes {list(CONCAT)}")

    # ----- forms -------------------------------------------------------------------------------
    def __str__(self) -> str:
        def concat(values: tuple[int, ...]) -> str:
            if self.concat_as_list:
                return "[" + ", ".join(str(v) for v in values) + "]"
            return f"range({values[0]}, {values[-1] + 1})"

        def cell(edges: tuple[Edge, ...]) -> str:
            return "[" + ", ".join(f"({op!r}, {index})" for op, index in edges) + "]"

        return (
            f"Genotype(normal={cell(self.normal)}, normal_concat={concat(self.normal_concat)}, "
            f"reduce={cell(self.reduce)}, reduce_concat={concat(self.reduce_concat)})"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"normal": [[op, input], ...], "normal_concat": [...], ...}``."""
        return {
            "normal": [[op, index] for op, index in self.normal],
            "normal_concat": list(self.normal_concat),
            "reduce": [[op, index] for op, index in self.reduce],
            "reduce_concat": list(self.reduce_concat),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def encode(self) -> np.ndarray:
        """Flat ``int64`` array ``[in_0, op_0, in_1, op_1, ...]`` over the normal then the reduction cell."""
        flat = [v for op, index in self.normal + self.reduce for v in (index, _OP_INDEX[op])]
        return np.asarray(flat, dtype=np.int64)

    @classmethod
    def decode(cls, code: Sequence[int] | np.ndarray) -> "Genotype":
        """Inverse of ``encode``; raises ``GenotypeError`` for an array that is not a valid genotype."""
        try:
            values = np.asarray(code).reshape(-1)
        except (ValueError, TypeError):
            raise GenotypeError("encoded genotype is not an array of integers") from None
        if not np.issubdtype(values.dtype, np.integer):
            raise GenotypeError(f"encoded genotype must hold integers, got {values.dtype}")
        if values.size != ENCODING_LENGTH:
            raise GenotypeError(f"encoded genotype has {values.size} integers; expected {ENCODING_LENGTH}")
        edges = []
        for index, op in values.reshape(-1, 2).tolist():
            if not 0 <= op < len(PRIMITIVES):
                raise GenotypeError(f"encoded op index {op} out of range 0..{len(PRIMITIVES) - 1}")
            edges.append((PRIMITIVES[op], int(index)))
        return cls.of(normal=edges[:EDGES_PER_CELL], reduce=edges[EDGES_PER_CELL:])

    def canonical(self) -> "Genotype":
        """The representative of every genotype that builds the same network.

        The two edges of a node are summed, so their order does not matter: they are sorted. A
        ``none`` edge contributes zeros whatever it reads, so its input is set to 0.
        """

        def cell(edges: tuple[Edge, ...]) -> tuple[Edge, ...]:
            out: list[Edge] = []
            for node in range(NUM_NODES):
                pair = [(op, 0 if op == "none" else index) for op, index in edges[2 * node : 2 * node + 2]]
                out.extend(sorted(pair, key=lambda e: (_OP_INDEX[e[0]], e[1])))
            return tuple(out)

        return Genotype(cell(self.normal), CONCAT, cell(self.reduce), CONCAT)

    def cell(self, *, reduction: bool) -> tuple[Edge, ...]:
        """The edges of the reduction cell if ``reduction`` else of the normal cell."""
        return self.reduce if reduction else self.normal


def _edges(cell: str, edges: Iterable[Sequence[Any]]) -> tuple[Edge, ...]:
    out: list[Edge] = []
    for position, edge in enumerate(edges):
        node = 2 + position // 2
        if position >= EDGES_PER_CELL:
            raise GenotypeError(f"{cell} cell has more than {EDGES_PER_CELL} (op, input) pairs")
        if not isinstance(edge, (list, tuple, np.ndarray)) or len(edge) != 2:
            raise GenotypeError(f"{cell} cell, node {node}: each edge must be an (op, input) pair, got {_short(edge)}")
        op, index = edge
        if not isinstance(op, str):
            raise GenotypeError(f"{cell} cell, node {node}: op must be a string, got {_short(op)}")
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise GenotypeError(f"{cell} cell, node {node}: input must be an integer, got {_short(index)}")
        out.append((op, int(index)))
    return tuple(out)


def _short(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, so that an error stays one short line."""
    text = repr(value) if not isinstance(value, int) or abs(value) < _MAX_LITERAL else "a huge integer"
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ----- readers ---------------------------------------------------------------------------------
def genotype_from_dict(data: Any) -> Genotype:
    """Reads the JSON form; also accepts ``{"genotype": "<DARTS notation>"}`` as written in model cards."""
    if isinstance(data, dict) and isinstance(data.get("genotype"), (str, dict)):
        inner = data["genotype"]
        return parse_genotype(inner) if isinstance(inner, str) else genotype_from_dict(inner)
    if not isinstance(data, dict):
        raise GenotypeError(f"a JSON genotype must be an object, got {type(data).__name__}")
    missing = [key for key in ("normal", "reduce") if key not in data]
    if missing:
        raise GenotypeError(f"JSON genotype lacks {', '.join(missing)}")
    for key in ("normal", "reduce"):
        if not isinstance(data[key], list):
            raise GenotypeError(f"JSON genotype: {key} must be a list of [op, input] pairs")
    return Genotype.of(
        normal=data["normal"],
        reduce=data["reduce"],
        normal_concat=_json_concat(data, "normal_concat"),
        reduce_concat=_json_concat(data, "reduce_concat"),
    )


def _json_concat(data: dict[str, Any], key: str) -> tuple[int, ...]:
    value = data.get(key, list(CONCAT))
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise GenotypeError(f"JSON genotype: {key} must be a list of integers")
    if len(value) > NUM_NODES or any(abs(v) > _MAX_LITERAL for v in value):
        raise GenotypeError(f"JSON genotype: {key} must list the {NUM_NODES} nodes {list(CONCAT)}")
    return tuple(value)


def parse_genotype(text: str) -> Genotype:
    """Reads the DARTS notation (``Genotype(normal=[...], ...)``) or its JSON form, never evaluating it.

    The text is parsed into a Python syntax tree and only literal strings, integers, lists, tuples,
    ``range(a, b)`` and the keyword call ``Genotype(...)`` are accepted; anything else (a name, an
    attribute, another call such as ``__import__('os')``) is a ``GenotypeError``.
    """
    if not isinstance(text, str):
        raise GenotypeError(f"a genotype must be text, got {type(text).__name__}")
    text = text.strip()
    if not text:
        raise GenotypeError("empty genotype")
    if text.startswith("{"):
        if len(text) > MAX_FILE_BYTES:
            raise GenotypeError(f"JSON genotype is {len(text)} characters; at most {MAX_FILE_BYTES} accepted")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise GenotypeError(f"malformed JSON genotype: {exc.msg} at character {exc.pos}") from None
        except (ValueError, RecursionError, MemoryError) as exc:
            # ValueError: an integer beyond Python's digit limit; RecursionError: arrays nested thousands deep.
            reason = "nested too deeply" if isinstance(exc, RecursionError) else "a number too large"
            raise GenotypeError(f"malformed JSON genotype: {reason}") from None
        try:
            return genotype_from_dict(data)
        except RecursionError:
            raise GenotypeError("malformed JSON genotype: nested too deeply") from None
    if len(text) > MAX_TEXT_LENGTH:
        raise GenotypeError(f"genotype text is {len(text)} characters; at most {MAX_TEXT_LENGTH} accepted")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise GenotypeError(f"malformed genotype (syntax error at character {exc.offset}): {text[:60]!r}") from None
    except (RecursionError, MemoryError):
        raise GenotypeError("malformed genotype: nested too deeply") from None
    except ValueError:  # null bytes, an integer literal beyond Python's digit limit
        raise GenotypeError("malformed genotype: not DARTS notation (null bytes or a number too large)") from None
    try:
        return _from_tree(tree)
    except RecursionError:
        raise GenotypeError("malformed genotype: nested too deeply") from None


def _from_tree(tree: ast.Expression) -> Genotype:
    """The genotype of a parsed ``Genotype(...)`` expression (see ``parse_genotype``)."""
    call = tree.body
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "Genotype"):
        raise GenotypeError("a genotype must be written Genotype(normal=[...], normal_concat=..., reduce=[...], reduce_concat=...)")
    if call.args:
        raise GenotypeError("Genotype(...) takes keyword arguments only")
    fields: dict[str, Any] = {}
    for keyword in call.keywords:
        if keyword.arg not in ("normal", "normal_concat", "reduce", "reduce_concat"):
            raise GenotypeError(f"unknown Genotype field {keyword.arg!r}")
        if keyword.arg in fields:
            raise GenotypeError(f"Genotype field {keyword.arg!r} given twice")
        fields[keyword.arg] = _literal(keyword.value)
    missing = [key for key in ("normal", "reduce") if key not in fields]
    if missing:
        raise GenotypeError(f"genotype lacks {', '.join(missing)}")
    concat_as_list = False
    concats: dict[str, tuple[int, ...]] = {}
    for key in ("normal_concat", "reduce_concat"):
        value = fields.get(key, range(*(CONCAT[0], CONCAT[-1] + 1)))
        if isinstance(value, list):
            concat_as_list = True
        if not isinstance(value, (list, range)) or not all(isinstance(v, int) for v in value):
            raise GenotypeError(f"{key} must be range(a, b) or a list of integers")
        concats[key] = tuple(value)
    for key in ("normal", "reduce"):
        if not isinstance(fields[key], list):
            raise GenotypeError(f"{key} must be a list of (op, input) pairs")
    return Genotype.of(
        normal=fields["normal"],
        reduce=fields["reduce"],
        normal_concat=concats["normal_concat"],
        reduce_concat=concats["reduce_concat"],
        concat_as_list=concat_as_list,
    )


def _literal(node: ast.AST) -> Any:
    """Converts the few literal forms a genotype uses; refuses everything else."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, int)) and not isinstance(node.value, bool):
        if isinstance(node.value, int) and abs(node.value) > _MAX_LITERAL:
            raise GenotypeError(f"integer literal too large in genotype (at most {_MAX_LITERAL})")
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
        value = _literal(node.operand)
        if isinstance(value, int):
            return -value
    if isinstance(node, ast.List):
        return [_literal(element) for element in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_literal(element) for element in node.elts)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "range"
        and not node.keywords
        and len(node.args) == 2
    ):
        start, stop = (_literal(arg) for arg in node.args)
        if isinstance(start, int) and isinstance(stop, int):
            # Bounded before anything is built: range(2, 10**26) would otherwise be expanded to a tuple.
            if len(range(start, stop)) > NUM_NODES:
                raise GenotypeError(f"range({start}, {stop}) has more than the {NUM_NODES} nodes of a cell")
            return range(start, stop)
    raise GenotypeError(f"unexpected expression in genotype: {ast.unparse(node)[:60]!r}")


def random_node(
    node: int, rng: np.random.Generator, *, ops: Sequence[str] = PUBLISHED_OPS
) -> tuple[np.ndarray, np.ndarray]:
    """Node ``node`` (numbered from 2) drawn uniformly: its 2 inputs, distinct, among its predecessors,
    then an op for each edge from ``ops``, returned as ``PRIMITIVES`` indices (the encoding's op field).
    The one place a node is drawn (sampling, mutation), so that seeded searches draw the same stream."""
    inputs = rng.choice(node, size=2, replace=False)
    chosen = rng.integers(0, len(ops), size=2)
    return inputs, np.asarray(primitive_indices(ops), dtype=np.int64)[chosen]


def random_genotype(rng: np.random.Generator, *, ops: Sequence[str] = PUBLISHED_OPS) -> Genotype:
    """A uniformly random genotype: each node draws 2 distinct inputs among its predecessors and an op
    for each edge uniformly from ``ops``: by default the 7 ops of the published genotypes
    (``op_sets.PUBLISHED_OPS``); ``PRIMITIVES`` gives DARTS' 8, ``none`` included, as section 3.4 samples."""
    cells = []
    for _ in range(2):
        edges: list[Edge] = []
        for node in range(2, 2 + NUM_NODES):
            inputs, chosen = random_node(node, rng, ops=ops)
            edges.extend((PRIMITIVES[int(o)], int(i)) for o, i in zip(chosen, inputs))
        cells.append(edges)
    return Genotype.of(normal=cells[0], reduce=cells[1])


def read_genotype_file(path: Path) -> Genotype:
    """A genotype from a file holding its JSON form (or a model card) or its DARTS notation."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise GenotypeError(f"cannot read genotype file {path}: {exc.strerror}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise GenotypeError(f"genotype file {path} is larger than {MAX_FILE_BYTES} bytes; it is not a genotype")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise GenotypeError(f"genotype file {path} is not UTF-8 text (binary data?)") from None
    try:
        return parse_genotype(text)
    except GenotypeError as exc:
        raise GenotypeError(f"{path}: {exc}") from None
