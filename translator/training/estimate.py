"""What a training run will need, known before it starts: memory and time per step.

Memory is counted without allocating any: the family's networks and one training step run on
PyTorch's meta device, which computes shapes but holds no data, while a hook adds up what
autograd keeps for the backward pass. Time comes from real steps at batch 1 and 2, each after a
warm-up step, extended to the run's batch. A run whose estimate does not fit in the device's free memory
is refused before it takes any.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import units
from ..errors import TranslatorError

# Adam keeps two moments per parameter, and every parameter has its gradient
OPTIMIZER_COPIES = 3
# what the allocator, autograd's temporaries and the data in flight add to what is counted
OVERHEAD = 1.3
# batches each loader process prepares ahead (torch's DataLoader default)
LOADER_PREFETCH = 2
# the longest a step may be estimated to take: logs, checkpoints and a sure Stop come between steps
MAX_STEP_SECONDS = 120.0


@dataclass
class Estimate:
    memory_bytes: int
    seconds_per_step: float
    # free memory of the device when estimated (None: not known on this device)
    free_bytes: int | None

    def describe(self) -> str:
        free = f" of {units.size(self.free_bytes)} free" if self.free_bytes is not None else ""
        return f"about {units.size(self.memory_bytes)}{free} and {units.duration(self.seconds_per_step)} per step"


def estimate(trainer, arch, measure: bool = True) -> Estimate:
    """The memory and time per step of ``trainer``'s run with the network ``arch``."""
    family, config, device = trainer.family, trainer.config, trainer.device
    family.task.check_sizes(config, arch)
    # a recipe that loads weights of its own (CycleGAN's checkpoint_b) loads them into nothing
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        recipe = family.recipe(family.build(arch), arch, trainer.settings, config, torch.device("meta"))
    weights = sum(p.numel() * p.element_size() for net in recipe.networks.values() for p in net.parameters())
    trained = sum(
        p.numel() * p.element_size() for optimizer in recipe.optimizers.values() for group in optimizer.param_groups for p in group["params"]
    )
    averages = sum(p.numel() * p.element_size() for stem, name in recipe.exports.items() for p in recipe.networks[name].parameters()) if recipe.ema_decay else 0
    shapes = family.task.batch_shapes(config, arch)
    # a phase keeps every micro-batch's graph until its optimizer steps
    kept = _activations(recipe, shapes, config.batch_size, torch.device("meta")) * config.accumulate
    memory = int((weights + trained * OPTIMIZER_COPIES + averages + kept + _loaded(family.task, config, len(shapes))) * OVERHEAD)
    free = free_memory(device)
    if free is not None and memory > free:
        raise TranslatorError(
            f"this run needs about {units.size(memory)} but {device.type} has {units.size(free)} free; "
            "lower batch_size or crop_size, or choose a smaller network"
        )
    seconds = _step_seconds(trainer, arch) * config.accumulate if measure else 0.0
    if seconds > MAX_STEP_SECONDS:
        raise TranslatorError(
            f"one step of this run would take about {units.duration(seconds)}, over the {MAX_STEP_SECONDS:.0f} s a step may take "
            "(checkpoints, samples and Stop come between steps); lower batch_size, accumulate or crop_size"
        )
    return Estimate(memory, seconds, free)


def _loaded(task, config, keys: int) -> int:
    """Bytes of the images in flight before they are cropped: a step's batches as 8-bit, the
    batches the loader processes prepare ahead (two each), and one batch widened to float on the
    device, at the side the loaders hand over (paired and unpaired sets: ``load_size``)."""
    side = task.loaded_side(config)
    one = config.batch_size * keys * 3 * side * side
    return one * config.accumulate * (1 + LOADER_PREFETCH * config.workers) + one * 4


def free_memory(device: torch.device) -> int | None:
    """Bytes the device can still give, or None where that is not known. On the CPU the least
    of what the host has available, what this process's control group (a container's limit)
    still allows, and what its address-space limit leaves."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "cpu":
        known = [limit for limit in (_host_available(), _cgroup_free(), _address_space_free()) if limit is not None]
        return max(0, min(known)) if known else None
    return None


# where the kernel tells them; tests point these at files of their own
MEMINFO = Path("/proc/meminfo")
PROC_CGROUP = Path("/proc/self/cgroup")
CGROUP_ROOT = Path("/sys/fs/cgroup")


def _host_available() -> int | None:
    try:
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def _cgroup_free() -> int | None:
    """The memory limit of this process's control group less what the group uses: cgroup v2's
    memory.max and memory.current, or v1's memory.limit_in_bytes and memory.usage_in_bytes."""
    try:
        lines = PROC_CGROUP.read_text().splitlines()
    except OSError:
        return None
    found = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2: one unified hierarchy
            base, files = CGROUP_ROOT, ("memory.max", "memory.current")
        elif "memory" in controllers.split(","):
            base, files = CGROUP_ROOT / "memory", ("memory.limit_in_bytes", "memory.usage_in_bytes")
        else:
            continue
        # inside a container its own group is often mounted as the root
        for folder in (base / path.lstrip("/"), base):
            free = _group_free(folder, *files)
            if free is not None:
                found.append(free)
                break
    return min(found) if found else None


def _group_free(folder: Path, limit_file: str, usage_file: str) -> int | None:
    try:
        limit = (folder / limit_file).read_text().strip()
        if limit == "max" or int(limit) >= 2**60:  # no limit (v1 says so with a huge number)
            return None
        return int(limit) - int((folder / usage_file).read_text().strip())
    except (OSError, ValueError):
        return None


def _address_space_free() -> int | None:
    """What RLIMIT_AS leaves this process: the limit less its present virtual size."""
    import resource

    limit, _ = resource.getrlimit(resource.RLIMIT_AS)
    if limit == resource.RLIM_INFINITY:
        return None
    try:
        status = Path("/proc/self/status").read_text()
        size = next(int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmSize:"))
    except (OSError, ValueError, StopIteration):
        return None
    return limit - size


def _activations(recipe, shapes: dict, batch: int, device: torch.device) -> int:
    """Bytes autograd keeps for backward in the largest phase of one step (phases run one after
    the other, each freeing its graph), counted on ``device`` (meta: nothing is allocated)."""
    kept = {"now": 0}
    peaks = []

    def pack(tensor):
        if not (tensor.is_leaf and tensor.requires_grad):  # parameters are counted already
            kept["now"] += tensor.numel() * tensor.element_size()
        return tensor

    inputs = {key: torch.zeros((batch, *shape), device=device) for key, shape in shapes.items()}
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor), _quiet_rng():
        for _, loss in recipe.step(inputs):
            peaks.append(kept["now"])
            kept["now"] = 0
            del loss
    return max(peaks, default=0)


def _step_seconds(trainer, arch) -> float:
    """Seconds of one micro-batch of the run's size: real steps at batch 1 and 2 on the run's
    device, with throwaway copies of the networks (the run starts from its own), give a fixed
    cost and a cost per image. Batch 1 scaled by the batch size alone overstated a step of 4
    about three times: the optimizer's update and every launch are paid once a step."""
    from .step import prepare_networks, train_step

    family, device, batch_size = trainer.family, trainer.device, trainer.config.batch_size
    recipe = family.recipe(family.build(arch), arch, trainer.settings, trainer.config, device)
    prepare_networks(recipe, device)
    shapes = family.task.batch_shapes(trainer.config, arch)
    timed = {}
    with _quiet_rng():
        for size in (1, 2) if batch_size > 1 else (1,):
            batch = {key: family.to_network(torch.rand((size, *shape), device=device)) for key, shape in shapes.items()}
            # the first step of a shape pays one-off costs (kernel selection, allocator growth,
            # lazy set-up) that overstated a step up to 25 times: it is run, not timed
            train_step(recipe, [batch], 1, trainer.autocast)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            started = time.perf_counter()
            train_step(recipe, [batch], 1, trainer.autocast)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            timed[size] = time.perf_counter() - started
    if batch_size == 1:
        return timed[1]
    per_image = max(0.0, timed[2] - timed[1])
    # between one image's time and batch-1 scaled up, whatever noise the two steps had
    return min(max(timed[1] + per_image * (batch_size - 1), timed[1]), timed[1] * batch_size)


@contextlib.contextmanager
def _quiet_rng():
    """The estimate's random draws (dropout, image pools) leave the run's random stream as it was."""
    with torch.random.fork_rng(devices=[]):
        yield