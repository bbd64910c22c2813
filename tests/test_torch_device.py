"""The CPU memory layout (``torch_device.memory_format_for``): channels_last where oneDNN runs, and a
network in it computes what the same network computes in the default layout."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from cars_deploy.space import GENOTYPES, NetworkConfig, SuperNet, build_network, random_genotype
from cars_deploy.torch_device import images_to, memory_format_for, module_to

CPU = torch.device("cpu")
CONFIG = NetworkConfig(kind="cifar", C=6, layers=4, num_classes=5, input_size=16, affine=False)
needs_onednn = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="PyTorch without oneDNN")


@needs_onednn
def test_cpu_batches_and_weights_move_to_channels_last_with_their_values():
    assert memory_format_for(CPU) == torch.channels_last
    images = torch.randn(3, 3, 8, 8)
    moved = images_to(images, CPU)
    assert moved.is_contiguous(memory_format=torch.channels_last) and not images.is_contiguous(
        memory_format=torch.channels_last
    )
    torch.testing.assert_close(moved, images, rtol=0, atol=0)
    vectors = torch.randn(3, 5)  # not an image batch: moves as it is
    assert images_to(vectors, CPU).is_contiguous()

    network = module_to(build_network(GENOTYPES.get("DARTS_V2"), NetworkConfig.cifar(C=4, layers=3)), CPU)
    conv = next(m for m in network.modules() if isinstance(m, nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_a_supernet_trained_in_the_device_layout_matches_its_default_layout_child(rng):
    """Training steps and a forward in the CPU layout against the stand-alone child network in NCHW
    with the path weights copied in: a layout-dependent reshape anywhere would break the equality."""
    genotypes = [GENOTYPES.get("CARS_H"), GENOTYPES.get("DARTS_V2"), *(random_genotype(rng) for _ in range(3))]
    torch.manual_seed(0)
    net = module_to(SuperNet(CONFIG), CPU).train()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    for genotype in genotypes * 2:
        x, y = torch.randn(8, 3, 16, 16), torch.randint(0, 5, (8,))
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(images_to(x, CPU), genotype), y).backward()
        optimizer.step()
    net.eval()
    x = torch.randn(4, 3, 16, 16)
    for genotype in genotypes:
        child = build_network(genotype, CONFIG).eval()
        child.load_state_dict(net.path_state_dict(genotype), strict=True)
        assert next(child.parameters()).is_contiguous()
        with torch.no_grad():
            torch.testing.assert_close(net(images_to(x, CPU), genotype), child(x), rtol=1e-4, atol=1e-5)
