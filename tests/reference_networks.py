"""Independent definitions of the published networks, written the way the original
repositories lay them out, to produce state dicts with the published key names.

They deliberately share no code with ``plugins/``: a test that loads their weights through
the project and compares outputs checks our layouts against the originals, not against
ourselves.
"""

import torch
import torch.nn.functional as F
from torch import nn

# ---- junyanz/pytorch-CycleGAN-and-pix2pix ----


def _norm(kind):
    if kind == "batch":
        return lambda c: nn.BatchNorm2d(c, affine=True, track_running_stats=True)
    return lambda c: nn.InstanceNorm2d(c, affine=False, track_running_stats=False)


class RefResnetBlock(nn.Module):
    def __init__(self, dim, norm, use_dropout, use_bias):
        super().__init__()
        block = []
        block += [nn.ReflectionPad2d(1)]
        block += [nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=use_bias), norm(dim), nn.ReLU(True)]
        if use_dropout:
            block += [nn.Dropout(0.5)]
        block += [nn.ReflectionPad2d(1)]
        block += [nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=use_bias), norm(dim)]
        self.conv_block = nn.Sequential(*block)

    def forward(self, x):
        out = x + self.conv_block(x)
        return out


class RefResnetGenerator(nn.Module):
    def __init__(self, input_nc, output_nc, ngf=64, norm="instance", use_dropout=False, n_blocks=6):
        super().__init__()
        norm_layer = _norm(norm)
        use_bias = norm == "instance"
        model = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, kernel_size=7, padding=0, bias=use_bias), norm_layer(ngf), nn.ReLU(True)]
        n_downsampling = 2
        for i in range(n_downsampling):
            mult = 2**i
            model += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, kernel_size=3, stride=2, padding=1, bias=use_bias),
                norm_layer(ngf * mult * 2),
                nn.ReLU(True),
            ]
        mult = 2**n_downsampling
        for i in range(n_blocks):
            model += [RefResnetBlock(ngf * mult, norm_layer, use_dropout, use_bias)]
        for i in range(n_downsampling):
            mult = 2 ** (n_downsampling - i)
            model += [
                nn.ConvTranspose2d(ngf * mult, int(ngf * mult / 2), kernel_size=3, stride=2, padding=1, output_padding=1, bias=use_bias),
                norm_layer(int(ngf * mult / 2)),
                nn.ReLU(True),
            ]
        model += [nn.ReflectionPad2d(3)]
        model += [nn.Conv2d(ngf, output_nc, kernel_size=7, padding=0)]
        model += [nn.Tanh()]
        self.model = nn.Sequential(*model)

    def forward(self, input):
        return self.model(input)


class RefUnetBlock(nn.Module):
    def __init__(self, outer_nc, inner_nc, input_nc=None, submodule=None, outermost=False, innermost=False, norm_layer=None, use_dropout=False, use_bias=False):
        super().__init__()
        self.outermost = outermost
        if input_nc is None:
            input_nc = outer_nc
        downconv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=use_bias)
        downrelu = nn.LeakyReLU(0.2, True)
        downnorm = norm_layer(inner_nc)
        uprelu = nn.ReLU(True)
        upnorm = norm_layer(outer_nc)
        if outermost:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1)
            model = [downconv] + [submodule] + [uprelu, upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(inner_nc, outer_nc, kernel_size=4, stride=2, padding=1, bias=use_bias)
            model = [downrelu, downconv] + [uprelu, upconv, upnorm]
        else:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1, bias=use_bias)
            model = [downrelu, downconv, downnorm] + [submodule] + [uprelu, upconv, upnorm]
            if use_dropout:
                model = model + [nn.Dropout(0.5)]
        self.model = nn.Sequential(*model)

    def forward(self, x):
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class RefUnetGenerator(nn.Module):
    def __init__(self, input_nc, output_nc, num_downs, ngf=64, norm="batch", use_dropout=False):
        super().__init__()
        norm_layer = _norm(norm)
        kw = {"norm_layer": norm_layer, "use_bias": norm == "instance"}
        unet_block = RefUnetBlock(ngf * 8, ngf * 8, input_nc=None, submodule=None, innermost=True, **kw)
        for i in range(num_downs - 5):
            unet_block = RefUnetBlock(ngf * 8, ngf * 8, input_nc=None, submodule=unet_block, use_dropout=use_dropout, **kw)
        unet_block = RefUnetBlock(ngf * 4, ngf * 8, input_nc=None, submodule=unet_block, **kw)
        unet_block = RefUnetBlock(ngf * 2, ngf * 4, input_nc=None, submodule=unet_block, **kw)
        unet_block = RefUnetBlock(ngf, ngf * 2, input_nc=None, submodule=unet_block, **kw)
        self.model = RefUnetBlock(output_nc, ngf, input_nc=input_nc, submodule=unet_block, outermost=True, **kw)

    def forward(self, input):
        return self.model(input)


class RefPatchDiscriminator(nn.Module):
    def __init__(self, input_nc, ndf=64, n_layers=3):
        super().__init__()
        sequence = [nn.Conv2d(input_nc, ndf, kernel_size=4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        nf_mult = 1
        for n in range(1, n_layers):
            nf_mult_prev = nf_mult
            nf_mult = min(2**n, 8)
            sequence += [nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * nf_mult), nn.LeakyReLU(0.2, True)]
        nf_mult_prev = nf_mult
        nf_mult = min(2**n_layers, 8)
        sequence += [nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, 4, 1, 1, bias=False), nn.BatchNorm2d(ndf * nf_mult), nn.LeakyReLU(0.2, True)]
        sequence += [nn.Conv2d(ndf * nf_mult, 1, kernel_size=4, stride=1, padding=1)]
        self.model = nn.Sequential(*sequence)


# ---- xinntao/ESRGAN, old architecture (architecture.py, "model.1.sub" keys) ----


def _conv_block(in_nc, out_nc, act=True):
    layers = [nn.Conv2d(in_nc, out_nc, 3, 1, 1, bias=True)]
    if act:
        layers.append(nn.LeakyReLU(0.2, True))
    return nn.Sequential(*layers)


class OldRDB(nn.Module):
    def __init__(self, nc, gc):
        super().__init__()
        self.conv1 = _conv_block(nc, gc)
        self.conv2 = _conv_block(nc + gc, gc)
        self.conv3 = _conv_block(nc + 2 * gc, gc)
        self.conv4 = _conv_block(nc + 3 * gc, gc)
        self.conv5 = _conv_block(nc + 4 * gc, nc, act=False)

    def forward(self, x):
        x1 = self.conv1(x)
        x2 = self.conv2(torch.cat((x, x1), 1))
        x3 = self.conv3(torch.cat((x, x1, x2), 1))
        x4 = self.conv4(torch.cat((x, x1, x2, x3), 1))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5.mul(0.2) + x


class OldRRDB(nn.Module):
    def __init__(self, nc, gc):
        super().__init__()
        self.RDB1, self.RDB2, self.RDB3 = OldRDB(nc, gc), OldRDB(nc, gc), OldRDB(nc, gc)

    def forward(self, x):
        return self.RDB3(self.RDB2(self.RDB1(x))).mul(0.2) + x


class ShortcutBlock(nn.Module):
    def __init__(self, submodule):
        super().__init__()
        self.sub = submodule

    def forward(self, x):
        return x + self.sub(x)


class OldRRDBNet(nn.Module):
    def __init__(self, in_nc=3, out_nc=3, nf=64, nb=23, gc=32, upscale=4):
        super().__init__()
        n_upscale = {2: 1, 4: 2, 8: 3}[upscale]
        fea_conv = nn.Conv2d(in_nc, nf, 3, 1, 1)
        rb_blocks = [OldRRDB(nf, gc) for _ in range(nb)]
        lr_conv = nn.Conv2d(nf, nf, 3, 1, 1)
        upsampler = []
        for _ in range(n_upscale):
            upsampler += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(nf, nf, 3, 1, 1), nn.LeakyReLU(0.2, True)]
        hr_conv0 = nn.Conv2d(nf, nf, 3, 1, 1)
        hr_conv1 = nn.Conv2d(nf, out_nc, 3, 1, 1)
        self.model = nn.Sequential(
            fea_conv, ShortcutBlock(nn.Sequential(*rb_blocks, lr_conv)), *upsampler, hr_conv0, nn.LeakyReLU(0.2, True), hr_conv1
        )

    def forward(self, x):
        return self.model(x)


# ---- xinntao/ESRGAN "new architecture" and xinntao/BasicSR (Real-ESRGAN) ----


class DenseBlock5C(nn.Module):
    def __init__(self, nf, gc):
        super().__init__()
        self.conv1 = nn.Conv2d(nf, gc, 3, 1, 1)
        self.conv2 = nn.Conv2d(nf + gc, gc, 3, 1, 1)
        self.conv3 = nn.Conv2d(nf + 2 * gc, gc, 3, 1, 1)
        self.conv4 = nn.Conv2d(nf + 3 * gc, gc, 3, 1, 1)
        self.conv5 = nn.Conv2d(nf + 4 * gc, nf, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x):
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class NewArchRRDB(nn.Module):
    def __init__(self, nf, gc):
        super().__init__()
        self.RDB1, self.RDB2, self.RDB3 = DenseBlock5C(nf, gc), DenseBlock5C(nf, gc), DenseBlock5C(nf, gc)

    def forward(self, x):
        return self.RDB3(self.RDB2(self.RDB1(x))) * 0.2 + x


class NewArchRRDBNet(nn.Module):
    def __init__(self, in_nc=3, out_nc=3, nf=64, nb=23, gc=32):
        super().__init__()
        self.conv_first = nn.Conv2d(in_nc, nf, 3, 1, 1)
        self.RRDB_trunk = nn.Sequential(*[NewArchRRDB(nf, gc) for _ in range(nb)])
        self.trunk_conv = nn.Conv2d(nf, nf, 3, 1, 1)
        self.upconv1 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.upconv2 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.HRconv = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_last = nn.Conv2d(nf, out_nc, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x):
        fea = self.conv_first(x)
        fea = fea + self.trunk_conv(self.RRDB_trunk(fea))
        fea = self.lrelu(self.upconv1(F.interpolate(fea, scale_factor=2, mode="nearest")))
        fea = self.lrelu(self.upconv2(F.interpolate(fea, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.HRconv(fea)))


class BasicSRRDB(nn.Module):
    def __init__(self, num_feat, num_grow_ch):
        super().__init__()
        self.rdb1 = DenseBlock5C(num_feat, num_grow_ch)
        self.rdb2 = DenseBlock5C(num_feat, num_grow_ch)
        self.rdb3 = DenseBlock5C(num_feat, num_grow_ch)

    def forward(self, x):
        out = self.rdb1(x)
        out = self.rdb2(out)
        out = self.rdb3(out)
        return out * 0.2 + x


class BasicSRRRDBNet(nn.Module):
    def __init__(self, num_in_ch=3, num_out_ch=3, scale=4, num_feat=64, num_block=23, num_grow_ch=32):
        super().__init__()
        self.scale = scale
        if scale == 2:
            num_in_ch = num_in_ch * 4
        elif scale == 1:
            num_in_ch = num_in_ch * 16
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[BasicSRRDB(num_feat, num_grow_ch) for _ in range(num_block)])
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x):
        if self.scale == 2:
            feat = F.pixel_unshuffle(x, 2)
        elif self.scale == 1:
            feat = F.pixel_unshuffle(x, 4)
        else:
            feat = x
        feat = self.conv_first(feat)
        body_feat = self.conv_body(self.body(feat))
        feat = feat + body_feat
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))


class BasicSRSRVGGNetCompact(nn.Module):
    def __init__(self, num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=16, upscale=4):
        super().__init__()
        self.upscale = upscale
        self.body = nn.ModuleList()
        self.body.append(nn.Conv2d(num_in_ch, num_feat, 3, 1, 1))
        self.body.append(nn.PReLU(num_parameters=num_feat))
        for _ in range(num_conv):
            self.body.append(nn.Conv2d(num_feat, num_feat, 3, 1, 1))
            self.body.append(nn.PReLU(num_parameters=num_feat))
        self.body.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.upsampler = nn.PixelShuffle(upscale)

    def forward(self, x):
        out = x
        for i in range(0, len(self.body)):
            out = self.body[i](out)
        out = self.upsampler(out)
        base = F.interpolate(x, scale_factor=self.upscale, mode="nearest")
        return out + base


# ---- the Hugging Face community's layouts, as the HugGAN sprint's code (after PyTorch-GAN) writes them ----


class HugganUNetDown(nn.Module):
    def __init__(self, in_size, out_size, normalize=True, dropout=0.0):
        super().__init__()
        layers = [nn.Conv2d(in_size, out_size, 4, 2, 1, bias=False)]
        if normalize:
            layers.append(nn.InstanceNorm2d(out_size))
        layers.append(nn.LeakyReLU(0.2))
        if dropout:
            layers.append(nn.Dropout(dropout))
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class HugganUNetUp(nn.Module):
    def __init__(self, in_size, out_size, dropout=0.0):
        super().__init__()
        layers = [nn.ConvTranspose2d(in_size, out_size, 4, 2, 1, bias=False), nn.InstanceNorm2d(out_size), nn.ReLU(inplace=True)]
        if dropout:
            layers.append(nn.Dropout(dropout))
        self.model = nn.Sequential(*layers)

    def forward(self, x, skip_input):
        x = self.model(x)
        return torch.cat((x, skip_input), 1)


class HugganGeneratorUNet(nn.Module):
    def __init__(self, in_channels=3, out_channels=3, width=64):
        # width=64 is the sprint's network; smaller widths keep the same layout for quick tests
        super().__init__()

        def c(n):
            return n * width // 64

        self.down1 = HugganUNetDown(in_channels, c(64), normalize=False)
        self.down2 = HugganUNetDown(c(64), c(128))
        self.down3 = HugganUNetDown(c(128), c(256))
        self.down4 = HugganUNetDown(c(256), c(512), dropout=0.5)
        self.down5 = HugganUNetDown(c(512), c(512), dropout=0.5)
        self.down6 = HugganUNetDown(c(512), c(512), dropout=0.5)
        self.down7 = HugganUNetDown(c(512), c(512), dropout=0.5)
        self.down8 = HugganUNetDown(c(512), c(512), normalize=False, dropout=0.5)
        self.up1 = HugganUNetUp(c(512), c(512), dropout=0.5)
        self.up2 = HugganUNetUp(c(1024), c(512), dropout=0.5)
        self.up3 = HugganUNetUp(c(1024), c(512), dropout=0.5)
        self.up4 = HugganUNetUp(c(1024), c(512), dropout=0.5)
        self.up5 = HugganUNetUp(c(1024), c(256))
        self.up6 = HugganUNetUp(c(512), c(128))
        self.up7 = HugganUNetUp(c(256), c(64))
        self.final = nn.Sequential(nn.Upsample(scale_factor=2), nn.ZeroPad2d((1, 0, 1, 0)), nn.Conv2d(c(128), out_channels, 4, padding=1), nn.Tanh())

    def forward(self, x):
        d1 = self.down1(x)
        d2 = self.down2(d1)
        d3 = self.down3(d2)
        d4 = self.down4(d3)
        d5 = self.down5(d4)
        d6 = self.down6(d5)
        d7 = self.down7(d6)
        d8 = self.down8(d7)
        u1 = self.up1(d8, d7)
        u2 = self.up2(u1, d6)
        u3 = self.up3(u2, d5)
        u4 = self.up4(u3, d4)
        u5 = self.up5(u4, d3)
        u6 = self.up6(u5, d2)
        u7 = self.up7(u6, d1)
        return self.final(u7)


class HugganResidualBlock(nn.Module):
    def __init__(self, in_features, affine=False):
        super().__init__()
        self.block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(in_features, in_features, 3),
            nn.InstanceNorm2d(in_features, affine=affine),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(in_features, in_features, 3),
            nn.InstanceNorm2d(in_features, affine=affine),
        )

    def forward(self, x):
        return x + self.block(x)


class HugganGeneratorResNet(nn.Module):
    """``transposed`` and ``affine`` give the variant many CycleGAN re-implementations publish."""

    def __init__(self, input_shape=(3, 256, 256), num_residual_blocks=9, affine=False, transposed=False):
        super().__init__()
        channels = input_shape[0]
        out_features = 64
        model = [nn.ReflectionPad2d(channels), nn.Conv2d(channels, out_features, 7), nn.InstanceNorm2d(out_features, affine=affine), nn.ReLU(inplace=True)]
        in_features = out_features
        for _ in range(2):
            out_features *= 2
            model += [nn.Conv2d(in_features, out_features, 3, stride=2, padding=1), nn.InstanceNorm2d(out_features, affine=affine), nn.ReLU(inplace=True)]
            in_features = out_features
        for _ in range(num_residual_blocks):
            model += [HugganResidualBlock(out_features, affine)]
        for _ in range(2):
            out_features //= 2
            if transposed:
                model += [nn.ConvTranspose2d(in_features, out_features, 3, stride=2, padding=1, output_padding=1)]
            else:
                model += [nn.Upsample(scale_factor=2), nn.Conv2d(in_features, out_features, 3, stride=1, padding=1)]
            model += [nn.InstanceNorm2d(out_features, affine=affine), nn.ReLU(inplace=True)]
            in_features = out_features
        model += [nn.ReflectionPad2d(channels), nn.Conv2d(out_features, channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*model)

    def forward(self, x):
        return self.model(x)


def randomize(net: nn.Module, seed: int = 0) -> nn.Module:
    """Give every parameter and norm statistic a non-trivial value, deterministically."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in net.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            elif name.endswith("running_mean"):
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.1)
            else:
                fan = tensor[0].numel() if tensor.ndim > 1 else 1
                tensor.copy_(torch.randn(tensor.shape, generator=generator) / max(fan, 1) ** 0.5)
    return net.eval()
