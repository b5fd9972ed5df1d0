"""The reference implementations' way of running the same networks, re-created for timing.

- Training: the original pix2pix/CycleGAN loop (models/cycle_gan_model.py, pix2pix_model.py):
  eager fp32, forward, then one backward and one optimizer step per network group in turn
  (generators first with the discriminators frozen, then the discriminators).
- Inference: Real-ESRGAN's RealESRGANer: numpy image to tensor, pad to the size multiple, one
  plain forward (fp16 on CUDA, fp32 on the CPU), back to a uint8 numpy image.

The layer shapes are the project's own networks (identical to the published ones), so only the
way of running them differs between a reference row and ours.
"""

import itertools

import numpy as np
import torch
import torch.nn.functional as F

from translator.losses import GANLoss, ImagePool
from translator.training import set_requires_grad


class ReferenceCycleGAN:
    def __init__(self, g_a, g_b, d_a, d_b):
        self.g_a, self.g_b, self.d_a, self.d_b = g_a, g_b, d_a, d_b
        self.opt_g = torch.optim.Adam(itertools.chain(g_a.parameters(), g_b.parameters()), lr=2e-4, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(itertools.chain(d_a.parameters(), d_b.parameters()), lr=2e-4, betas=(0.5, 0.999))
        self.gan = GANLoss("lsgan")
        self.pool_a, self.pool_b = ImagePool(50), ImagePool(50)

    def step(self, a, b):
        fake_b = self.g_a(a)
        rec_a = self.g_b(fake_b)
        fake_a = self.g_b(b)
        rec_b = self.g_a(fake_a)
        set_requires_grad([self.d_a, self.d_b], False)
        self.opt_g.zero_grad()
        idt_a, idt_b = self.g_a(b), self.g_b(a)
        loss_g = (
            self.gan.generator(self.d_a(fake_b)) + self.gan.generator(self.d_b(fake_a))
            + F.l1_loss(rec_a, a) * 10 + F.l1_loss(rec_b, b) * 10
            + F.l1_loss(idt_a, b) * 5 + F.l1_loss(idt_b, a) * 5
        )
        loss_g.backward()
        self.opt_g.step()
        set_requires_grad([self.d_a, self.d_b], True)
        self.opt_d.zero_grad()
        old_b = self.pool_b.query(fake_b)
        self.gan.discriminator(self.d_a(b), self.d_a(old_b.detach())).backward()
        old_a = self.pool_a.query(fake_a)
        self.gan.discriminator(self.d_b(a), self.d_b(old_a.detach())).backward()
        self.opt_d.step()


class ReferencePix2Pix:
    def __init__(self, g, d):
        self.g, self.d = g, d
        self.opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.gan = GANLoss("vanilla")

    def step(self, a, b):
        fake = self.g(a)
        set_requires_grad([self.d], True)
        self.opt_d.zero_grad()
        self.gan.discriminator(self.d(torch.cat([a, b], 1)), self.d(torch.cat([a, fake], 1).detach())).backward()
        self.opt_d.step()
        set_requires_grad([self.d], False)
        self.opt_g.zero_grad()
        loss = self.gan.generator(self.d(torch.cat([a, fake], 1))) + F.l1_loss(fake, b) * 100
        loss.backward()
        self.opt_g.step()


def reference_upscale(net, image: np.ndarray, device: torch.device, multiple: int = 1) -> np.ndarray:
    """RealESRGANer.enhance without tiling: uint8 HxWx3 in, uint8 out."""
    half = device.type == "cuda"
    x = torch.from_numpy(image.astype(np.float32) / 255).permute(2, 0, 1)[None].to(device)
    if half:
        x = x.half()
    h, w = x.shape[2:]
    pad_h, pad_w = -h % multiple, -w % multiple
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
    with torch.no_grad():
        y = net(x)
    y = y[:, :, : y.shape[2] - pad_h * (y.shape[2] // x.shape[2]), : y.shape[3] - pad_w * (y.shape[3] // x.shape[3])]
    return (y[0].float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
