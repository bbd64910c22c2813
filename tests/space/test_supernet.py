import pytest
import torch
from torch import nn

from cars_deploy.space import GENOTYPES, Genotype, NetworkConfig, SuperNet, build_network, random_genotype
from cars_deploy.space.supernet import edge_key, search_config

CONFIG = NetworkConfig(kind="cifar", C=6, layers=4, num_classes=5, input_size=16, affine=False)

# Normal and reduction cells that differ in every way: if a forward swapped them the output would change.
CONV_NORMAL = Genotype.of(
    normal=[("sep_conv_3x3", 0), ("dil_conv_5x5", 1), ("sep_conv_5x5", 2), ("skip_connect", 0),
            ("dil_conv_3x3", 3), ("avg_pool_3x3", 1), ("sep_conv_3x3", 4), ("none", 2)],
    reduce=[("max_pool_3x3", 0), ("skip_connect", 1), ("avg_pool_3x3", 2), ("max_pool_3x3", 1),
            ("none", 0), ("none", 1), ("skip_connect", 4), ("max_pool_3x3", 0)],
)


def _swapped(genotype: Genotype) -> Genotype:
    return Genotype.of(normal=genotype.reduce, reduce=genotype.normal)


def _trained_supernet(genotypes, seed=0) -> SuperNet:
    """A SuperNet whose shared weights and BN statistics have moved away from their initial values."""
    torch.manual_seed(seed)
    net = SuperNet(CONFIG).train()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    for _ in range(3):
        for genotype in genotypes:
            x, y = torch.randn(8, 3, 16, 16), torch.randint(0, 5, (8,))
            optimizer.zero_grad()
            nn.functional.cross_entropy(net(x, genotype), y).backward()
            optimizer.step()
    return net


def _genotypes(rng):
    return [CONV_NORMAL, GENOTYPES.get("CARS_H"), GENOTYPES.get("DARTS_V2"), *(random_genotype(rng) for _ in range(3))]


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_output_equals_standalone_child_with_copied_path_weights(rng, mode):
    genotypes = _genotypes(rng)
    net = _trained_supernet(genotypes)
    x = torch.randn(4, 3, 16, 16)
    for genotype in genotypes:
        net.train(mode == "train")
        child = build_network(genotype, CONFIG)  # the stand-alone network, then the path weights copied in
        child.load_state_dict(net.path_state_dict(genotype), strict=True)
        child.train(mode == "train")
        with torch.no_grad():
            expected = child(x)
            got = net(x, genotype)
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


def test_reduction_cell_reads_the_reduce_genotype_not_the_normal_one():
    net = _trained_supernet([CONV_NORMAL, _swapped(CONV_NORMAL)]).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        right = net.child_network(CONV_NORMAL).eval()(x)
        got = net(x, CONV_NORMAL)
        swapped = net(x, _swapped(CONV_NORMAL))
    torch.testing.assert_close(got, right, rtol=0, atol=1e-6)
    assert (swapped - right).abs().max() > 1e-3  # the test would notice a swap


def test_only_the_path_runs_and_none_edges_compute_nothing(rng):
    net = SuperNet(CONFIG).eval()
    called: list[nn.Module] = []
    ops = [op for cell in net.cells for edge in cell.edges.values() for op in edge.values()]
    for op in ops:
        op.register_forward_hook(lambda module, args, out: called.append(module))
    for genotype in [CONV_NORMAL, random_genotype(rng)]:
        called.clear()
        with torch.no_grad():
            net(torch.randn(1, 3, 16, 16), genotype)
        expected = []
        for cell in net.cells:
            for position, (op, index) in enumerate(genotype.cell(reduction=cell.reduction)):
                if op != "none":
                    expected.append(cell.edges[edge_key(2 + position // 2, index)][op])
        assert sorted(map(id, called)) == sorted(map(id, expected))
        assert len(called) == sum(op != "none" for cell in net.cells for op, _ in genotype.cell(reduction=cell.reduction))


def test_gradients_reach_exactly_the_path(rng):
    net = SuperNet(CONFIG).train()
    genotype = random_genotype(rng)
    net(torch.randn(2, 3, 16, 16), genotype).sum().backward()
    path = {id(p) for module in net.path_modules(genotype) for p in module.parameters()}
    with_grad = {id(p) for p in net.parameters() if p.grad is not None}
    assert with_grad <= path
    ops_path = {id(p) for cell in net.cells for position, (op, index) in enumerate(genotype.cell(reduction=cell.reduction))
                if op != "none" for p in cell.edges[edge_key(2 + position // 2, index)][op].parameters()}
    assert ops_path <= with_grad


def test_all_none_nodes_give_zeros_of_the_node_shape():
    nothing = [("none", 0), ("none", 1)] * 4
    genotype = Genotype.of(normal=nothing, reduce=nothing)
    net = SuperNet(CONFIG).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(net(x, genotype), net.child_network(genotype).eval()(x), rtol=0, atol=0)


def test_search_config_is_the_darts_search_setting_and_imagenet_is_refused():
    config = search_config()
    assert (config.C, config.layers, config.input_size, config.affine) == (16, 8, 32, False)
    net = SuperNet(config)
    assert [i for i, cell in enumerate(net.cells) if cell.reduction] == [2, 5]
    assert net.stem[0].out_channels == 48
    assert not any(m.affine for m in net.cells.modules() if isinstance(m, nn.BatchNorm2d))
    with pytest.raises(ValueError, match="cifar"):
        SuperNet(NetworkConfig.imagenet(C=8, layers=5))
