import numpy as np
import torch
from torch import nn

from cars_deploy.search.config import SearchConfig
from cars_deploy.search.trainer import SuperNetTrainer
from cars_deploy.space import NetworkConfig, SuperNet, random_genotype

NET = NetworkConfig(kind="cifar", C=4, layers=3, num_classes=10, input_size=8, affine=False)


def _pair(seed=0):
    torch.manual_seed(seed)
    a = SuperNet(NET)
    b = SuperNet(NET)
    b.load_state_dict(a.state_dict())
    return a, b


def test_step_descends_the_average_loss_of_the_b_architectures(rng):
    net, reference = _pair()
    genotypes = [random_genotype(rng) for _ in range(3)]
    x, y = torch.randn(16, 3, 8, 8), torch.randint(0, 10, (16,))
    config = SearchConfig(lr=0.1, momentum=0.0, weight_decay=0.0, grad_clip=1e9)
    SuperNetTrainer(net, config).step(x, y, genotypes)
    # reference: eq. 3 written out, one graph of the mean loss, plain SGD
    reference.train()
    loss = sum(nn.functional.cross_entropy(reference(x, g), y) for g in genotypes) / len(genotypes)
    loss.backward()
    with torch.no_grad():
        for p in reference.parameters():
            if p.grad is not None:
                p -= 0.1 * p.grad
    for (name, p), q in zip(net.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=name)


def test_weights_off_every_sampled_path_are_untouched_despite_momentum_and_decay(rng):
    net, _ = _pair()
    trainer = SuperNetTrainer(net, SearchConfig())
    genotype = random_genotype(rng)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x, y = torch.randn(8, 3, 8, 8), torch.randint(0, 10, (8,))
    for _ in range(3):
        trainer.step(x, y, [genotype])
    on_path = {id(p) for m in net.path_modules(genotype) for p in m.parameters()}
    for name, p in net.named_parameters():
        if id(p) not in on_path:
            assert torch.equal(p.detach(), before[name]), name
    changed = [name for name, p in net.named_parameters() if not torch.equal(p.detach(), before[name])]
    assert changed  # and the path did learn


def test_defaults_are_the_darts_search_setting_with_a_cosine_schedule():
    net, _ = _pair()
    config = SearchConfig(epochs=4)
    trainer = SuperNetTrainer(net, config)
    group = trainer.optimizer.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"], config.grad_clip) == (0.025, 0.9, 3e-4, 5.0)
    rng = np.random.default_rng(0)
    batches = [(torch.randn(4, 3, 8, 8), torch.randint(0, 10, (4,)))] * 2
    lrs = []
    for epoch in range(4):
        stats = trainer.train_epoch(epoch, batches, lambda: [random_genotype(rng)], phase="warmup")
        lrs.append(stats.lr)
        assert stats.steps == 2 and np.isfinite(stats.loss)
    assert lrs[0] == 0.025 and all(a > b for a, b in zip(lrs, lrs[1:]))
    assert trainer.optimizer.param_groups[0]["lr"] == config.lr_min
