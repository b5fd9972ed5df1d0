"""Frechet and kernel Inception distances (FID, KID) of generated images against real ones.

The statistics are torchmetrics'. The features are those torchmetrics uses by default: the
2048 pooled features of torch-fidelity's Inception-v3, whose weights torch hub downloads into
its cache (``$TORCH_HOME/hub/checkpoints``) on first use. Without them (no network, or
``HF_HUB_OFFLINE`` set and the file not cached) ``feature_network`` raises ``Unavailable``,
which a training run notes once and goes on without.

KID is the one to trust on small sets: FID's estimate is biased by the number of images, so
only FIDs over the same number of images compare.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import torch
from torch import nn

from .errors import Unavailable, one_line
from .hub import offline

# the most images of each kind in one of KID's random subsets (torchmetrics' default)
KID_SUBSET = 1000
# how many subsets KID averages over (torchmetrics' default)
KID_SUBSETS = 100


def feature_network(device: torch.device | str) -> nn.Module:
    """The network FID and KID compare features of: N x 3 x H x W images in [0, 1] to N x F.
    Tests replace this function with one giving a small network of their own."""
    return _inception(str(device))


class Distances:
    """FID and KID of generated images against real ones: ``add`` them as they come, then
    ``result``. Only the features are kept, so a set of any size costs little memory."""

    def __init__(self, network: nn.Module):
        self.network = network
        self.generated: list[torch.Tensor] = []
        self.real: list[torch.Tensor] = []

    @torch.no_grad()
    def add(self, generated: torch.Tensor | None = None, real: torch.Tensor | None = None) -> None:
        """Images N x 3 x H x W in [0, 1] of either kind (the sets need not be the same size)."""
        for images, kept in ((generated, self.generated), (real, self.real)):
            if images is not None:
                images = images.float().expand(-1, 3, -1, -1)  # a gray image as the RGB one it shows
                kept.append(self.network(images).float().flatten(1).cpu())

    def same_real(self) -> Distances:
        """An empty set of generated images to compare with these same real ones, whose
        features are then not computed again."""
        other = Distances(self.network)
        other.real = self.real
        return other

    def result(self) -> dict[str, float]:
        """``fid`` and ``kid``; {} with fewer than two images of either kind (no spread to compare)."""
        if not self.generated or not self.real:
            return {}
        from torchmetrics.image.fid import FrechetInceptionDistance
        from torchmetrics.image.kid import KernelInceptionDistance

        generated, real = torch.cat(self.generated), torch.cat(self.real)
        if min(len(generated), len(real)) < 2:
            return {}
        given = _Given(real.shape[1])
        fid = FrechetInceptionDistance(feature=given)
        with warnings.catch_warnings():
            # it warns that it keeps every feature; ours are a few kilobytes an image
            warnings.simplefilter("ignore", UserWarning)
            kid = KernelInceptionDistance(feature=given, subsets=KID_SUBSETS, subset_size=min(KID_SUBSET, len(generated), len(real)))
        for metric in (fid, kid):
            metric.update(real, real=True)
            metric.update(generated, real=False)
        # KID draws its subsets from the global generator: the same ones every time, and a
        # training run's random stream (which exact resume replays) left as it was
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            kid_mean, _ = kid.compute()
        return {"fid": round(float(fid.compute()), 4), "kid": round(float(kid_mean), 6)}


class _Given(nn.Module):
    """Hands computed features through to torchmetrics: the network runs once per image for
    both measures, not once for each."""

    def __init__(self, size: int):
        super().__init__()
        self.num_features = size  # FID sizes its statistics by this instead of a trial image

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


class _Bytes(nn.Module):
    """Inception on images in [0, 1]: it takes bytes, made as torchmetrics' ``normalize`` does."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net((images.clamp(0, 1) * 255).byte())


@functools.lru_cache(maxsize=None)
def _inception(device: str) -> nn.Module:
    # loaded once a process: each later validation (and run, in the app) reuses it
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3
        from torchmetrics.image.fid import NoTrainInceptionV3
    except ImportError as error:
        raise Unavailable(f"FID and KID are unavailable: {one_line(error)} (pip install torchmetrics torch-fidelity)") from None
    cached = Path(torch.hub.get_dir()) / "checkpoints" / URL_INCEPTION_V3.rsplit("/", 1)[-1]
    if not cached.is_file() and offline():
        raise Unavailable(f"FID and KID are unavailable: the Inception weights are not in {cached.parent} and the network is off (HF_HUB_OFFLINE)")
    try:
        net = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"])
    except (OSError, RuntimeError, ValueError) as error:  # URLError is an OSError; a torn file fails to load
        raise Unavailable(f"FID and KID are unavailable: the Inception weights could not be fetched ({one_line(error, named=True)})") from None
    return _Bytes(net).to(device)
