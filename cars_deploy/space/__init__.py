"""The DARTS cell search space: primitives, genotypes, child networks, counting (and the SuperNet)."""
from .counting import count_mult_adds, count_parameters
from .genotype import CONCAT, ENCODING_LENGTH, NUM_NODES, Genotype, parse_genotype, random_genotype
from .genotypes import GENOTYPES
from .networks import NETWORK_KINDS, NetworkConfig, build_network, cell_plan
from .op_sets import DEFAULT_OP_SET, OP_SETS, PUBLISHED_OPS, op_set
from .primitives import OPS, PRIMITIVES
from .resolve import resolve_genotype
from .supernet import SuperNet

__all__ = [
    "CONCAT",
    "DEFAULT_OP_SET",
    "ENCODING_LENGTH",
    "GENOTYPES",
    "Genotype",
    "NETWORK_KINDS",
    "NUM_NODES",
    "NetworkConfig",
    "OPS",
    "OP_SETS",
    "PRIMITIVES",
    "PUBLISHED_OPS",
    "SuperNet",
    "build_network",
    "cell_plan",
    "count_mult_adds",
    "count_parameters",
    "op_set",
    "parse_genotype",
    "random_genotype",
    "resolve_genotype",
]
