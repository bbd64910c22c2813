import pytest
import torch

from cars_deploy.space.primitives import OPS, PRIMITIVES, FactorizedReduce, ReLUConvBN


def test_the_eight_darts_ops_in_order():
    assert PRIMITIVES == (
        "none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
        "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5",
    )


@pytest.mark.parametrize("name", PRIMITIVES)
@pytest.mark.parametrize("stride", [1, 2])
def test_op_keeps_channels_and_strides(name, stride):
    op = OPS.get(name)(8, stride, True)
    out = op(torch.randn(2, 8, 12, 12))
    assert out.shape == (2, 8, 12 // stride, 12 // stride)
    assert not torch.isnan(out).any()


def test_avg_pool_excludes_padding():
    op = OPS.get("avg_pool_3x3")(1, 1, True)
    out = op(torch.ones(1, 1, 4, 4))
    assert torch.allclose(out, torch.ones_like(out))  # with padding counted, corners would be 4/9


def test_sep_conv_is_two_stacked_halves_and_dil_conv_dilates_by_two():
    sep = OPS.get("sep_conv_3x3")(4, 1, True)
    convs = [m for m in sep.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 4 and [c.groups for c in convs] == [4, 1, 4, 1]
    dil = OPS.get("dil_conv_5x5")(4, 1, True)
    depthwise = [m for m in dil.modules() if isinstance(m, torch.nn.Conv2d)][0]
    assert depthwise.dilation == (2, 2) and depthwise.padding == (4, 4)


def test_none_outputs_zeros():
    assert OPS.get("none")(3, 2, True)(torch.randn(1, 3, 4, 4)).abs().sum() == 0


def test_preprocessing_blocks():
    assert FactorizedReduce(6, 8)(torch.randn(1, 6, 8, 8)).shape == (1, 8, 4, 4)
    assert ReLUConvBN(6, 8, 1, 1, 0)(torch.randn(1, 6, 8, 8)).shape == (1, 8, 8, 8)
    with pytest.raises(ValueError):
        FactorizedReduce(6, 7)


def test_registry_refuses_duplicates():
    with pytest.raises(KeyError, match="already registered"):
        OPS.add("none", lambda C, s, a: None)
