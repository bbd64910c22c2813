import numpy as np
import pytest

from cars_deploy.errors import UserInputError
from cars_deploy.space import PRIMITIVES, NetworkConfig, cell_plan, random_genotype
from cars_deploy.space.edge_costs import SLOT_CELL_INPUT, SLOT_NODE, EdgeCostTable, EdgeShape, edge_shape


def test_edge_shape_strides_and_halves_only_in_reduction_cells():
    plans = cell_plan(NetworkConfig.cifar())
    normal, reduction = plans[0], plans[len(plans) // 3]
    assert edge_shape(normal, reads_cell_input=True) == EdgeShape(36, 32, 1)
    assert edge_shape(normal, reads_cell_input=False) == EdgeShape(36, 32, 1)
    assert edge_shape(reduction, reads_cell_input=True) == EdgeShape(72, 32, 2)
    assert edge_shape(reduction, reads_cell_input=False) == EdgeShape(72, 16, 1)


def test_total_is_base_plus_each_edge_entry_summed_over_cells(rng):
    network = NetworkConfig.imagenet()
    plans = cell_plan(network)

    def cost(op: str, edge: EdgeShape) -> float:
        return PRIMITIVES.index(op) + edge.side * 10 + edge.stride * 1000 + edge.C * 1e5

    table = EdgeCostTable.build(network, cost, base=7.0)
    genotypes = [random_genotype(rng) for _ in range(5)]
    expected = [
        7.0 + sum(
            cost(op, edge_shape(plan, reads_cell_input=index < 2))
            for plan in plans
            for op, index in genotype.cell(reduction=plan.reduction)
        )
        for genotype in genotypes
    ]
    np.testing.assert_allclose(table.total(np.stack([g.encode() for g in genotypes])), expected, rtol=1e-12)
    assert table.edges.shape == (2, len(PRIMITIVES), 2) and not table.edges.flags.writeable
    assert SLOT_CELL_INPUT == 0 and SLOT_NODE == 1


def test_vector_costs_weighted_per_group_and_bad_encodings_refused(rng):
    network = NetworkConfig.cifar(C=8, layers=5, input_size=16)
    table = EdgeCostTable.build(
        network, lambda op, edge: np.array([edge.side, edge.stride]), base=np.array([1, 2]), dtype=np.int64
    )
    codes = np.stack([random_genotype(rng).encode() for _ in range(3)])
    counts = table.total(codes)
    weights = np.array([[0.5, 0.0], [0.25, 4.0]])
    np.testing.assert_allclose(table.weighted(weights).total(codes), counts @ weights.T, rtol=1e-12)
    assert table.total(np.zeros((0, codes.shape[1]), dtype=np.int64)).shape == (0, 2)
    with pytest.raises(UserInputError, match="32 integers"):
        table.total(codes[:, :30])
