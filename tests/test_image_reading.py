"""Reading untrusted image files: regular files only, a pixel limit checked on the header,
every Pillow mode scaled (not clipped) to 8-bit RGB, and an explicit transparency policy."""

import os
import time
import warnings

import numpy as np
import pytest
from PIL import Image

from file_faults import make_fifo, no_hang, photo, png_declaring, save
from shiftlpips_jax._src import images
from shiftlpips_jax._src.errors import InputError, PathNotFoundError, ShiftLPIPSError


def _camera() -> np.ndarray:
    import skimage.data
    return np.asarray(skimage.data.camera())[:128, :160]  # real 8-bit greyscale photo


def test_16bit_greyscale_png_is_scaled_not_clipped(tmp_path):
    grey = _camera()
    path8 = save(tmp_path / "g8.png", grey)
    path16 = tmp_path / "g16.png"
    Image.fromarray(grey.astype(np.uint16) * 257).save(path16)   # the same photo, 16-bit
    assert Image.open(path16).mode == "I;16"
    got = images.load_rgb(str(path16))
    np.testing.assert_array_equal(got, images.load_rgb(path8))
    np.testing.assert_array_equal(got[..., 0], grey)
    # Values that are not multiples of 257 round to the nearest 8-bit level.
    odd = np.array([[0, 128, 129, 385, 65535, 65407]], np.uint16)
    Image.fromarray(odd).save(tmp_path / "odd.png")
    np.testing.assert_array_equal(images.load_rgb(str(tmp_path / "odd.png"))[0, :, 0],
                                  np.rint(odd[0] / 257.0))


def test_16bit_ppm_tiff_and_float_tiff(tmp_path):
    grey = _camera()
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "g.ppm")   # opens as mode I
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "g.tif")   # I;16
    Image.fromarray(grey.astype(np.float32) / 255.0).save(tmp_path / "f.tif")  # F in [0, 1]
    assert Image.open(tmp_path / "g.ppm").mode == "I"
    assert Image.open(tmp_path / "f.tif").mode == "F"
    for name in ("g.ppm", "g.tif", "f.tif"):
        np.testing.assert_array_equal(images.load_rgb(str(tmp_path / name))[..., 1], grey,
                                      err_msg=name)
    Image.fromarray(grey.astype(np.float32)).save(tmp_path / "f255.tif")  # F in [0, 255]
    with pytest.raises(InputError, match=r"float image .*f255.tif.*expected \[0, 1\]"):
        images.load_rgb(str(tmp_path / "f255.tif"))


def test_palette_greyscale_la_and_cmyk(tmp_path):
    rgb = photo(1)
    pal = Image.fromarray(rgb).quantize(64)
    pal.save(tmp_path / "p.png")
    lut = np.array(pal.getpalette(), np.uint8).reshape(-1, 3)
    np.testing.assert_array_equal(images.load_rgb(str(tmp_path / "p.png")),
                                  lut[np.asarray(pal)])
    grey = _camera()
    save(tmp_path / "l.png", grey)
    np.testing.assert_array_equal(images.load_rgb(str(tmp_path / "l.png")),
                                  np.repeat(grey[..., None], 3, -1))
    la = np.stack([grey, np.full_like(grey, 255)], -1)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(images.load_rgb(str(tmp_path / "la.png"))[..., 2], grey)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "c.tif")
    got = images.load_rgb(str(tmp_path / "c.tif")).astype(int)
    assert np.abs(got - rgb).max() <= 1   # Pillow's CMYK round trip


def _rgba(tmp_path):
    rgb = photo(2)
    a = np.full(rgb.shape[:2], 255, np.uint8)
    a[:16, :16] = 0          # a transparent corner
    a[16:20, :16] = 128      # and a half-transparent band
    path = save(tmp_path / "rgba.png", np.dstack([rgb, a]))
    return path, rgb, a


def test_alpha_policies(tmp_path):
    path, rgb, a = _rgba(tmp_path)
    with pytest.warns(images.TransparencyWarning, match=r"rgba.png: 320 of 4096 pixels"):
        np.testing.assert_array_equal(images.load_rgb(path), rgb)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(images.load_rgb(path, alpha="ignore"), rgb)
    w = a[..., None] / 255.0
    np.testing.assert_array_equal(images.load_rgb(path, alpha="composite-white"),
                                  np.rint(rgb * w + 255 * (1 - w)).astype(np.uint8))
    black = images.load_rgb(path, alpha="composite-black")
    assert (black[:16, :16] == 0).all() and (black[20:] == rgb[20:]).all()
    with pytest.raises(InputError, match="320 of 4096 pixels not fully opaque.*--alpha"):
        images.load_rgb(path, alpha="error")
    with pytest.raises(InputError, match="alpha must be one of"):
        images.load_rgb(path, alpha="drop")
    # An RGBA file that is fully opaque reads silently under every policy.
    opaque = save(tmp_path / "opaque.png", np.dstack([rgb, np.full_like(a, 255)]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(images.load_rgb(opaque, alpha="error"), rgb)


def test_palette_transparency_follows_the_policy(tmp_path):
    rgb = photo(3)
    pal = Image.fromarray(rgb).quantize(16)
    pal.save(tmp_path / "pt.png", transparency=0)
    with pytest.raises(InputError, match="not fully opaque"):
        images.load_rgb(str(tmp_path / "pt.png"), alpha="error")


def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = make_fifo(tmp_path / "pipe.png")
    with no_hang([fifo]):
        with pytest.raises(InputError, match=r"pipe.png is a FIFO \(named pipe\), not a regular"):
            images.load_rgb(fifo)
        with pytest.raises(InputError, match="FIFO"):
            images.image_size(fifo)
        with pytest.raises(InputError, match="FIFO"):
            images.open_regular(fifo)


def test_device_directory_and_missing_paths(tmp_path):
    with pytest.raises(InputError, match="character device"):
        images.load_rgb("/dev/zero")
    with pytest.raises(InputError, match="a directory"):
        images.load_rgb(str(tmp_path))
    with pytest.raises(PathNotFoundError, match="image not found"):
        images.load_rgb(str(tmp_path / "none.png"))
    os.symlink(tmp_path / "gone.png", tmp_path / "dangling.png")
    with pytest.raises(FileNotFoundError, match="broken symbolic link"):
        images.load_rgb(str(tmp_path / "dangling.png"))
    os.symlink("/dev/zero", tmp_path / "zero.png")          # a link to a device
    with pytest.raises(InputError, match="character device"):
        images.load_rgb(str(tmp_path / "zero.png"))


def test_pixel_limit_is_checked_on_the_header(tmp_path):
    big = tmp_path / "big.png"
    size = png_declaring(big, 9000, 9000)               # a valid 9000x9000 PNG
    assert size < 300_000
    t0 = time.perf_counter()
    with pytest.raises(InputError, match=r"9000x9000 = 81,000,000 pixels, over the limit of "
                                         r"16,777,216 .*--max-pixels 81000000"):
        images.load_rgb(str(big))
    assert time.perf_counter() - t0 < 2.0               # refused before decoding
    # The header alone decides: a file that declares the size but holds 3 rows is refused the
    # same way (decoding it would have failed as truncated instead).
    png_declaring(tmp_path / "short.png", 9000, 9000, rows=3)
    with pytest.raises(InputError, match="over the limit"):
        images.load_rgb(str(tmp_path / "short.png"))
    # The option raises the limit.
    png_declaring(tmp_path / "mid.png", 1200, 1000)
    with pytest.raises(InputError, match="1200x1000"):
        images.load_rgb(str(tmp_path / "mid.png"), max_pixels=1_000_000)
    assert images.load_rgb(str(tmp_path / "mid.png"), max_pixels=1_200_000).shape == \
        (1000, 1200, 3)
    with pytest.raises(InputError, match="max_pixels must be a positive int"):
        images.load_rgb(str(tmp_path / "mid.png"), max_pixels=0)


def test_decompression_bomb_is_a_clear_error(tmp_path):
    bomb = tmp_path / "bomb.png"
    size = png_declaring(bomb, 14000, 14000)            # 196 Mpx > Pillow's bomb limit
    assert size < 400_000
    with pytest.raises(Image.DecompressionBombError):
        Image.open(bomb)                                # what a bare Pillow call does
    with pytest.raises(InputError, match="bomb.png"):
        images.load_rgb(str(bomb), max_pixels=10 ** 9)
    with pytest.raises(InputError, match=r"196000000 pixels.*limit here is 16,777,216"):
        images.load_rgb(str(bomb))


def test_formats_outside_the_allow_list_are_not_parsed(tmp_path):
    # Pillow would hand an EPS file to Ghostscript; ours refuses it as not an image.
    eps = tmp_path / "x.png"
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    with pytest.raises(InputError, match="cannot read image .*x.png") as err:
        images.load_rgb(str(eps))
    assert isinstance(err.value, ShiftLPIPSError) and isinstance(err.value, ValueError)


def test_truncated_and_garbage_files(tmp_path):
    good = save(tmp_path / "good.jpg", photo(4), quality=90)
    data = open(good, "rb").read()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 3])
    with pytest.raises(InputError, match="cut.jpg"):
        images.load_rgb(str(tmp_path / "cut.jpg"))
    (tmp_path / "junk.png").write_bytes(os.urandom(256))
    with pytest.raises(InputError, match="junk.png"):
        images.load_rgb(str(tmp_path / "junk.png"))
