"""pix2pix (Isola et al. 2017): translation learned from aligned image pairs."""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from translator import Task, hookimpl, setting
from translator.images import LUMA
from translator.losses import GAN_MODES, GANLoss
from translator.training import Recipe, adam, linear_decay, set_requires_grad

from . import gan_networks


@hookimpl
def register_families(register):
    register(Pix2Pix())


@dataclass
class Pix2PixSettings:
    sampling: str = setting(
        "eval",
        "eval: deterministic output; train: the paper's test-time sampling (dropout on, batch statistics)",
        choices=("eval", "train"),
        translate=True,
    )
    colour: float = setting(
        1.0,
        "strength of the result's colour: 1 as the model gives it (a colouriser: the share its recipe found best), "
        "0 gray, 2 twice as strong; the result's tones stay as they are",
        low=0.0, high=4.0, translate=True,
    )
    netG: str = setting("unet_256", "generator of a new network", choices=("unet_256", "unet_128", "resnet_9blocks", "resnet_6blocks"))
    ngf: int = setting(64, "filters in the generator's first layer", low=1)
    ndf: int = setting(64, "filters in the discriminator's first layer", low=1)
    norm: str = setting("batch", "normalisation layers of new networks", choices=("batch", "instance"))
    dropout: bool = setting(True, "dropout in the generator (the paper's noise source)")
    gan_mode: str = setting("vanilla", "adversarial objective", choices=GAN_MODES)
    real_label: float = setting(1.0, "discriminator's target for real images (0.9: one-sided label smoothing; vanilla and lsgan only)", low=0.5, high=1.0)
    gray_input: bool = setting(False, "a colouriser: the generator sees one gray channel (A/ holds gray images, B/ their colour originals)")
    lambda_l1: float = setting(100.0, "weight of the L1 loss against the target", low=0.0)
    lambda_l2: float = setting(
        0.0, "weight of a squared-error loss against the target: it is least for the mean of what the input could be, "
        "so a colouriser leaves what it cannot tell near gray instead of guessing", low=0.0,
    )
    lr: float = setting(2e-4, "Adam learning rate", low=0.0)
    lr_constant_steps: int = setting(40_000, "steps at the full learning rate (the original's 100 epochs of facades)", low=0)
    lr_decay_steps: int = setting(40_000, "steps over which it then falls linearly to zero", low=1)
    beta1: float = setting(0.5, "Adam beta1", low=0.0, high=0.999)


class Pix2Pix(gan_networks.GeneratorFamily):
    name = "pix2pix"
    task = Task.PAIRED
    description = "paired image-to-image translation (edges to photo, map to aerial, day to night)"
    Settings = Pix2PixSettings
    # the colouriser trained by checkpoints/recipes/train_default_colouriser.py
    default_checkpoint = "colourise"
    light_defaults = {"netG": "unet_128", "load_size": 143, "crop_size": 128}

    def prepare(self, module, settings):
        module.eval()
        if settings.sampling == "train":
            for layer in module.modules():
                if isinstance(layer, (nn.Dropout, nn.BatchNorm2d)):
                    layer.train()
                if isinstance(layer, nn.BatchNorm2d):
                    # batch statistics are used, but the stored running ones must not drift
                    layer.momentum = 0.0
        return ColourStrength(module, settings.colour) if settings.colour != 1 else module

    def architecture(self, settings):
        arch = super().architecture(settings)
        if settings.gray_input:
            arch.params["input_nc"], arch.channels = 1, (1, 3)
        return arch

    def recipe(self, generator, arch, settings, config, device):
        return Pix2PixRecipe(generator, arch, settings, config)


class ColourStrength(nn.Module):
    """A network whose RGB result has its colour, the differences from its own luma, scaled by
    ``factor``. Luma's weights add up to one, so this holds in the network's value range, and the
    luma a colouriser's result takes from its input is left as it is."""

    def __init__(self, network: nn.Module, factor: float):
        super().__init__()
        self.network, self.factor = network, factor
        # itself in eval mode, without touching the network's layers (sampling=train keeps some training)
        self.training = False
        self.register_buffer("luma", torch.tensor(LUMA).view(1, 3, 1, 1), persistent=False)

    def forward(self, x):
        y = self.network(x)
        luma = (y * self.luma.to(y.dtype)).sum(1, keepdim=True)
        return luma + self.factor * (y - luma)


class Pix2PixRecipe(Recipe):
    def __init__(self, generator, arch, s: Pix2PixSettings, config):
        super().__init__()
        gan_networks.check_discriminator_input(config.crop_size)
        # the discriminator judges (input, output) pairs: 6 channels, 4 for a colouriser
        self.arch = arch
        discriminator = gan_networks.NLayerDiscriminator(arch.channels[0] + 3, s.ndf, 3, norm=s.norm)
        gan_networks.init_weights(discriminator)
        self.networks = {"G": generator, "D": discriminator}
        betas = (s.beta1, 0.999)
        self.optimizers = {name: adam(net.parameters(), lr=s.lr, betas=betas) for name, net in self.networks.items()}
        self.schedulers = {name: linear_decay(opt, s.lr_constant_steps, s.lr_decay_steps) for name, opt in self.optimizers.items()}
        self.gan = GANLoss(s.gan_mode, s.real_label)
        self.s = s

    def step(self, batch):
        # The original order: the discriminator learns from this batch first, then the
        # generator is trained against the updated discriminator.
        g, d = self.networks["G"], self.networks["D"]
        a, b = self.source(batch)
        fake = g(a)
        set_requires_grad([d], True)
        loss_d = self.gan.discriminator(d(torch.cat([a, b], 1)), d(torch.cat([a, fake.detach()], 1)))
        self.logs = {"D": loss_d.detach()}
        yield "D", loss_d
        set_requires_grad([d], False)
        real_score = d(torch.cat([a, b], 1)) if self.gan.needs_real else None
        gan = self.gan.generator(d(torch.cat([a, fake], 1)), real_score)
        pixel = l1 = F.l1_loss(fake, b) * self.s.lambda_l1
        self.logs.update(G_gan=gan.detach(), G_l1=l1.detach())
        if self.s.lambda_l2:
            l2 = F.mse_loss(fake, b) * self.s.lambda_l2
            pixel = pixel + l2
            self.logs["G_l2"] = l2.detach()
        yield "G", gan + pixel
        set_requires_grad([d], True)

    def source(self, batch):
        # loaders give RGB; a colouriser sees their luma, as it does when it translates
        return self.arch.network_input(batch["A"]), batch["B"]
