"""The DARTS cell search space: primitives, genotypes, child networks, counting (and the SuperNet)."""
from .counting import count_mult_adds, count_parameters
from .genotype import CONCAT, ENCODING_LENGTH, NUM_NODES, Genotype, parse_genotype, random_genotype
from .genotypes import GENOTYPES
from .networks import NETWORK_KINDS, NetworkConfig, build_network, cell_plan
from .primitives import OPS, PRIMITIVES
from .resolve import resolve_genotype
from .supernet import SuperNet

__all__ = [
    "CONCAT",
    "ENCODING_LENGTH",
    "GENOTYPES",
    "Genotype",
    "NETWORK_KINDS",
    "NUM_NODES",
    "NetworkConfig",
    "OPS",
    "PRIMITIVES",
    "SuperNet",
    "build_network",
    "cell_plan",
    "count_mult_adds",
    "count_parameters",
    "parse_genotype",
    "random_genotype",
    "resolve_genotype",
]
