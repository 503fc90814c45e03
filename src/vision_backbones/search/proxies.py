"""Zero-cost proxies: scores of an untrained network, from one or two batches, that predict its trained accuracy.

Each proxy is a function ``(model, images, labels) -> float``, higher meaning "predicted better"; a
model is scored at initialisation (``score_member`` builds it with a given seed). Sources and the
figures they report on NAS-Bench-201 CIFAR-10 (Spearman with final accuracy):

- ``params``, ``flops``: size alone (parameter count 0.75 there; Abdelfattah et al. 2021 use it as the
  baseline every proxy must beat).
- ``grad_norm``: sum over weights of the L2 norm of their gradient after one cross-entropy backward
  (Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021, https://arxiv.org/abs/2101.08134).
- ``snip``: sum of ``|w * dL/dw|`` (Lee et al. 2019, connection sensitivity; as a NAS proxy in Abdelfattah et al.).
- ``synflow``: sum of ``w * dR/dw`` with ``R`` the sum of the output of the network with absolute
  weights, batch norm removed, in float64, on an all-ones input (Tanaka et al. 2020,
  https://arxiv.org/abs/2006.05467; 0.74 in Abdelfattah et al.).
- ``naswot``: log-determinant of the kernel of binary ReLU codes over a batch
  (Mellor et al., "Neural Architecture Search without Training", ICML 2021, https://arxiv.org/abs/2006.04647; 0.77).
- ``jacob_cov``: from the eigenvalues of the correlation of input Jacobians over a batch
  (the first version of Mellor et al., https://arxiv.org/abs/2006.04647v1).
- ``zico``: sum over layers of ``log(sum(mean|g| / std(g)))`` of weight gradients over several batches
  (Li et al., "ZiCo: Zero-shot NAS via Inverse Coefficient of Variation on Gradients", ICLR 2023,
  https://arxiv.org/abs/2301.11300; 0.80).
- ``ensemble``: the mean rank of several proxies over the scored members (``rank_ensemble``).

Only conv and linear weights count where a proxy sums over weights, as in the reference code.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ProxyFn = Callable[[nn.Module, Tensor, Tensor], float]


def _weights(model: nn.Module) -> list[Tensor]:
    return [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)) and m.weight.requires_grad]


def _backward(model: nn.Module, images: Tensor, labels: Tensor) -> None:
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(images), labels).backward()


def params_proxy(model: nn.Module, images: Tensor, labels: Tensor) -> float:
    return float(sum(p.numel() for p in model.parameters()))


def flops_proxy(model: nn.Module, images: Tensor, labels: Tensor) -> float:
    from vision_backbones.flops import count_flops

    return float(count_flops(model, images[:1]).total)


def grad_norm(model: nn.Module, images: Tensor, labels: Tensor) -> float:
    _backward(model, images, labels)
    with torch.no_grad():
        return float(sum(w.grad.norm() for w in _weights(model) if w.grad is not None))


def snip(model: nn.Module, images: Tensor, labels: Tensor) -> float:
    _backward(model, images, labels)
    with torch.no_grad():
        return float(sum((w * w.grad).abs().sum() for w in _weights(model) if w.grad is not None))


def _without_batch_norm(model: nn.Module) -> nn.Module:
    copied = copy.deepcopy(model)
    for module in list(copied.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                setattr(module, child_name, nn.Identity())
    return copied


def synflow(model: nn.Module, images: Tensor, labels: Tensor) -> float:
    net = _without_batch_norm(model).double().eval()
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.abs_()
    net.zero_grad(set_to_none=True)
    ones = torch.ones((1, *images.shape[1:]), dtype=torch.float64)
    net(ones).sum().backward()
    with torch.no_grad():
        return float(sum((w * w.grad).sum() for w in _weights(net) if w.grad is not None))


def naswot(model: nn.Module, images: Tensor, labels: Tensor) -> float:
    batch = images.shape[0]
    kernel = torch.zeros(batch, batch, dtype=torch.float64)

    def record(module: nn.Module, inputs: Any, output: Tensor) -> None:
        codes = (output.detach().reshape(batch, -1) > 0).double()
        kernel.add_(codes @ codes.t() + (1 - codes) @ (1 - codes).t())

    hooks = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, (nn.ReLU, nn.ReLU6))]
    try:
        with torch.no_grad():
            model(images)
    finally:
        for hook in hooks:
            hook.remove()
    return float(torch.linalg.slogdet(kernel).logabsdet)


def jacob_cov(model: nn.Module, images: Tensor, labels: Tensor) -> float:
    images = images.clone().requires_grad_(True)
    model.zero_grad(set_to_none=True)
    model(images).sum().backward()
    jacobian = images.grad.reshape(images.shape[0], -1).double()  # type: ignore[union-attr]
    correlation = torch.corrcoef(jacobian)
    eigenvalues = torch.linalg.eigvalsh(torch.nan_to_num(correlation))
    k = 1e-5
    return float(-torch.sum(torch.log(eigenvalues.clamp_min(0) + k) + 1.0 / (eigenvalues.clamp_min(0) + k)))


def zico(model: nn.Module, images: Tensor, labels: Tensor, *, splits: int = 2) -> float:
    """The batch is cut into ``splits`` parts; each gives one gradient sample per weight."""
    grads: dict[int, list[Tensor]] = {}
    weights = _weights(model)
    for part_images, part_labels in zip(images.chunk(splits), labels.chunk(splits)):
        _backward(model, part_images, part_labels)
        for index, w in enumerate(weights):
            if w.grad is not None:
                grads.setdefault(index, []).append(w.grad.detach().reshape(-1).clone())
    score = 0.0
    for samples in grads.values():
        stacked = torch.stack(samples)  # (splits, weights)
        std = stacked.std(dim=0)
        mean_abs = stacked.abs().mean(dim=0)
        nonzero = std != 0
        total = float((mean_abs[nonzero] / std[nonzero]).sum())
        if total > 0:
            score += math.log(total)
    return score


PROXIES: dict[str, ProxyFn] = {
    "params": params_proxy,
    "flops": flops_proxy,
    "grad_norm": grad_norm,
    "snip": snip,
    "synflow": synflow,
    "naswot": naswot,
    "jacob_cov": jacob_cov,
    "zico": zico,
}
# The rank-average ensemble's members: the three strongest published proxies that do not count size.
ENSEMBLE = ("synflow", "naswot", "zico")


def check_proxies(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` validated against ``PROXIES`` (plus ``"ensemble"``): one line naming an unknown proxy."""
    if isinstance(names, str) or not names:
        raise ValueError(f"proxies must be a non-empty list of names, got {names!r}")
    for name in names:
        if name != "ensemble" and name not in PROXIES:
            raise ValueError(f"unknown proxy {name!r}; expected one of {', '.join([*PROXIES, 'ensemble'])}")
    return tuple(names)


def score_model(model: nn.Module, images: Tensor, labels: Tensor, names: Sequence[str]) -> dict[str, float]:
    """Every proxy of ``names`` (``"ensemble"`` left out: it needs a population) on an untrained model."""
    scores = {}
    model.train()
    for name in check_proxies(names):
        if name != "ensemble":
            scores[name] = PROXIES[name](model, images, labels)
    model.zero_grad(set_to_none=True)
    return scores


def score_member(
    base: str,
    architecture: Mapping[str, Any],
    images: Tensor,
    labels: Tensor,
    names: Sequence[str],
    *,
    seed: int = 0,
    num_classes: int = 10,
    threads: int | None = 1,
) -> dict[str, float]:
    """Build ``create_model(base, **architecture)`` with ``seed`` (channels as ``images``) and score it on
    ``threads`` threads (one by default: small networks only lose from more, and workers share cores)."""
    from vision_backbones.measure.timing import num_threads
    from vision_backbones.registry import create_model

    torch.manual_seed(seed)
    model = create_model(base, num_classes=num_classes, in_channels=images.shape[1], **architecture)
    with num_threads(threads):
        return score_model(model, images, labels, names)


def rank_ensemble(scores: Sequence[Mapping[str, float]], names: Sequence[str] = ENSEMBLE) -> list[float]:
    """Mean rank (0 = worst) of each scored member over the proxies ``names`` (higher = predicted better)."""
    from scipy.stats import rankdata

    if not scores:
        return []
    ranks = [rankdata([s[name] for s in scores]) for name in check_proxies(names)]
    return [float(sum(r[i] for r in ranks) / len(ranks)) for i in range(len(scores))]
