"""One optimizer step of a recipe, the networks made ready for it, and the weight average."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..acceleration import channels_last, device_layout
from .distributed import average_gradients, broadcast_buffers
from .recipe import Recipe


def prepare_networks(recipe: Recipe, device: torch.device, sync_bn: bool = False) -> None:
    """A recipe's networks ready to train on ``device``: there, in the memory layout that is
    fastest for each, in training mode; batch norm synchronised across GPUs when ``sync_bn``.
    The loop, the memory estimate and the benchmarks all start from this."""
    for name, net in recipe.networks.items():
        if sync_bn and device.type == "cuda":
            recipe.networks[name] = net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
        device_layout(net, device, channels_last(net, device, training=True)).train()


def train_step(recipe: Recipe, batches, count: int, autocast, world: int = 1, stop: Callable[[], bool] | None = None) -> bool:
    """One optimizer step of ``recipe`` over ``count`` micro-batches whose gradients add up.

    Phases run in the order ``step`` yields them, and each phase's optimizer steps as soon as
    that phase's gradients from every micro-batch are in, as the original training loops do
    (pix2pix updates D and then trains G against the updated D). ``stop`` is asked before each
    micro-batch until the first optimizer steps; if it says so, the step is dropped whole and
    False returned, the networks as they were.
    """
    for optimizer in recipe.optimizers.values():
        optimizer.zero_grad(set_to_none=True)
    phases = [recipe.step(batch) for batch in batches]
    first = True
    while True:
        name = None
        for phase in phases:
            if first and stop is not None and stop():
                for optimizer in recipe.optimizers.values():
                    optimizer.zero_grad(set_to_none=True)
                return False
            with autocast:
                item = next(phase, None)
            if item is None:
                break
            name, loss = item
            # fp32 and bf16 need no loss scaling (fp16 training is not offered)
            (loss / count).backward()
        if name is None:
            break
        optimizer = recipe.optimizers[name]
        if world > 1:
            average_gradients([p for group in optimizer.param_groups for p in group["params"]], world)
        optimizer.step()
        first = False
    for scheduler in recipe.schedulers.values():
        scheduler.step()
    if world > 1:
        broadcast_buffers(recipe.networks.values())
    return True


@torch.no_grad()
def ema_update(average: nn.Module, current: nn.Module, decay: float) -> None:
    for a, c in zip(average.parameters(), current.parameters()):
        a.lerp_(c, 1 - decay)
    for a, c in zip(average.buffers(), current.buffers()):
        a.copy_(c)
