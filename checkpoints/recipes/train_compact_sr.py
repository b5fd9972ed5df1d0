"""Train the small x4 compact super-resolution model shipped in checkpoints/.

    pip install scikit-image   # the training photos ship inside its wheel
    python checkpoints/recipes/train_compact_sr.py --minutes 25 --output checkpoints/compact-sr-x4.safetensors

Data: freely licensed photographs bundled with scikit-image (sources and licences in
checkpoints/README.md); chelsea (the README's example) is held out for evaluation. Inputs are
bicubic-downscaled random crops; the loss is L1. A plain loop, deliberately: the project's
training core replaces it when it lands.
"""

import argparse
import math
import time

import numpy as np
import torch
import torch.nn.functional as F

from translator.checkpoints import save_checkpoint
from translator.family import make_settings
from translator.plugins import registry

TRAIN = ["astronaut", "camera", "coffee", "rocket", "brick", "grass", "gravel", "hubble_deep_field", "retina"]
HELD_OUT = ["chelsea"]
SCALE = 4


def photos(names):
    import skimage.data

    out = []
    for name in names:
        image = getattr(skimage.data, name)()
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        out.append(torch.from_numpy(image[..., :3].copy()).permute(2, 0, 1).float() / 255)
    return out


def downscale(hr):
    return F.interpolate(hr, scale_factor=1 / SCALE, mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)


def psnr_y(a, b, border=SCALE):
    weights = torch.tensor([65.481, 128.553, 24.966]).view(1, 3, 1, 1) / 255
    ya, yb = (a * weights).sum(1), (b * weights).sum(1)
    ya, yb = ya[..., border:-border, border:-border], yb[..., border:-border, border:-border]
    return 10 * math.log10(1 / torch.mean((ya - yb) ** 2).item())


def evaluate(net, images):
    gains = []
    with torch.no_grad():
        for hr in images:
            hr = hr[:, : hr.shape[1] // SCALE * SCALE, : hr.shape[2] // SCALE * SCALE][None]
            lr = downscale(hr)
            sr = net(lr).clamp(0, 1)
            bicubic = F.interpolate(lr, scale_factor=SCALE, mode="bicubic", align_corners=False).clamp(0, 1)
            gains.append((psnr_y(sr, hr), psnr_y(bicubic, hr)))
    return gains


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=25)
    parser.add_argument("--output", default="checkpoints/compact-sr-x4.safetensors")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    family = registry().family("esrgan")
    settings = make_settings(family.Settings, {"arch": "srvgg", "nf": "32", "num_conv": "8", "scale": str(SCALE)}, "esrgan")
    arch = family.architecture(settings)
    net = family.build(arch)
    train, held_out = photos(TRAIN), photos(HELD_OUT)
    optimizer = torch.optim.Adam(net.parameters(), lr=5e-4)
    crop, batch = 96, 16
    start, step = time.time(), 0
    budget = args.minutes * 60
    while time.time() - start < budget:
        # cosine decay over the time budget
        for group in optimizer.param_groups:
            group["lr"] = 5e-4 * 0.5 * (1 + math.cos(math.pi * min(1.0, (time.time() - start) / budget)))
        hrs = []
        for _ in range(batch):
            image = train[torch.randint(len(train), ()).item()]
            top = torch.randint(image.shape[1] - crop + 1, ()).item()
            left = torch.randint(image.shape[2] - crop + 1, ()).item()
            patch = image[:, top : top + crop, left : left + crop]
            if torch.rand(()) < 0.5:
                patch = patch.flip(2)
            hrs.append(patch)
        hr = torch.stack(hrs)
        loss = F.l1_loss(net(downscale(hr)), hr)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        if step % 200 == 0:
            print(f"step {step} loss {loss.item():.4f} {(time.time() - start) / 60:.1f} min", flush=True)
    net.eval()
    (sr, bicubic), = evaluate(net, held_out)
    print(f"held-out chelsea: PSNR-Y {sr:.2f} dB, bicubic {bicubic:.2f} dB", flush=True)
    extra = {
        "description": "x4 photo upscaler (compact, bicubic-trained, small)",
        "recipe": "checkpoints/recipes/train_compact_sr.py",
        "data": "scikit-image sample photos: " + ", ".join(TRAIN),
        "steps": str(step),
        "batch": f"{batch}x{crop}px",
        "psnr_y_chelsea": f"{sr:.2f}",
        "psnr_y_chelsea_bicubic": f"{bicubic:.2f}",
    }
    save_checkpoint(args.output, family, arch, net.state_dict(), extra)
    print(f"wrote {args.output} after {step} steps")


if __name__ == "__main__":
    main()
