"""What a family contributes to training: a ``Recipe`` (networks, optimizers, schedules and a
``step`` yielding one loss per optimizer phase), and the schedules and helpers recipes use."""

from __future__ import annotations

from typing import Iterator

import torch
from torch import nn


class Recipe:
    """What a family trains. Subclasses fill the dicts in ``__init__`` and implement ``step``."""

    def __init__(self):
        # every trained network, by name
        self.networks: dict[str, nn.Module] = {}
        # one optimizer per phase that ``step`` yields, by the same name
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler] = {}
        # generator files written for inference: file stem -> network name
        self.exports: dict[str, str] = {"generator": "G"}
        # keep an exponential moving average of the exported networks (0: off)
        self.ema_decay: float = 0.0
        # detached loss components of the last step, for the log
        self.logs: dict[str, torch.Tensor] = {}

    def step(self, batch: dict[str, torch.Tensor]) -> Iterator[tuple[str, torch.Tensor]]:
        """Compute the losses of one (micro-)batch, yielding ``(optimizer name, loss)`` per phase.
        The loop backpropagates each loss as it is yielded and steps that phase's optimizer before
        asking for the next phase, so a later phase sees the networks already updated."""
        raise NotImplementedError

    def source(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The exported generator's input and, where there is one, its target (network range)."""
        raise NotImplementedError

    def extra_state(self) -> dict:
        """State beyond networks and optimizers that resume needs (an image pool, say)."""
        return {}

    def load_extra_state(self, state: dict, device: torch.device) -> None:
        pass


def linear_decay(optimizer: torch.optim.Optimizer, constant_steps: int, decay_steps: int):
    """The pix2pix/CycleGAN schedule: constant for ``constant_steps``, then linearly to zero over
    ``decay_steps``. Counted in steps from the start, never from ``--steps``, so a run stopped
    and resumed (or extended) follows the same curve as one that never stopped."""
    decay = max(1, decay_steps)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, 1.0 - max(0, step - constant_steps) / decay))


def halving(optimizer: torch.optim.Optimizer, every: int):
    """ESRGAN-style: the learning rate halves every ``every`` steps."""
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, every), gamma=0.5)


def set_requires_grad(networks: list[nn.Module], flag: bool) -> None:
    for net in networks:
        net.requires_grad_(flag)
