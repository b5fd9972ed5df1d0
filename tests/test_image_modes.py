"""Every input mode survives translation: channels, alpha, bit depth, orientation.

An SRVGG network with all-zero weights computes exactly the nearest-neighbour upscale of its
input, so what comes out can be predicted to the last bit.
"""

import struct
import zlib

import cv2
import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from tests.helpers import photo, save_pth
from tests.reference_networks import BasicSRSRVGGNetCompact, RefResnetGenerator, randomize
from translator import TranslatorError
from translator.checkpoints import load_checkpoint
from translator.images import check_budget, read_image, write_image
from translator.inference import Engine, Options


def zero_srvgg(tmp_path, scale=2):
    net = BasicSRSRVGGNetCompact(num_feat=4, num_conv=1, upscale=scale)
    for p in net.parameters():
        torch.nn.init.zeros_(p)
    return Engine(load_checkpoint(save_pth(net.state_dict(), tmp_path / "zero.pth"), "esrgan"), options=Options(device="cpu"))


def nearest(array: np.ndarray, scale: int) -> np.ndarray:
    return array.repeat(scale, axis=0).repeat(scale, axis=1)


def roundtrip(engine, source, target):
    write_image(engine.translate(read_image(source)), target)
    return target


@pytest.mark.parametrize(
    "mode, channels",
    [("RGB", 3), ("RGBA", 4), ("L", 1), ("LA", 2)],
)
def test_8_bit_modes_keep_their_channels(tmp_path, mode, channels):
    pixels = np.random.default_rng(1).integers(0, 256, (9, 11, channels), dtype=np.uint8)
    image = Image.fromarray(pixels[..., 0] if channels == 1 else pixels)
    assert image.mode == mode
    image.save(tmp_path / "in.png")
    out = Image.open(roundtrip(zero_srvgg(tmp_path), tmp_path / "in.png", tmp_path / "out.png"))
    assert out.mode == mode and out.size == (22, 18)
    expected = nearest(pixels, 2)
    assert np.array_equal(np.asarray(out).reshape(expected.shape), expected)


def test_palette_with_transparency_becomes_rgba(tmp_path):
    image = Image.fromarray(photo(10, 12)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    image.info["transparency"] = 0
    image.save(tmp_path / "p.png", transparency=0)
    out = Image.open(roundtrip(zero_srvgg(tmp_path), tmp_path / "p.png", tmp_path / "out.png"))
    expected = nearest(np.asarray(Image.open(tmp_path / "p.png").convert("RGBA")), 2)
    assert out.mode == "RGBA" and np.array_equal(np.asarray(out), expected)


def test_palette_and_cmyk_become_rgb(tmp_path):
    engine = zero_srvgg(tmp_path)
    Image.fromarray(photo(10, 12)).convert("P").save(tmp_path / "p.png")
    Image.fromarray(photo(10, 12)).convert("CMYK").save(tmp_path / "c.jpg", quality=95)
    for name in ("p.png", "c.jpg"):
        out = Image.open(roundtrip(engine, tmp_path / name, tmp_path / f"{name}.out.png"))
        expected = nearest(np.asarray(Image.open(tmp_path / name).convert("RGB")), 2)
        assert out.mode == "RGB" and np.array_equal(np.asarray(out), expected)


def test_16_bit_grayscale_stays_16_bit(tmp_path):
    gray = np.random.default_rng(2).integers(0, 65536, (7, 9), dtype=np.uint16)
    Image.fromarray(gray).save(tmp_path / "g16.png")
    roundtrip(zero_srvgg(tmp_path), tmp_path / "g16.png", tmp_path / "out.png")
    out = cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED)
    assert out.dtype == np.uint16 and out.ndim == 2
    assert np.array_equal(out, nearest(gray, 2))


@pytest.mark.parametrize("channels", [3, 4])
def test_16_bit_colour_stays_16_bit(tmp_path, channels):
    rgb = np.random.default_rng(3).integers(0, 65536, (6, 8, channels), dtype=np.uint16)
    order = [2, 1, 0, 3][:channels]
    cv2.imwrite(str(tmp_path / "c16.png"), rgb[..., order])  # an independent 16-bit writer
    roundtrip(zero_srvgg(tmp_path), tmp_path / "c16.png", tmp_path / "out.png")
    out = cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED)
    assert out.dtype == np.uint16 and out.shape == (12, 16, channels)
    assert np.array_equal(out[..., order], nearest(rgb, 2))


def test_16_bit_tiff_colour_is_read_at_full_depth(tmp_path):
    rgb = np.random.default_rng(4).integers(0, 65536, (5, 6, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "c16.tif"), rgb[..., ::-1])
    picture = read_image(tmp_path / "c16.tif")
    assert picture.bits == 16
    assert np.array_equal((picture.rgb * 65535 + 0.5).astype(np.uint16), rgb)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(tmp_path, orientation):
    pixels = photo(6, 10)
    image = Image.fromarray(pixels)
    exif = Image.Exif()
    exif[0x0112] = orientation
    image.save(tmp_path / "o.png", exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.png")).convert("RGB"))
    picture = read_image(tmp_path / "o.png")
    assert np.array_equal((picture.rgb * 255 + 0.5).astype(np.uint8), expected)


def test_alpha_upscaled_by_network_or_bicubic(tmp_path):
    rgba = np.random.default_rng(5).integers(0, 256, (8, 8, 4), dtype=np.uint8)
    Image.fromarray(rgba).save(tmp_path / "a.png")
    net = randomize(BasicSRSRVGGNetCompact(num_feat=4, num_conv=1, upscale=4))
    checkpoint = load_checkpoint(save_pth(net.state_dict(), tmp_path / "n.pth"), "esrgan")
    by_network = Engine(checkpoint, options=Options(device="cpu")).translate(read_image(tmp_path / "a.png"))
    bicubic = Engine(checkpoint, options=Options(device="cpu", alpha="bicubic")).translate(read_image(tmp_path / "a.png"))
    assert by_network.alpha.shape == bicubic.alpha.shape == (32, 32)
    assert not np.allclose(by_network.alpha, bicubic.alpha)


def test_translation_families_make_colour_from_gray_and_keep_alpha(tmp_path):
    net = randomize(RefResnetGenerator(3, 3, ngf=4, n_blocks=1))
    engine = Engine(load_checkpoint(save_pth(net.state_dict(), tmp_path / "g.pth"), "cyclegan"), options=Options(device="cpu"))
    gray_alpha = np.random.default_rng(6).integers(0, 256, (13, 17, 2), dtype=np.uint8)
    Image.fromarray(gray_alpha).save(tmp_path / "la.png")
    out = Image.open(roundtrip(engine, tmp_path / "la.png", tmp_path / "out.png"))
    assert out.mode == "RGBA" and out.size == (17, 13)
    assert np.array_equal(np.asarray(out)[..., 3], gray_alpha[..., 1])


def test_outscale_resizes_the_result(tmp_path):
    Image.fromarray(photo(10, 20)).save(tmp_path / "in.png")
    engine = zero_srvgg(tmp_path, scale=4)
    engine.options.outscale = 2.5
    assert engine.translate(read_image(tmp_path / "in.png")).rgb.shape == (25, 50, 3)


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_decompression_bomb_refused_before_decoding(tmp_path):
    (tmp_path / "bomb.png").write_bytes(_png_header_only(20000, 5000))
    with pytest.raises(TranslatorError, match=r"bomb.png is 20000x5000 \(100 MP\), over the 64 MP limit"):
        read_image(tmp_path / "bomb.png")
    (tmp_path / "huge.png").write_bytes(_png_header_only(60000, 60000))
    with pytest.raises(TranslatorError, match="huge.png"):
        read_image(tmp_path / "huge.png")
    with pytest.raises(TranslatorError, match="over the 1 MP limit"):
        check_budget(2000, 1000, "x.png", max_pixels=1_000_000)


def test_unreadable_images(tmp_path):
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(TranslatorError, match="notes.png is not an image"):
        read_image(tmp_path / "notes.png")
    Image.fromarray(photo(64, 64)).save(tmp_path / "whole.png")
    data = (tmp_path / "whole.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(TranslatorError, match="cannot decode cut.png: truncated or corrupt"):
        read_image(tmp_path / "cut.png")
    with pytest.raises(TranslatorError, match="image not found"):
        read_image(tmp_path / "missing.png")


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_colour_key_transparency_becomes_alpha(tmp_path, mode):
    pixels = photo(6, 8)
    image = Image.fromarray(pixels).convert(mode)
    key = image.getpixel((0, 0))
    image.save(tmp_path / "k.png", transparency=key)
    picture = read_image(tmp_path / "k.png")
    assert picture.alpha is not None and picture.alpha[0, 0] == 0 and picture.grayscale == (mode == "L")
    assert picture.alpha.max() == 1.0


def test_unwritable_output_is_a_clear_error(tmp_path):
    (tmp_path / "afile").write_text("x")
    picture = read_image(_saved(tmp_path))
    with pytest.raises(TranslatorError, match="cannot write"):
        write_image(picture, tmp_path / "afile" / "x.png")


def _saved(tmp_path):
    Image.fromarray(photo(4, 4)).save(tmp_path / "s.png")
    return tmp_path / "s.png"


def test_jpeg_sets_transparency_on_white_and_webp_keeps_it(tmp_path):
    rgb = np.zeros((4, 6, 3), np.float32)  # black
    alpha = np.zeros((4, 6), np.float32)
    alpha[:, 3:] = 1  # the left half transparent
    from translator.images import Picture

    picture = Picture(rgb, alpha)
    with Image.open(write_image(picture, tmp_path / "a.jpg")) as jpeg:
        pixels = np.asarray(jpeg.convert("RGB"), dtype=int)
    assert pixels[:, 0].min() > 240 and pixels[:, 5].max() < 15  # white where it was clear, black where opaque
    with Image.open(write_image(picture, tmp_path / "a.webp", quality=100)) as webp:
        assert webp.mode == "RGBA" and (np.asarray(webp)[..., 3] == (alpha * 255).astype(np.uint8)).all()
    with pytest.raises(TranslatorError, match="results are written as JPEG, PNG, WebP"):
        write_image(picture, tmp_path / "a.gif")
