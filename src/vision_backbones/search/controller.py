"""REINFORCE with a recurrent controller: Zoph & Le's NAS and ENAS's controller, on ``nn.LSTMCell`` / ``nn.RNNCell``.

Papers: "Neural Architecture Search with Reinforcement Learning" (Zoph & Le, ICLR 2017,
https://arxiv.org/abs/1611.01578) and "Efficient Neural Architecture Search via Parameter Sharing"
(Pham et al., ICML 2018, https://arxiv.org/abs/1802.03268; code github.com/melodyguan/enas).

The controller writes an architecture one decision at a time: a stack of recurrent cells reads the
embedding of the previous decision (a learned start vector for the first), a linear softmax head per
vocabulary turns the top hidden state into logits, a choice is sampled, and *its* embedding is the next
input (autoregressive). Logits are divided by ``temperature`` and squashed to
``tanh_constant * tanh(logits)`` (ENAS's "logit clipping", which keeps the policy from saturating
early). After a reward ``R`` the policy gradient step minimises ``-log p(a) * (R' - b)`` where
``R' = R + entropy_weight * H`` (ENAS adds the entropy bonus to the reward) and ``b`` is the moving
average baseline ``b <- decay * b + (1 - decay) * R'``, updated before the step (ENAS's order).

Defaults and their sources:

- ``cell="lstm"``, ``hidden_size=64``, ``num_layers=1``: ENAS macro search (``lstm_size 64``, one layer).
- ``lr=1e-3`` with Adam: ENAS ``scripts/cifar10_macro_search.sh`` (``--controller_lr=0.001``; the
  PyTorch port of ENAS uses 3.5e-4).
- ``tanh_constant=1.5``: the same script (``--controller_tanh_constant=1.5``; ENAS's micro search and
  NAS-Bench-201's REINFORCE use 1.1 and 2.5).
- ``entropy_weight=1e-4``: the same script (``--controller_entropy_weight=0.0001``).
- ``baseline_decay=0.99``: ENAS ``controller_bl_dec``.
- ``temperature=1.0``: ENAS leaves it unset (no division).
- ``preset="zoph_le"``: 2 layers of 35 LSTM units, Adam lr 6e-4 (Zoph & Le section 4.1), no clipping.
- Growing depth (``grow_every``): Zoph & Le start CIFAR-10 networks at 6 layers and add 2 every 1,600
  samples; here ``start_depth`` and ``grow_by`` (default 2) are the same knobs, for spaces with
  ``with_depth`` (the Zoph & Le space).

One difference: ENAS starts the baseline at 0; here it starts at the first reward, because at decay
0.99 a zero baseline needs hundreds of samples to reach the reward's scale, far beyond a 25-100 query
budget, and until then every sample would be reinforced.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from vision_backbones.search.spaces import Decision, SearchSpace
from vision_backbones.validate import check_choice, check_float, check_int

CELLS: dict[str, type[nn.Module]] = {"lstm": nn.LSTMCell, "rnn": nn.RNNCell}

PRESETS: dict[str, dict[str, Any]] = {
    "enas": {"cell": "lstm", "hidden_size": 64, "num_layers": 1, "lr": 1e-3, "tanh_constant": 1.5},
    "zoph_le": {"cell": "lstm", "hidden_size": 35, "num_layers": 2, "lr": 6e-4, "tanh_constant": None},
}


def _module_key(vocabulary: str) -> str:
    return vocabulary.replace("/", "_")


class RecurrentController(nn.Module):
    """Stacked ``nn.LSTMCell`` / ``nn.RNNCell`` with an embedding and a softmax head per vocabulary."""

    def __init__(
        self,
        vocabularies: dict[str, int],
        *,
        cell: str = "lstm",
        hidden_size: int = 64,
        num_layers: int = 1,
        temperature: float = 1.0,
        tanh_constant: float | None = 1.5,
    ) -> None:
        super().__init__()
        check_choice("cell", cell, tuple(CELLS))
        self.cell_type = cell
        self.hidden_size = hidden_size
        self.temperature = temperature
        self.tanh_constant = tanh_constant
        self.cells = nn.ModuleList([CELLS[cell](hidden_size, hidden_size) for _ in range(num_layers)])
        self.start = nn.Parameter(torch.zeros(1, hidden_size))  # the first step's input ("g_emb" in ENAS)
        self.embeddings = nn.ModuleDict({_module_key(v): nn.Embedding(n, hidden_size) for v, n in vocabularies.items()})
        self.heads = nn.ModuleDict({_module_key(v): nn.Linear(hidden_size, n) for v, n in vocabularies.items()})

    def reset_parameters(self, generator: torch.Generator) -> None:
        """Uniform in [-0.1, 0.1], ENAS's initializer, from a seeded generator."""
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.uniform_(-0.1, 0.1, generator=generator)

    def _initial_state(self) -> list[Any]:
        zeros = torch.zeros(1, self.hidden_size)
        return [(zeros, zeros) if self.cell_type == "lstm" else zeros for _ in self.cells]

    def _step(self, x: Tensor, state: list[Any]) -> tuple[Tensor, list[Any]]:
        new_state = []
        for layer, cell in enumerate(self.cells):
            out = cell(x, state[layer])
            new_state.append(out)
            x = out[0] if self.cell_type == "lstm" else out  # (1, hidden)
        return x, new_state

    def _logits(self, hidden: Tensor, decision: Decision) -> Tensor:
        logits = self.heads[_module_key(decision.vocabulary)](hidden) / self.temperature  # (1, n)
        if self.tanh_constant is not None:
            logits = self.tanh_constant * torch.tanh(logits)
        return logits

    def run(
        self,
        decisions: Sequence[Decision],
        *,
        choices: Sequence[int] | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[tuple[int, ...], Tensor, Tensor]:
        """Sample (``choices=None``) or score the given ``choices``: ``(choices, log p, entropy)``."""
        x, state = self.start, self._initial_state()
        picked: list[int] = []
        log_prob = torch.zeros(())
        entropy = torch.zeros(())
        for step, decision in enumerate(decisions):
            hidden, state = self._step(x, state)
            log_probs = torch.log_softmax(self._logits(hidden, decision)[0], dim=-1)  # (n,)
            if choices is None:
                choice = int(torch.multinomial(log_probs.exp(), 1, generator=generator))
            else:
                choice = int(choices[step])
            picked.append(choice)
            log_prob = log_prob + log_probs[choice]
            entropy = entropy - (log_probs.exp() * log_probs).sum()
            x = self.embeddings[_module_key(decision.vocabulary)](torch.tensor([choice]))  # next input: this choice
        return tuple(picked), log_prob, entropy


class ReinforceSearch:
    """REINFORCE over ``space`` with a ``RecurrentController`` (see the module docstring for defaults)."""

    def __init__(
        self,
        space: SearchSpace,
        *,
        seed: int = 0,
        preset: str = "enas",
        cell: str | None = None,
        hidden_size: int | None = None,
        num_layers: int | None = None,
        lr: float | None = None,
        temperature: float = 1.0,
        tanh_constant: float | str | None = "preset",
        entropy_weight: float = 1e-4,
        baseline_decay: float = 0.99,
        grow_every: int | None = None,
        grow_by: int = 2,
        start_depth: int | None = None,
    ) -> None:
        # The preset gives the defaults (ENAS or Zoph & Le); an explicit argument wins over it.
        check_choice("preset", preset, tuple(PRESETS))
        given = {"cell": cell, "hidden_size": hidden_size, "num_layers": num_layers, "lr": lr}
        settings = {**PRESETS[preset], **{k: v for k, v in given.items() if v is not None}}
        if tanh_constant != "preset":
            settings["tanh_constant"] = tanh_constant
        check_choice("cell", settings["cell"], tuple(CELLS))
        check_int("hidden_size", settings["hidden_size"], min=1)
        check_int("num_layers", settings["num_layers"], min=1)
        check_float("lr", settings["lr"], min=0, min_open=True)
        check_float("temperature", temperature, min=0, min_open=True)
        if settings["tanh_constant"] is not None:
            check_float("tanh_constant", settings["tanh_constant"], min=0, min_open=True)
        check_float("entropy_weight", entropy_weight, min=0)
        check_float("baseline_decay", baseline_decay, min=0, max=1, max_open=True)
        if grow_every is not None:
            check_int("grow_every", grow_every, min=1)
            check_int("grow_by", grow_by, min=1)
            if not hasattr(space, "with_depth"):
                raise ValueError(
                    f"grow_every: space {space.name!r} has a fixed depth; expected a space with with_depth (zoph_le)"
                )
        self.space = space
        self.grow_every, self.grow_by = grow_every, grow_by
        self.start_depth = start_depth if start_depth is not None else getattr(space, "depth", None)
        self.entropy_weight = entropy_weight
        self.baseline_decay = baseline_decay
        self.settings = {**settings, "temperature": temperature}
        self.samples = 0
        self.baseline: float | None = None
        deepest = space.with_depth(space.max_depth) if grow_every is not None else space  # type: ignore[attr-defined]
        vocabularies = {d.vocabulary: len(d.choices) for d in deepest.decisions}
        self.generator = torch.Generator().manual_seed(seed)
        self.controller = RecurrentController(
            vocabularies,
            cell=settings["cell"],
            hidden_size=settings["hidden_size"],
            num_layers=settings["num_layers"],
            temperature=temperature,
            tanh_constant=settings["tanh_constant"],
        )
        self.controller.reset_parameters(self.generator)
        self.optimizer = torch.optim.Adam(self.controller.parameters(), lr=settings["lr"])

    def current_space(self) -> SearchSpace:
        """The space at the depth of the next sample (Zoph & Le's growing depth), else the space."""
        if self.grow_every is None or self.start_depth is None:
            return self.space
        depth = self.start_depth + self.grow_by * (self.samples // self.grow_every)
        return self.space.with_depth(depth)  # type: ignore[attr-defined]

    def propose(self) -> tuple[int, ...]:
        space = self.current_space()
        self.samples += 1
        with torch.no_grad():
            choices, _, _ = self.controller.run(space.decisions, generator=self.generator)
        return choices

    def observe(self, indices: Sequence[int], reward: float) -> None:
        space = self.space.space_for(indices)
        _, log_prob, entropy = self.controller.run(space.decisions, choices=indices)
        reward = float(reward) + self.entropy_weight * float(entropy.detach())
        if self.baseline is None:
            self.baseline = reward
        self.baseline = self.baseline_decay * self.baseline + (1 - self.baseline_decay) * reward
        loss = -log_prob * (reward - self.baseline)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def state_dict(self) -> dict[str, Any]:
        return {
            "controller": self.controller.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "samples": self.samples,
            "baseline": self.baseline,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.controller.load_state_dict(state["controller"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.samples = int(state["samples"])
        self.baseline = None if state["baseline"] is None else float(state["baseline"])
