"""Differentiable search over an op-per-layer space: DARTS and DrNAS, first order, epoch by epoch.

DARTS (Liu et al. 2019, https://arxiv.org/abs/1806.09055): each searchable layer of the ``OpSupernet``
becomes ``sum_k w_k * op_k(x)`` with ``w = softmax(alpha)`` per layer; the weights and the
architecture parameters ``alpha`` (layers x ops, initialised ``1e-3 * N(0, 1)`` as in the paper's
code) are updated alternately, FIRST order (the weights are held fixed in the alpha step): per
training batch, one alpha step on a batch of the proxy task's *validation* split (Adam, lr 3e-4,
betas (0.5, 0.999), weight decay 1e-3: the paper's defaults), then one weight step on the *training*
batch (the proxy task's optimizer and lr, AdamW 0.01 by default, with the library's warm-up + cosine
schedule by step number, gradient norm clipped at 5 as in the paper). The derived member is the argmax
of each layer; a search that collapses shows it as a high ``skip_share``.

DrNAS (Chen et al. 2021, https://arxiv.org/abs/2006.10355): the mixture weights of a layer are a
sample ``w ~ Dirichlet(elu(beta) + 1)`` (the concentration of their code), drawn with ``rsample`` so
the gradient reaches ``beta`` (pathwise derivative), fresh for the alpha step and again for the weight
step; the alpha loss adds ``kl_weight * sum_layers KL(Dirichlet(conc) || Dirichlet(1))``, their code's
KL regulariser with prior concentration 1 and ``reg_scale = 1e-3``. Their progressive partial-channel
scheme (for memory on large cells) is left out: this space fits. The derived member is the argmax of
the concentration (of the Dirichlet mean).

``DifferentiableTrainer.state_dict`` holds the supernet's weights, ``alpha``, both optimizers, the
shuffling generators, torch's global generator (DrNAS's samples), the epochs done, losses and the
alpha trajectory (the layer probabilities after every epoch, for the plot), loadable with
``torch.load(weights_only=True)``; a resumed search ends with the same alphas.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vision_backbones.measure.timing import num_threads
from vision_backbones.search.evaluate import (
    ProxyTask,
    make_optimizer,
    proxy_model_kwargs,
    task_splits,
    training_batches,
    warmup_cosine,
)
from vision_backbones.search.op_supernet import OpSupernet
from vision_backbones.search.op_supernet_training import check_state_identity
from vision_backbones.search.spaces import SearchSpace
from vision_backbones.validate import check_choice, check_float, check_int

METHODS = ("darts", "drnas")
ARCH_LR, ARCH_BETAS, ARCH_WEIGHT_DECAY = 3e-4, (0.5, 0.999), 1e-3  # DARTS's defaults for the architecture
DRNAS_KL_WEIGHT, DRNAS_PRIOR = 1e-3, 1.0  # DrNAS's reg_scale and the Dirichlet prior's concentration
GRAD_CLIP = 5.0  # DARTS's gradient clipping of the weights


def skip_share(space: SearchSpace, indices: Sequence[int]) -> float:
    """Share of the member's layers whose op is ``"skip"``."""
    indices = space.check_indices(list(indices))
    return sum(d.choices[i] == "skip" for d, i in zip(space.decisions, indices)) / len(indices)


def best_members(log_probs: Tensor) -> Iterator[tuple[int, ...]]:
    """Members in decreasing probability under independent layers (``log_probs``: layers x ops); argmax first."""
    orders = [sorted(range(len(row)), key=lambda k: (-float(row[k]), k)) for row in log_probs]

    def cost(ranks: tuple[int, ...]) -> float:
        return -sum(float(log_probs[layer][orders[layer][r]]) for layer, r in enumerate(ranks))

    start = (0,) * len(orders)
    heap, seen = [(cost(start), start)], {start}
    while heap:
        _, ranks = heapq.heappop(heap)
        yield tuple(orders[layer][r] for layer, r in enumerate(ranks))
        for layer in range(len(ranks)):
            if ranks[layer] + 1 < len(orders[layer]):
                successor = (*ranks[:layer], ranks[layer] + 1, *ranks[layer + 1 :])
                if successor not in seen:
                    seen.add(successor)
                    heapq.heappush(heap, (cost(successor), successor))


class DifferentiableTrainer:
    """DARTS or DrNAS over ``space`` on ``task`` for ``epochs`` (module docstring), one resumable epoch at a time."""

    def __init__(
        self,
        space: SearchSpace,
        task: ProxyTask,
        *,
        epochs: int,
        seed: int = 0,
        method: str = "darts",
        arch_lr: float = ARCH_LR,
        arch_weight_decay: float = ARCH_WEIGHT_DECAY,
        kl_weight: float = DRNAS_KL_WEIGHT,
    ) -> None:
        check_int("epochs", epochs, min=1)
        check_int("seed", seed, min=0)
        check_choice("method", method, METHODS)
        check_float("arch_lr", arch_lr, min=0, min_open=True)
        check_float("arch_weight_decay", arch_weight_decay, min=0)
        check_float("kl_weight", kl_weight, min=0)
        self.space, self.task, self.epochs, self.method = space, task, epochs, method
        self.settings = {"arch_lr": arch_lr, "arch_weight_decay": arch_weight_decay, "kl_weight": kl_weight}
        torch.manual_seed(seed)  # the supernet's initial weights, alpha, DrNAS's samples
        self.supernet = OpSupernet(space, **proxy_model_kwargs(task))  # a space it cannot cover: one line
        if task.channels_last:
            self.supernet.to(memory_format=torch.channels_last)
        ops = {len(d.choices) for d in space.decisions}
        if len(ops) != 1:
            raise ValueError(f"space {space.name!r}: layers have {sorted(ops)} ops; alpha needs one count per layer")
        self.alpha = nn.Parameter(1e-3 * torch.randn(len(space.decisions), ops.pop()))
        self.weight_optimizer = make_optimizer(self.supernet, task)
        self.arch_optimizer = torch.optim.Adam(
            [self.alpha], lr=arch_lr, betas=ARCH_BETAS, weight_decay=arch_weight_decay
        )
        self.generator = torch.Generator().manual_seed(seed)  # training batches
        self.val_generator = torch.Generator().manual_seed(seed + 1)  # validation batches (the alpha steps)
        self.epoch = 0
        self.losses: list[float] = []
        self.trajectory: list[list[list[float]]] = [self.probabilities().tolist()]  # after each epoch, init first

    # ------------------------------------------------------------------ the relaxation
    def concentration(self) -> Tensor:
        """DrNAS's Dirichlet concentration per layer, ``elu(alpha) + 1`` (> 0)."""
        return F.elu(self.alpha) + 1

    def mixture(self) -> Tensor:
        """Mixture weights of one forward (layers x ops): softmax (DARTS) or a Dirichlet sample (DrNAS)."""
        if self.method == "drnas":
            return torch.distributions.Dirichlet(self.concentration()).rsample()
        return F.softmax(self.alpha, dim=-1)

    def probabilities(self) -> Tensor:
        """Each layer's op probabilities: the softmax, or the Dirichlet mean (detached)."""
        with torch.no_grad():
            if self.method == "drnas":
                concentration = self.concentration()
                return concentration / concentration.sum(-1, keepdim=True)
            return F.softmax(self.alpha, dim=-1)

    def regulariser(self) -> Tensor:
        """DrNAS's ``kl_weight * sum KL(Dirichlet(conc) || Dirichlet(prior))``; 0 for DARTS."""
        if self.method != "drnas":
            return torch.zeros(())
        concentration = self.concentration()
        prior = torch.distributions.Dirichlet(torch.full_like(concentration, DRNAS_PRIOR))
        kl = torch.distributions.kl_divergence(torch.distributions.Dirichlet(concentration), prior)
        return self.settings["kl_weight"] * kl.sum()

    def derived(self) -> tuple[int, ...]:
        """The argmax op of each layer (the derived member)."""
        return next(best_members(self.probabilities().log()))

    # ------------------------------------------------------------------ training
    @property
    def units(self) -> int:
        """Resumable units in all: the epochs."""
        return self.epochs

    @property
    def done(self) -> bool:
        return self.epoch >= self.epochs

    def _val_batches(self, count: int) -> list[tuple[Tensor, Tensor]]:
        val = task_splits(self.task).val
        batches: list[tuple[Tensor, Tensor]] = []
        while len(batches) < count:  # reshuffled each time the split is used up
            batches += training_batches(val, self.task.batch_size, self.val_generator)
        return batches[:count]

    def train_epoch(self) -> float:
        """One epoch of alternating alpha and weight steps; returns the mean training loss."""
        if self.done:
            raise RuntimeError(f"the search has trained all {self.epochs} epochs")
        task, supernet = self.task, self.supernet
        batches = training_batches(task_splits(task).train, task.batch_size, self.generator)
        val_batches = self._val_batches(len(batches))
        total = len(batches) * self.epochs
        supernet.train()
        epoch_loss = 0.0
        with num_threads(task.threads):
            for number, ((images, labels), (val_images, val_labels)) in enumerate(zip(batches, val_batches)):
                # alpha step on validation data, the weights fixed (first order)
                self.arch_optimizer.zero_grad(set_to_none=True)
                val_loss = F.cross_entropy(supernet(val_images, weights=self.mixture()), val_labels)
                (val_loss + self.regulariser()).backward(inputs=[self.alpha])
                self.arch_optimizer.step()
                # weight step on training data, the mixture fixed
                for group in self.weight_optimizer.param_groups:
                    group["lr"] = task.lr * warmup_cosine(self.epoch * len(batches) + number, total)
                self.weight_optimizer.zero_grad(set_to_none=True)
                logits = supernet(images, weights=self.mixture().detach())
                loss = F.cross_entropy(logits, labels, label_smoothing=task.label_smoothing)
                if not (math.isfinite(loss.item()) and math.isfinite(val_loss.item())):
                    raise FloatingPointError(
                        f"search loss became {float(loss)}; expected a finite loss (lower lr={task.lr:g}?)"
                    )
                loss.backward()
                nn.utils.clip_grad_norm_(supernet.parameters(), GRAD_CLIP)
                self.weight_optimizer.step()
                epoch_loss += loss.item()
        self.epoch += 1
        self.losses.append(epoch_loss / len(batches))
        self.trajectory.append(self.probabilities().tolist())
        return self.losses[-1]

    # ------------------------------------------------------------------ resuming
    def identity(self) -> dict[str, Any]:
        return {"space": self.space.describe(), "method": self.method, "epochs": self.epochs, **self.settings}

    def state_dict(self) -> dict[str, Any]:
        return {
            **self.identity(),
            "epoch": self.epoch,
            "supernet": self.supernet.state_dict(),
            "alpha": self.alpha.detach().clone(),
            "weight_optimizer": self.weight_optimizer.state_dict(),
            "arch_optimizer": self.arch_optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "val_generator": self.val_generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "losses": list(self.losses),
            "trajectory": [list(map(list, probs)) for probs in self.trajectory],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        check_state_identity(state, self.identity(), "differentiable search")
        if tuple(state["alpha"].shape) != tuple(self.alpha.shape):
            raise ValueError(
                f"the saved alpha has shape {tuple(state['alpha'].shape)}; expected {tuple(self.alpha.shape)}"
            )
        self.supernet.load_state_dict(state["supernet"])
        with torch.no_grad():
            self.alpha.copy_(state["alpha"])
        self.weight_optimizer.load_state_dict(state["weight_optimizer"])
        self.arch_optimizer.load_state_dict(state["arch_optimizer"])
        self.generator.set_state(state["generator"])
        self.val_generator.set_state(state["val_generator"])
        torch.set_rng_state(state["torch_rng"])
        self.epoch = int(state["epoch"])
        self.losses = [float(loss) for loss in state["losses"]]
        self.trajectory = [[[float(p) for p in row] for row in probs] for probs in state["trajectory"]]
