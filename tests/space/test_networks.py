import pytest
import torch

from cars_deploy.errors import UserInputError
from cars_deploy.space import (
    GENOTYPES,
    NetworkConfig,
    build_network,
    count_mult_adds,
    count_parameters,
    random_genotype,
)

# Paper Table 1 (CIFAR-10, M params) and Table 2 (ImageNet mobile, M params / M mult-adds).
TABLE1 = dict(A=2.4, B=2.7, C=2.8, D=2.9, E=3.0, F=3.1, G=3.2, H=3.3, I=3.6)
TABLE2 = dict(A=(3.7, 430), B=(4.0, 463), C=(4.2, 480), D=(4.3, 496), E=(4.4, 510), F=(4.5, 530), G=(4.7, 537),
              H=(4.8, 559), I=(5.1, 591))


def test_darts_cifar_parameter_counts_are_exact():
    assert count_parameters(build_network(GENOTYPES.get("DARTS_V2"), NetworkConfig.cifar(auxiliary=True))) == 3_349_342
    assert count_parameters(build_network(GENOTYPES.get("DARTS_V1"), NetworkConfig.cifar(auxiliary=True))) == 3_169_414


@pytest.mark.parametrize("letter", TABLE1)
def test_cars_cifar_params_match_table1(letter):
    network = build_network(GENOTYPES.get(f"CARS_{letter}"), NetworkConfig.cifar())
    assert round(count_parameters(network) / 1e6, 1) == TABLE1[letter]


@pytest.mark.parametrize("letter", TABLE2)
def test_cars_imagenet_params_and_mult_adds_match_table2(letter):
    network = build_network(GENOTYPES.get(f"CARS_{letter}"), NetworkConfig.imagenet())
    params, mult_adds = TABLE2[letter]
    assert round(count_parameters(network) / 1e6, 1) == params
    assert abs(count_mult_adds(network, input_size=224) / 1e6 - mult_adds) / mult_adds < 0.08


def test_auxiliary_head_is_not_counted():
    genotype = GENOTYPES.get("CARS_H")
    with_aux = build_network(genotype, NetworkConfig.cifar(auxiliary=True))
    without = build_network(genotype, NetworkConfig.cifar(auxiliary=False))
    assert count_parameters(with_aux) == count_parameters(without)
    assert sum(p.numel() for p in with_aux.parameters()) > count_parameters(with_aux)


@pytest.mark.parametrize("kind", ["cifar", "imagenet"])
def test_random_network_trains_every_parameter(kind, rng):
    torch.manual_seed(0)
    genotype = random_genotype(rng)
    size = 32 if kind == "cifar" else 224
    config = NetworkConfig(kind=kind, C=8, layers=5, num_classes=7, input_size=size, auxiliary=True)
    network = build_network(genotype, config).train()
    network.drop_path_prob = 0.2
    logits, aux = network.forward_train(torch.randn(3, 3, size, size))
    assert logits.shape == (3, 7) and aux.shape == (3, 7)
    assert not torch.isnan(logits).any()
    (logits.sum() + aux.sum()).backward()
    missing = [name for name, p in network.named_parameters() if p.grad is None]
    assert missing == []


def test_eval_forward_returns_logits_only():
    network = build_network(GENOTYPES.get("CARS_Lat_A"), NetworkConfig(kind="imagenet", C=8, layers=5, input_size=64)).eval()
    assert network(torch.randn(1, 3, 64, 64)).shape == (1, 10)


def test_invalid_sizes_are_refused_as_user_input_errors():
    with pytest.raises(UserInputError, match="input_size"):
        build_network(GENOTYPES.get("DARTS_V2"), NetworkConfig.imagenet(input_size=100))
    with pytest.raises(UserInputError, match="auxiliary"):
        build_network(GENOTYPES.get("DARTS_V2"), NetworkConfig.imagenet(input_size=192, auxiliary=True))
    with pytest.raises(UserInputError, match="layers"):
        build_network(GENOTYPES.get("DARTS_V2"), NetworkConfig.cifar(layers=2))
