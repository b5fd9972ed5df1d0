"""Small networks of every architecture in spandrel's main registry, for the tests.

Hyper-parameters are chosen so that spandrel recovers each of them from the weights alone; where its
loader cannot (it assumes a value instead), the case uses the value the loader assumes.
"""

import importlib

import torch

_A = "spandrel.architectures"

# id -> ("<module>:<class>", kwargs). Every case is RGB in and RGB out.
CASES: dict[str, tuple[str, dict]] = {
    "Compact": (f"{_A}.Compact:Compact", {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_conv": 2, "upscale": 2}),
    "SwiftSRGAN": (f"{_A}.SwiftSRGAN:SwiftSRGAN", {"in_channels": 3, "num_channels": 8, "num_blocks": 1, "upscale_factor": 2}),
    # squeeze_factor must not exceed embed_dim (the channel attention would have no channels).
    "HAT": (
        f"{_A}.HAT:HAT",
        {"embed_dim": 16, "depths": [1], "num_heads": [2], "window_size": 4, "compress_ratio": 4, "squeeze_factor": 4,
         "mlp_ratio": 2.0, "upscale": 2, "num_feat": 16},
    ),
    # Window and stripe sizes are not in the weights: for a scale-1 model spandrel assumes window 8,
    # stripe 8x8, anchor down-factor 4 and shifted stripes (for SR it assumes window 32, stripes 64x64).
    "GRL": (
        f"{_A}.GRL:GRL",
        {"embed_dim": 16, "depths": [1], "num_heads_window": [2], "num_heads_stripe": [2], "window_size": 8,
         "stripe_size": [8, 8], "stripe_shift": True, "mlp_ratio": 2.0, "anchor_window_down_factor": 4},
    ),
    # img_size is read from the shifted block's attention mask, hence two blocks and a multiple of the
    # window; a window of 7 would make spandrel assume img_range 255 (the JPEG models).
    "Swin2SR": (
        f"{_A}.Swin2SR:Swin2SR",
        {"img_size": 8, "embed_dim": 16, "depths": [2], "num_heads": [2], "window_size": 4, "mlp_ratio": 2.0,
         "upscale": 2, "upsampler": "pixelshuffledirect"},
    ),
    "SwinIR": (
        f"{_A}.SwinIR:SwinIR",
        {"img_size": 8, "embed_dim": 16, "depths": [2], "num_heads": [2], "window_size": 4, "mlp_ratio": 2.0,
         "upscale": 2, "upsampler": "pixelshuffledirect"},
    ),
    # FAILS build time (~1.1 s) and forward time (~6 s): spandrel's loader hard-codes every GFPGAN
    # hyper-parameter, so only the full 86M-parameter network loads, and it needs 512x512 inputs.
    "GFPGAN": (f"{_A}.GFPGAN:GFPGAN", {}),
    # GroupNorm(32) needs ch to be a multiple of 32; head_size (8) is not in the weights.
    "RestoreFormer": (
        f"{_A}.RestoreFormer:RestoreFormer",
        {"n_embed": 16, "embed_dim": 8, "ch": 32, "ch_mult": [1, 1], "num_res_blocks": 1, "z_channels": 8},
    ),
    # Fixed architecture (~51M parameters): spandrel only reads the channel counts. in_nc = RGB + mask.
    "LaMa": (f"{_A}.LaMa:LaMa", {"in_nc": 4, "out_nc": 3}),
    "OmniSR": (f"{_A}.OmniSR:OmniSR", {"num_feat": 16, "window_size": 4, "up_scale": 2}),
    # head_dim is fixed at 32 and half the channels go to the transformer branch, so dim >= 64
    # (~1.5M parameters, mostly the down/up-sampling convs). Empty levels keep it small.
    "SCUNet": (f"{_A}.SCUNet:SCUNet", {"config": [2, 0, 0, 0, 0, 0, 2], "dim": 64}),
    # ~30M parameters: the quality-factor head has a Linear(512, 512), which fixes nc[3] at 512.
    # nb=1 would collapse the sequentials and lose the ".0." keys spandrel detects FBCNN by.
    "FBCNN": (f"{_A}.FBCNN:FBCNN", {"nc": [8, 16, 32, 512], "nb": 2}),
    # Needs square inputs that are multiples of 128 (the descriptor pads 23 -> 128).
    "Uformer": (
        f"{_A}.Uformer:Uformer",
        {"embed_dim": 8, "depths": [1] * 9, "num_heads": [1] * 9, "win_size": 4, "mlp_ratio": 2.0},
    ),
    "RGT": (f"{_A}.RGT:RGT", {"embed_dim": 16, "depth": [2], "num_heads": [2], "mlp_ratio": 2.0, "split_size": [4, 4]}),
    "DAT": (
        f"{_A}.DAT:DAT",
        {"embed_dim": 16, "depth": [2], "num_heads": [2], "expansion_factor": 2.0, "upsampler": "pixelshuffledirect"},
    ),
    # window_size (16) is not in the weights.
    "CRAFT": (
        f"{_A}.CRAFT:CRAFT",
        {"embed_dim": 16, "depths": [1], "num_heads": [2], "split_size_0": 2, "split_size_1": 4, "upscale": 2},
    ),
    "KBNet": (f"{_A}.KBNet:KBNet_s", {"width": 8, "middle_blk_num": 1, "enc_blk_nums": [1], "dec_blk_nums": [1]}),
    # patch_size (8) is not in the weights.
    "DITN": (f"{_A}.DITN:DITN", {"dim": 12, "ITL_blocks": 1, "SAL_blocks": 1, "upscale": 2}),
    # Scale 4, not 2: at scale 2 the net pixel-unshuffles its input, and spandrel's size requirements
    # do not ask for even sizes, so odd inputs would fail.
    "MMRealSR": (
        f"{_A}.MMRealSR:MMRealSR",
        {"num_in_ch": 3, "num_out_ch": 3, "scale": 4, "num_feat": 8, "num_block": 1, "num_grow_ch": 4,
         "num_feats": [8, 16, 32, 64], "num_blocks": [1, 1, 1, 1]},
    ),
    "SPAN": (f"{_A}.SPAN:SPAN", {"num_in_ch": 3, "num_out_ch": 3, "feature_channels": 8, "upscale": 2}),
    # Fixed architecture (~1.3M parameters); the class picks the scale.
    "RealCUGAN": (f"{_A}.RealCUGAN:UpCunet2x", {"in_channels": 3, "out_channels": 3}),
    "SAFMN": (f"{_A}.SAFMN:SAFMN", {"dim": 8, "n_blocks": 1, "upscaling_factor": 2}),
    "SAFMNBCIE": (f"{_A}.SAFMNBCIE:SAFMNBCIE", {"dim": 8, "n_blocks": 1, "num_layers": 1}),
    # Six blocks are hard-wired (num_modules stays 6); num_head (5) is not in the weights, so nf is a multiple of 5.
    "DCTLSA": (f"{_A}.DCTLSA:DCTLSA", {"nf": 10, "upscale": 2}),
    "FFTformer": (f"{_A}.FFTformer:FFTformer", {"dim": 8, "num_blocks": [1, 1, 1], "num_refinement_blocks": 1}),
    "NAFNet": (f"{_A}.NAFNet:NAFNet", {"width": 8, "enc_blk_nums": [1], "dec_blk_nums": [1]}),
    # Two layers: spandrel detects ATD by keys only a non-last layer has. category_size (256) is a guess
    # of the loader's, so it stays at the default.
    "ATD": (
        f"{_A}.ATD:ATD",
        {"embed_dim": 16, "depths": [2], "num_heads": [2], "window_size": 4, "num_tokens": 8, "convffn_kernel_size": 3,
         "upscale": 2, "upsampler": "pixelshuffledirect"},
    ),
    "MixDehazeNet": (f"{_A}.MixDehazeNet:MixDehazeNet", {"embed_dims": [8, 16, 32, 16, 8], "depths": [1, 1, 1, 1, 1]}),
    # in_nc = RGB + the noise-level map the descriptor adds; nb=2 is the least spandrel detects.
    "DRUNet": (f"{_A}.DRUNet:DRUNet", {"in_nc": 4, "out_nc": 3, "nc": [8, 16, 32, 64], "nb": 2}),
    # nb=4 is the least spandrel detects (it looks for model.8).
    "DnCNN": (f"{_A}.DnCNN:DnCNN", {"in_nc": 3, "out_nc": 3, "nc": 8, "nb": 4}),
    # spandrel assumes 12 heads, so n_feats * patch_dim**2 (8 * 9) must divide by 12.
    "IPT": (f"{_A}.IPT:IPT", {"patch_size": 12, "n_feats": 8, "scale": [2], "num_layers": 1}),
    # spandrel assumes 6 blocks per layer.
    "DRCT": (
        f"{_A}.DRCT:DRCT",
        {"img_size": 8, "embed_dim": 16, "depths": [6], "num_heads": [2], "window_size": 4, "upscale": 2,
         "upsampler": "pixelshuffle", "gc": 8},
    ),
    "ESRGAN": (f"{_A}.ESRGAN:ESRGAN", {"num_filters": 8, "num_blocks": 1, "scale": 2}),
    "PLKSR": (f"{_A}.PLKSR:PLKSR", {"dim": 8, "n_blocks": 1, "upscaling_factor": 2, "kernel_size": 5}),
    "RetinexFormer": (f"{_A}.RetinexFormer:RetinexFormer", {"n_feat": 8, "stage": 1}),
    "HVICIDNet": (f"{_A}.HVICIDNet:HVICIDNet", {"channels": [8, 8, 16, 32], "heads": [1, 1, 2, 4]}),
    "SeemoRe": (
        f"{_A}.SeemoRe:SeemoRe",
        {"scale": 2, "num_experts": 2, "num_layers": 1, "embedding_dim": 8, "global_kernel_size": 5},
    ),
    "MoSR": (f"{_A}.MoSR:MoSR", {"upscale": 2, "n_block": 1, "dim": 16}),
    # The default expansion_factor (2.65625) only round-trips at dim 64; 2.0 does at any dim.
    "MoESR": (
        f"{_A}.MoESR:MoESR",
        {"scale": 2, "dim": 16, "n_blocks": 1, "n_block": 1, "expansion_factor": 2.0, "upsample_dim": 16},
    ),
    "RCAN": (f"{_A}.RCAN:RCAN", {"scale": 2, "n_resgroups": 1, "n_resblocks": 1, "n_feats": 16, "reduction": 4}),
    "FDAT": (
        f"{_A}.FDAT:FDAT",
        {"scale": 2, "embed_dim": 16, "num_groups": 1, "depth_per_group": 1, "num_heads": 2, "window_size": 4,
         "aim_reduction_ratio": 4, "mid_dim": 8, "upsampler_type": "pixelshuffle"},
    ),
    # The scale spandrel reports is style dim_out // dim_in. A single conv kernel would turn off the
    # adaptive convs the forward asserts on. Without full attention spandrel assumes attn_depths of 2,
    # and it assumes skip_connect_scale 0.4.
    "AuraSR": (
        f"{_A}.AuraSR:AuraSR",
        {"dim": 8, "image_size": None, "input_image_size": None, "init_dim": 8,
         "style_network": {"dim_in": 8, "dim_out": 32, "depth": 1}, "up_dim_mults": [1, 1, 1, 1, 1],
         "down_dim_mults": [1, 1, 1], "full_attn": [False] * 5, "self_attn_dim_head": 8, "attn_depths": [2] * 5,
         "mid_attn_depth": 1, "num_conv_kernels": 2, "skip_connect_scale": 0.4},
    ),
}


def build(arch_id: str, seed: int = 0) -> torch.nn.Module:
    """The network of ``arch_id`` with seeded random weights, in eval mode."""
    target, kwargs = CASES[arch_id]
    module_name, class_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    torch.manual_seed(seed)
    model = cls(**kwargs)
    # Many of these nets initialise a layer (often the last conv) to zero, which makes the output
    # constant; nudging every float parameter keeps the output non-trivial.
    with torch.no_grad():
        for p in model.parameters():
            if p.is_floating_point():
                p.add_(torch.randn_like(p) * 0.02)
    return model.eval()
