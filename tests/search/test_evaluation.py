import numpy as np
import torch
from torch import nn

from cars_deploy.search.evaluation import Evaluator, accuracy_speed
from cars_deploy.space import NetworkConfig, SuperNet, random_genotype

NET = NetworkConfig(kind="cifar", C=4, layers=3, num_classes=3, input_size=8, affine=False)


def _batches(n, size, seed):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, 3, 8, 8, generator=g), torch.randint(0, 3, (size,), generator=g)) for _ in range(n)]


def _trained(rng):
    torch.manual_seed(0)
    net = SuperNet(NET).train()
    for x, _ in _batches(4, 8, 1):  # move the shared BN statistics away from their defaults
        net(x, random_genotype(rng))
    return net


def _child_accuracy(net, genotype, val, recal):
    """Reference: the stand-alone child network, its BN statistics re-estimated by hand."""
    child = net.child_network(genotype)
    if recal:
        for m in child.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = None
        child.train()
        with torch.no_grad():
            for x, _ in recal:
                child(x)
    child.eval()
    with torch.no_grad():
        correct = sum(int((child(x).argmax(1) == y).sum()) for x, y in val)
    return correct / sum(len(y) for _, y in val)


def test_accuracy_with_bn_reestimation_equals_the_child_network_with_reestimated_statistics(rng):
    net = _trained(rng)
    val, recal = _batches(3, 10, 2), _batches(2, 6, 3)
    evaluator = Evaluator(SuperNet(NET), val_batches=val, recalibration_batches=recal, bn_recalibration=True,
                          show_progress=False)
    evaluator.load(net.state_dict())
    genotypes = [random_genotype(rng) for _ in range(4)]
    got = evaluator.accuracy(genotypes)
    expected = [_child_accuracy(net, g, val, recal) for g in genotypes]
    assert got.tolist() == expected
    # the same again: evaluation is deterministic (the speed term relies on it)
    assert evaluator.accuracy(genotypes).tolist() == expected
    stats = evaluator.stats
    assert stats.individuals == 8 and stats.images == 8 * 30 and 0 < stats.recalibration_seconds < stats.seconds


def test_without_reestimation_the_shared_statistics_are_used_and_the_trained_net_is_untouched(rng):
    net = _trained(rng)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    val = _batches(2, 10, 4)
    evaluator = Evaluator(SuperNet(NET), val_batches=val, recalibration_batches=[], bn_recalibration=False,
                          show_progress=False)
    evaluator.load(net.state_dict())
    genotype = random_genotype(rng)
    assert evaluator.accuracy([genotype])[0] == _child_accuracy(net, genotype, val, recal=None)
    assert evaluator.stats.recalibration_seconds == 0
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_accuracy_speed_is_the_change_per_epoch():
    speed = accuracy_speed(np.array([0.5, 0.8]), np.array([0.3, 0.9]), 10)
    np.testing.assert_allclose(speed, [0.02, -0.01])
