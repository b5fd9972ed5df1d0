"""Several processes training one run: set-up, gradient averaging, and agreeing on a stop."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def init_distributed(device: torch.device) -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return dist.get_rank(), dist.get_world_size()


def average_gradients(params, world: int) -> None:
    # What DDP does after backward: every process ends with the same mean gradient. One flat
    # buffer per call, like DDP's buckets, instead of one collective per tensor.
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat.div_(world)
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def any_rank(flag: bool, world: int, device: torch.device) -> bool:
    """True on every process if it is true on any: a stop must stop all, or the rest would wait."""
    if world <= 1:
        return flag
    value = torch.tensor([float(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def broadcast_buffers(networks) -> None:
    # batch-norm running statistics follow process 0, as DDP's broadcast_buffers does
    for net in networks:
        for buffer in net.buffers():
            dist.broadcast(buffer, src=0)
