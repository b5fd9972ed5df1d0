"""CycleGAN (Zhu et al. 2017): unpaired translation between two image domains."""

import itertools
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from translator import Task, TranslatorError, hookimpl, setting
from translator.checkpoints import load_checkpoint
from translator.losses import GAN_MODES, GANLoss, ImagePool
from translator.training import Recipe, adam, linear_decay, set_requires_grad

from . import gan_networks


@hookimpl
def register_families(register):
    register(CycleGAN())


@dataclass
class CycleGANSettings:
    netG: str = setting("resnet_9blocks", "generator of a new network", choices=("resnet_9blocks", "resnet_6blocks", "unet_256", "unet_128"))
    ngf: int = setting(64, "filters in the generator's first layer", low=1)
    ndf: int = setting(64, "filters in the discriminator's first layer", low=1)
    norm: str = setting("instance", "normalisation layers of new networks", choices=("instance", "batch"))
    dropout: bool = setting(False, "dropout in the generator's residual blocks")
    gan_mode: str = setting("lsgan", "adversarial objective", choices=GAN_MODES)
    real_label: float = setting(1.0, "discriminator's target for real images (0.9: one-sided label smoothing; vanilla and lsgan only)", low=0.5, high=1.0)
    lambda_a: float = setting(10.0, "weight of the cycle loss A->B->A", low=0.0)
    lambda_b: float = setting(10.0, "weight of the cycle loss B->A->B", low=0.0)
    lambda_identity: float = setting(0.5, "weight of the identity loss, relative to the cycle weights", low=0.0)
    pool_size: int = setting(50, "generated images remembered for the discriminators (0: none)", low=0)
    checkpoint_b: str = setting("", "fine-tuning: the B-to-A generator to start from (file, hf:// or catalog name; --checkpoint is A-to-B)", checkpoint=True)
    lr: float = setting(2e-4, "Adam learning rate", low=0.0)
    lr_constant_steps: int = setting(100_000, "steps at the full learning rate (the original's 100 epochs of horse2zebra)", low=0)
    lr_decay_steps: int = setting(100_000, "steps over which it then falls linearly to zero", low=1)
    beta1: float = setting(0.5, "Adam beta1", low=0.0, high=0.999)


class CycleGAN(gan_networks.GeneratorFamily):
    name = "cyclegan"
    task = Task.UNPAIRED
    description = "unpaired image-to-image translation (horse to zebra, summer to winter, photo to painting)"
    Settings = CycleGANSettings
    # a quarter of the pixels: about 3.5 s a step on two CPU cores instead of 16
    light_defaults = {"load_size": 143, "crop_size": 128}

    def recipe(self, generator, arch, settings, config, device):
        g_b = self.build(arch)
        if settings.checkpoint_b:
            loaded = load_checkpoint(settings.checkpoint_b, self.name)
            if loaded.arch.name != arch.name or loaded.arch.params != arch.params:
                raise TranslatorError(f"checkpoint_b is a {loaded.arch.describe()}, but the A-to-B generator is a {arch.describe()}")
            g_b = loaded.module
        return CycleGANRecipe(generator, g_b, settings, config)


class CycleGANRecipe(Recipe):
    """G_A: A->B, G_B: B->A; D_A judges domain B, D_B domain A (the original's naming)."""

    def __init__(self, g_a, g_b, s: CycleGANSettings, config):
        super().__init__()
        gan_networks.check_discriminator_input(config.crop_size)
        d_a = gan_networks.NLayerDiscriminator(3, s.ndf, 3, norm=s.norm)
        d_b = gan_networks.NLayerDiscriminator(3, s.ndf, 3, norm=s.norm)
        for net in (d_a, d_b):
            gan_networks.init_weights(net)
        self.networks = {"G_A": g_a, "G_B": g_b, "D_A": d_a, "D_B": d_b}
        betas = (s.beta1, 0.999)
        self.optimizers = {
            "G": adam(itertools.chain(g_a.parameters(), g_b.parameters()), lr=s.lr, betas=betas),
            "D": adam(itertools.chain(d_a.parameters(), d_b.parameters()), lr=s.lr, betas=betas),
        }
        self.schedulers = {name: linear_decay(opt, s.lr_constant_steps, s.lr_decay_steps) for name, opt in self.optimizers.items()}
        self.exports = {"generator": "G_A", "generator_BA": "G_B"}
        self.gan = GANLoss(s.gan_mode, s.real_label)
        self.pools = {"A": ImagePool(s.pool_size), "B": ImagePool(s.pool_size)}
        self.s = s

    def step(self, batch):
        s, n = self.s, self.networks
        a, b = batch["A"], batch["B"]
        fake_b, fake_a = n["G_A"](a), n["G_B"](b)
        rec_a, rec_b = n["G_B"](fake_b), n["G_A"](fake_a)
        set_requires_grad([n["D_A"], n["D_B"]], False)
        real_a_score = n["D_B"](a) if self.gan.needs_real else None
        real_b_score = n["D_A"](b) if self.gan.needs_real else None
        gan = self.gan.generator(n["D_A"](fake_b), real_b_score) + self.gan.generator(n["D_B"](fake_a), real_a_score)
        cycle = F.l1_loss(rec_a, a) * s.lambda_a + F.l1_loss(rec_b, b) * s.lambda_b
        identity = torch.zeros((), device=a.device)
        if s.lambda_identity > 0:
            identity = (F.l1_loss(n["G_A"](b), b) * s.lambda_b + F.l1_loss(n["G_B"](a), a) * s.lambda_a) * s.lambda_identity
        self.logs = {"G_gan": gan.detach(), "cycle": cycle.detach(), "identity": identity.detach()}
        yield "G", gan + cycle + identity
        set_requires_grad([n["D_A"], n["D_B"]], True)
        old_b, old_a = self.pools["B"].query(fake_b), self.pools["A"].query(fake_a)
        loss_d = self.gan.discriminator(n["D_A"](b), n["D_A"](old_b)) + self.gan.discriminator(n["D_B"](a), n["D_B"](old_a))
        self.logs["D"] = loss_d.detach()
        yield "D", loss_d

    def source(self, batch):
        return batch["A"], None

    def extra_state(self):
        return {name: pool.state_dict() for name, pool in self.pools.items()}

    def load_extra_state(self, state, device):
        for name, pool in self.pools.items():
            pool.load_state_dict(state[name], device)
