"""Super-resolution and restoration: RRDBNet (ESRGAN, Real-ESRGAN) and Real-ESRGAN's compact
SRVGGNet, written here for training, and every other network spandrel knows (HAT, DAT, SwinIR,
SPAN, ...), read and run through spandrel."""

from dataclasses import dataclass

import torch.nn.functional as F

from translator import Architecture, Family, Task, TranslatorError, hookimpl, setting
from translator.losses import GAN_MODES, GANLoss, PerceptualLoss
from translator.training import Recipe, adam, halving, set_requires_grad

from . import gan_networks, spandrel_networks, sr_networks


@hookimpl
def register_families(register):
    register(ESRGAN())


@dataclass
class ESRGANSettings:
    arch: str = setting(
        "rrdbnet",
        "network of a new model: rrdbnet (ESRGAN), srvgg (compact), or one of spandrel's at its published size "
        "(span, realplksr, omnisr, swinir, hat, dat; x2 or x4)",
        choices=("rrdbnet", "srvgg", *spandrel_networks.FRESH),
    )
    scale: int = setting(4, "upscaling factor of a new model", choices=(1, 2, 4))
    nf: int = setting(64, "feature channels (rrdbnet, srvgg)", low=1)
    nb: int = setting(23, "RRDB blocks (rrdbnet)", low=1)
    gc: int = setting(32, "growth channels of the dense blocks (rrdbnet)", low=1)
    num_conv: int = setting(32, "body convolutions (srvgg)", low=0)
    lr: float = setting(2e-4, "Adam learning rate of the generator", low=0.0)
    lr_halve_every: int = setting(200_000, "steps between halvings of the learning rate", low=1)
    pixel_weight: float = setting(1.0, "weight of the L1 loss against the high-resolution image", low=0.0)
    perceptual_weight: float = setting(0.0, "weight of the VGG19 perceptual loss (needs torchvision's VGG19 weights file)", low=0.0)
    vgg_weights: str = setting("", "path of vgg19-dcbb9e9d.pth (default: torch hub's cache)", file=True)
    gan_weight: float = setting(0.0, "weight of the adversarial loss (0: no discriminator, PSNR-oriented training)", low=0.0)
    gan_mode: str = setting("ragan", "adversarial objective (ragan: ESRGAN's relativistic average GAN)", choices=GAN_MODES)
    ema_decay: float = setting(0.999, "decay of the generator's exponential moving average, which is what gets exported (0: off)", low=0.0, high=0.99999)
    denoise: float = setting(
        1.0,
        "realesr-general-x4v3 only: how strongly it denoises, from 1 (as published) to 0 (as little as realesr-general-wdn-x4v3, "
        "whose weights are blended in, as Real-ESRGAN's --denoise_strength does)",
        low=0.0, high=1.0, translate=True,
    )
    restore: str = setting(
        "auto",
        "compact-sr-x4 only: its restoring network, which smooths JPEG blocks and noise, for pictures that show JPEG's "
        "8x8 blocks (auto), for every picture (always), or never (its sharpening network, for clean pictures)",
        choices=sr_networks.SRVGGPair.CHOICES, translate=True,
    )


class ESRGAN(Family):
    name = "esrgan"
    task = Task.SUPER_RESOLUTION
    description = "super-resolution and restoration: ESRGAN, Real-ESRGAN and its compact models, and every spandrel network (HAT, DAT, SwinIR, SPAN, ...)"
    # this project's own networks: the ones it trains
    own = ("rrdbnet", "srvgg")
    input_range = (0.0, 1.0)
    Settings = ESRGANSettings
    # BasicSR's ESRGAN setup: 128px high-resolution patches, 16 per batch
    train_defaults = {"crop_size": 128, "batch_size": 16}
    # the compact network, as realesr-general-x4v3 is but smaller: 0.06 s a step on two CPU cores
    light_defaults = {"arch": "srvgg", "nf": 32, "num_conv": 8, "batch_size": 4, "crop_size": 96}
    # the catalog's name for the model this project trained and ships, so the family works offline
    default_checkpoint = "compact-sr-x4"

    @property
    def architectures(self):
        return (*self.own, *spandrel_networks.names())

    def licence(self, name):
        return "" if name in self.own else spandrel_networks.licence(name)

    def recognise(self, state_dict):
        # this project's networks first: they train, and its shipped models are theirs
        found = sr_networks.recognise_rrdbnet(state_dict) or sr_networks.recognise_srvgg(state_dict) or sr_networks.recognise_srvgg_pair(state_dict)
        return found or spandrel_networks.recognise(state_dict)

    def prepare(self, module, settings):
        module.eval()
        if settings.denoise < 1:
            _blend_weak_denoise(module, settings.denoise)
        if isinstance(module, sr_networks.SRVGGPair):
            module.choice = settings.restore
        elif settings.restore != "auto":
            raise TranslatorError("restore applies only to models with a restoring and a sharpening network (compact-sr-x4)")
        return module if isinstance(module, (sr_networks.RRDBNet, sr_networks.SRVGGNetCompact, sr_networks.SRVGGPair)) else spandrel_networks.Called(module)

    def canonical_state_dict(self, state_dict, arch):
        return sr_networks.basicsr_keys(state_dict) if arch.name == "rrdbnet" else state_dict

    def build(self, arch):
        if arch.name == "rrdbnet":
            return sr_networks.RRDBNet(**arch.params)
        if arch.name == "srvgg":
            params = {k: v for k, v in arch.params.items() if k != "pair"}
            return sr_networks.SRVGGPair(**params) if arch.params.get("pair") else sr_networks.SRVGGNetCompact(**params)
        return spandrel_networks.build(arch)

    def load(self, state_dict, arch, what):
        if arch.name in self.own:
            return super().load(state_dict, arch, what)
        return spandrel_networks.load(state_dict, what)

    def architecture(self, settings):
        s = settings
        if s.arch in spandrel_networks.FRESH:
            return spandrel_networks.fresh(s.arch, s.scale)
        if s.arch == "srvgg":
            params = {"in_ch": 3, "out_ch": 3, "nf": s.nf, "num_conv": s.num_conv, "upscale": s.scale}
            return Architecture("srvgg", params, scale=s.scale)
        # x2 and x1 fold pixels into channels and keep the two x2 upsampling stages
        unshuffle = 4 // s.scale
        params = {"in_ch": 3, "out_ch": 3, "nf": s.nf, "nb": s.nb, "gc": s.gc, "unshuffle": unshuffle, "upsamples": 2}
        return Architecture("rrdbnet", params, scale=s.scale, multiple=unshuffle)

    def recipe(self, generator, arch, settings, config, device):
        spandrel_networks.trainable(generator, arch.name)
        return ESRGANRecipe(generator, settings, config, device)


# realesr-general-x4v3's companion, which keeps more of the input's noise (and detail)
WEAK_DENOISE = "realesr-general-wdn-x4v3"


def _blend_weak_denoise(module, strength: float) -> None:
    """Real-ESRGAN's deep network interpolation: strength x the model + (1 - strength) x its
    weak-denoise companion, weight by weight."""
    import torch

    from translator.checkpoints import load_checkpoint

    shape = (module.body[0].out_channels, (len(module.body) - 3) // 2, module.upscale) if isinstance(module, sr_networks.SRVGGNetCompact) else None
    if shape != (64, 32, 4):
        raise TranslatorError("denoise applies only to realesr-general-x4v3 (a compact x4 network of 64 features and 32 convolutions)")
    weak = load_checkpoint(WEAK_DENOISE, "esrgan").module.state_dict()
    with torch.no_grad():
        for key, mine in module.state_dict().items():
            mine.mul_(strength).add_(weak[key].to(mine.device), alpha=1 - strength)


class ESRGANRecipe(Recipe):
    """L1 (+ optional VGG perceptual and adversarial terms) on (low, high) resolution pairs, with
    an EMA of the generator, as BasicSR trains ESRGAN and Real-ESRGAN models."""

    def __init__(self, generator, s: ESRGANSettings, config, device):
        super().__init__()
        self.networks = {"G": generator}
        self.optimizers = {"G": adam(generator.parameters(), lr=s.lr, betas=(0.9, 0.99))}
        if s.gan_weight > 0:
            gan_networks.check_discriminator_input(config.crop_size)
            discriminator = gan_networks.NLayerDiscriminator(3, 64, 3, norm="batch")
            gan_networks.init_weights(discriminator)
            self.networks["D"] = discriminator
            self.optimizers["D"] = adam(discriminator.parameters(), lr=s.lr, betas=(0.9, 0.99))
            self.gan = GANLoss(s.gan_mode)
        self.schedulers = {name: halving(opt, s.lr_halve_every) for name, opt in self.optimizers.items()}
        self.perceptual = PerceptualLoss(s.vgg_weights or None).to(device) if s.perceptual_weight > 0 else None
        self.ema_decay = s.ema_decay
        self.s = s

    def step(self, batch):
        s = self.s
        lr, hr = batch["lr"], batch["hr"]
        sr = self.networks["G"](lr)
        loss = F.l1_loss(sr, hr) * s.pixel_weight
        self.logs = {"pixel": loss.detach()}
        if self.perceptual is not None:
            perceptual = self.perceptual(sr.float(), hr.float()) * s.perceptual_weight
            self.logs["perceptual"] = perceptual.detach()
            loss = loss + perceptual
        d = self.networks.get("D")
        if d is not None:
            set_requires_grad([d], False)
            real_score = d(hr) if self.gan.needs_real else None
            gan = self.gan.generator(d(sr), real_score) * s.gan_weight
            self.logs["G_gan"] = gan.detach()
            loss = loss + gan
        yield "G", loss
        if d is not None:
            set_requires_grad([d], True)
            loss_d = self.gan.discriminator(d(hr), d(sr.detach()))
            self.logs["D"] = loss_d.detach()
            yield "D", loss_d

    def source(self, batch):
        return batch["lr"], batch["hr"]
