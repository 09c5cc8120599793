"""imports.media against the shared corpus, file by file as MANIFEST.tsv describes it.

No database: inspect_file is pure Python, and these tests only read the corpus (and write odd files to tmp_path).
"""

import csv
import io
import os
import re
import struct
import zlib
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import xxhash
from PIL import Image, ImageOps

from imports.media import (
    DEFAULT_MAX_PIXELS,
    HOTHASH_VERSION,
    RAW_EXTENSIONS,
    MediaInfo,
    MediaRejected,
    hothash_of,
    inspect_file,
    render_preview,
)
from tests.conftest import CORPUS

pytestmark = pytest.mark.database_independent  # pure media code: the PostgreSQL pass leaves it out

HEX32 = re.compile(r"^[0-9a-f]{32}$")
SOURCES = {"exif:DateTimeOriginal", "exif:DateTimeDigitized", "exif:DateTime", "xmp", "iptc", "mtime"}
UTC = timezone.utc


def manifest_paths() -> list[str]:
    manifest = CORPUS / "MANIFEST.tsv"
    if not manifest.is_file():
        return []
    with manifest.open(newline="") as fh:
        return [row["path"] for row in csv.DictReader(fh, delimiter="\t")]


MANIFEST = manifest_paths()

# What each bad/ file must be rejected as, and a word its reason must contain.
REJECTIONS = {
    "bad/not_image/DSC_0001.cr2": ("not_image", "not a recognised image"),
    "bad/not_image/test_issue_1472.jpg": ("not_image", "not a recognised image"),
    "bad/zero_byte/notjpeg.jpg": ("empty", "zero bytes"),
    "bad/zero_byte/empty.heic": ("empty", "zero bytes"),
    "bad/truncated/truncated_jpeg.jpg": ("truncated", "truncated"),
    "bad/truncated/32d08f4a5eb10332506ebedbb9bc7257.jpg": ("truncated", "truncated"),
    "bad/truncated/truncated_image.png": ("truncated", "truncated"),
    "bad/truncated/truncated_end_chunk.png": ("truncated", "truncated"),
    "bad/corrupt/broken.png": ("corrupt", "PNG"),
    "bad/corrupt/broken_data_stream.png": ("corrupt", "data stream"),
    "bad/corrupt/corrupted.heic": ("corrupt", "HEIF"),
    "bad/corrupt/tiff_tiled_jpeg_oob_read.tif": ("corrupt", "decoder error"),
    "bad/bomb/decompression_bomb.gif": ("bomb", "pixels"),
    "bad/bomb/decompression_bomb.ico": ("bomb", "pixels"),
    "bad/bomb/reallybig.bmp": ("bomb", "pixels"),
    "bad/bomb/png_decompression_dos.png": ("bomb", "too large"),
}
# Files whose RAW preview is missing or unusable (stripped, cut short, or an 8x8 placeholder).
RAW_WITHOUT_PREVIEW = {
    "raw/metadata_only/CanonRaw.cr2",
    "raw/metadata_only/Nikon.nef",
    "raw/metadata_only/DNG.dng",
    "raw/metadata_only/Panasonic.rw2",
    "raw/metadata_only/CanonRaw.cr3",
    "raw/truncated/Canon-R6-pruned.CR3",
    "raw/truncated/fixture-sony-zv-e10.arw",
    "raw/truncated/fixture-Leica-M10.dng",
    "raw/truncated/canon.raw.cr2",
}


def expected_format(rel: str) -> str:
    suffix = Path(rel).suffix.lower()
    if rel.startswith("bad/wrong_extension/") or rel == "jpeg/exif_edge/sugarshack_bad_mpo_header.jpg":
        return "jpeg"
    if suffix in RAW_EXTENSIONS:
        return suffix[1:]
    return {".jpg": "jpeg", ".mpo": "mpo", ".heic": "heic", ".png": "png", ".tif": "tiff", ".tiff": "tiff"}[suffix]


def checksum_of(path: Path) -> str:
    digest = xxhash.xxh3_128()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def inspect(path: Path, **kwargs) -> MediaInfo:
    kwargs.setdefault("mtime_ns", path.stat().st_mtime_ns)
    return inspect_file(path, checksum=checksum_of(path), **kwargs)


def preview_of(info: MediaInfo) -> Image.Image:
    image = Image.open(io.BytesIO(info.hotpreview))
    assert image.format == "JPEG"
    return image.convert("RGB")


def mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    assert a.size == b.size
    return sum(abs(x - y) for x, y in zip(a.tobytes(), b.tobytes())) / (a.width * a.height * 3)


def design_hothash(image: Image.Image) -> str:
    """DESIGN §2's formula, written out independently of imports.media."""
    w, h = image.size
    return xxhash.xxh3_128(
        b"imalink-hothash-v1" + w.to_bytes(2, "big") + h.to_bytes(2, "big") + image.tobytes()
    ).hexdigest()


# --- every corpus file ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rel", [r for r in MANIFEST if r.startswith("bad/") and not r.startswith("bad/wrong_extension/")]
)
def test_it_rejects_bad_files_with_their_reason(corpus, rel):
    code, words = REJECTIONS[rel]
    with pytest.raises(MediaRejected) as caught:
        inspect(corpus / rel)
    exc = caught.value
    assert exc.code == code, exc.message
    assert str(exc) == exc.message
    assert exc.message.startswith(f"{code}: ")
    assert words.lower() in exc.message.lower()


@pytest.mark.parametrize(
    "rel", [r for r in MANIFEST if not r.startswith("bad/") or r.startswith("bad/wrong_extension/")]
)
def test_it_accepts_good_files_with_their_content_format(corpus, rel):
    path = corpus / rel
    checksum = checksum_of(path)
    info = inspect_file(path, checksum=checksum, mtime_ns=path.stat().st_mtime_ns)

    assert info.file_format == expected_format(rel)
    assert info.is_raw == (expected_format(rel) not in {"jpeg", "mpo", "png", "tiff", "heic"})
    assert info.taken_at is not None and info.taken_at.tzinfo is not None
    assert info.taken_at_source in SOURCES
    assert info.camera_make == info.camera_make.strip() and "\x00" not in info.camera_make + info.camera_model
    if not info.is_raw:
        assert info.width > 0 and info.height > 0
    if info.has_hotpreview:
        assert HEX32.match(info.hothash)
        preview = preview_of(info)
        assert max(preview.size) <= 200
        if info.width and info.height and not info.is_raw and min(info.width, info.height) >= 200:
            assert max(preview.size) == 200
    else:
        assert info.is_raw
        assert info.hotpreview is None
        assert info.hothash == "raw:" + checksum


def test_every_bad_file_has_an_expected_reason():
    bad = {r for r in MANIFEST if r.startswith("bad/") and not r.startswith("bad/wrong_extension/")}
    assert bad == set(REJECTIONS)


# --- orientation ----------------------------------------------------------------------------------


def test_eight_landscape_orientations_give_the_same_upright_preview(corpus):
    previews = {n: preview_of(inspect(corpus / f"jpeg/orientation/landscape_{n}.jpg")) for n in range(1, 9)}
    reference = previews[1]
    assert reference.width > reference.height
    # Each file carries its own large digit (1..8), so they differ by about 14; any wrong turn or flip
    # of the same picture differs by more than 45.
    for n, preview in previews.items():
        assert preview.size == reference.size, n
        assert mean_abs_diff(preview, reference) < 20, n
    for method in (Image.Transpose.FLIP_LEFT_RIGHT, Image.Transpose.FLIP_TOP_BOTTOM, Image.Transpose.ROTATE_180):
        assert mean_abs_diff(reference.transpose(method), reference) > 40


def test_eight_f_orientations_give_the_same_upright_preview(corpus):
    previews = {n: preview_of(inspect(corpus / f"jpeg/orientation/f{n}t.jpg")) for n in range(1, 9)}
    reference = previews[1]
    assert reference.height > reference.width
    for n, preview in previews.items():
        assert preview.size == reference.size, n
        assert mean_abs_diff(preview, reference) < 2, n
    for method in (Image.Transpose.FLIP_LEFT_RIGHT, Image.Transpose.FLIP_TOP_BOTTOM, Image.Transpose.ROTATE_180):
        assert mean_abs_diff(reference.transpose(method), reference) > 40


@pytest.mark.parametrize(
    "rel, size",
    [
        ("jpeg/orientation/orientation_rectangle.jpg", (1, 2)),
        ("jpeg/orientation/landscape_6.jpg", (600, 450)),
        ("jpeg/orientation/portrait-orientation-6.jpg", (840, 700)),
        ("jpeg/camera/20250112_171126.JPG", (2688, 4032)),
        ("tiff/g4_orientation_6.tif", (590, 88)),  # stored 88x590; reads upright as a line of text
        ("heic/iphone_7.heic", (3024, 4032)),
        ("heic/iphone_15_pro.heic", (3024, 4032)),
        ("heic/IMG_2682.heic", (4032, 3024)),
    ],
)
def test_dimensions_are_after_orientation(corpus, rel, size):
    info = inspect(corpus / rel)
    assert (info.width, info.height) == size
    preview = preview_of(info)
    assert (preview.width > preview.height) == (size[0] > size[1])


def test_orientation_rectangle_preview_is_one_by_two(corpus):
    assert preview_of(inspect(corpus / "jpeg/orientation/orientation_rectangle.jpg")).size == (1, 2)


def test_heic_without_irot_honours_its_original_orientation(corpus):
    # pillow-heif decodes iphone_7.heic sideways (4032x3024) and keeps EXIF's 6 in original_orientation.
    with Image.open(corpus / "heic/iphone_7.heic") as raw_decode:
        assert raw_decode.size == (4032, 3024)
        assert raw_decode.info["original_orientation"] == 6
    assert preview_of(inspect(corpus / "heic/iphone_7.heic")).size == (150, 200)
    assert preview_of(inspect(corpus / "heic/iphone_15_pro.heic")).size == (150, 200)


# --- metadata -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rel, taken_at, source",
    [
        (
            "jpeg/camera/20240427_234934.JPG",
            datetime(2024, 4, 27, 23, 49, 34, tzinfo=timezone(timedelta(hours=8))),
            "exif:DateTimeOriginal",
        ),
        (
            "jpeg/camera/20250112_171126.JPG",
            datetime(2025, 1, 12, 17, 11, 26, tzinfo=timezone(timedelta(hours=4))),
            "exif:DateTimeOriginal",
        ),
        ("jpeg/camera/DSCN0010.jpg", datetime(2008, 10, 22, 16, 28, 39, tzinfo=UTC), "exif:DateTimeOriginal"),
        ("jpeg/camera/img_1771.jpg", datetime(2003, 12, 14, 12, 1, 44, tzinfo=UTC), "exif:DateTimeOriginal"),
        ("jpeg/camera/door-knocker.jpg", datetime(2018, 4, 27, 13, 17, 26, tzinfo=UTC), "exif:DateTimeOriginal"),
        ("jpeg/camera/fujifilm.mpo", datetime(2013, 5, 25, 16, 38, 10, tzinfo=UTC), "exif:DateTimeOriginal"),
        ("jpeg/dates/date-priority-test.jpg", datetime(2023, 2, 2, 2, 0, 0, tzinfo=UTC), "exif:DateTimeOriginal"),
        ("jpeg/dates/datetimeoriginal-gps.jpg", datetime(2025, 12, 1, 11, 30, 0, tzinfo=UTC), "exif:DateTimeOriginal"),
        (
            "jpeg/dates/invalid-exif-without-x-resolution.jpg",
            datetime(2016, 12, 3, 11, 17, 43, tzinfo=UTC),
            "exif:DateTimeOriginal",
        ),
        ("jpeg/exif_edge/exif_gps.jpg", datetime(2099, 9, 29, 10, 10, 10, tzinfo=UTC), "exif:DateTimeOriginal"),
        (
            "jpeg/exif_edge/invalid-exif.jpg",
            datetime(2017, 3, 13, 23, 3, 9, tzinfo=timezone(timedelta(hours=-7))),
            "xmp",
        ),
        ("heic/IMG_2682.heic", datetime(2019, 3, 21, 11, 4, 22, tzinfo=UTC), "exif:DateTimeOriginal"),
        ("png/png_with_exif_and_gps.png", datetime(2003, 12, 14, 12, 1, 44, tzinfo=UTC), "exif:DateTimeOriginal"),
        ("tiff/casio_01.tif", datetime(2006, 2, 14, 22, 0, 58, tzinfo=UTC), "exif:DateTime"),
        ("raw/pair/canon_eos_6d.dng", datetime(2019, 6, 6, 7, 29, 51, tzinfo=UTC), "exif:DateTimeOriginal"),
        ("raw/metadata_only/CanonRaw.cr2", datetime(2005, 8, 3, 18, 59, 18, tzinfo=UTC), "exif:DateTimeOriginal"),
        ("raw/metadata_only/Panasonic.rw2", datetime(2008, 8, 6, 15, 21, 56, tzinfo=UTC), "exif:DateTimeOriginal"),
        (
            "raw/truncated/fixture-sony-zv-e10.arw",
            datetime(2021, 7, 24, 14, 23, 6, tzinfo=timezone(timedelta(hours=-7))),
            "exif:DateTimeOriginal",
        ),
        ("raw/truncated/canon.raw.cr2", datetime(2015, 11, 15, 13, 35, 29, tzinfo=UTC), "exif:DateTimeOriginal"),
    ],
)
def test_taken_at_comes_from_the_best_date_in_the_file(corpus, rel, taken_at, source):
    info = inspect(corpus / rel)
    assert (info.taken_at, info.taken_at_source) == (taken_at, source)
    assert info.taken_at.utcoffset() == taken_at.utcoffset()


@pytest.mark.parametrize("rel", ["jpeg/camera/img_1771_no_exif.jpg", "raw/metadata_only/CanonRaw.cr3"])
def test_taken_at_falls_back_to_mtime_in_utc(corpus, rel):
    info = inspect(corpus / rel, mtime_ns=1_700_000_000_123_456_789)
    assert info.taken_at_source == "mtime"
    assert info.taken_at == datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)


def test_an_impossible_date_falls_through_to_the_next(tmp_path):
    exif = Image.Exif()
    exif[0x0132] = "2021:06:30 08:15:00"
    exif.get_ifd(0x8769)[0x9003] = "1800:01:01 00:00:00\x00"  # before photography existed
    exif.get_ifd(0x8769)[0x9004] = "0000:00:00 00:00:00"
    path = tmp_path / "odd_dates.jpg"
    Image.new("RGB", (64, 48), "navy").save(path, exif=exif)
    info = inspect(path)
    assert (info.taken_at, info.taken_at_source) == (datetime(2021, 6, 30, 8, 15, tzinfo=UTC), "exif:DateTime")


@pytest.mark.parametrize(
    "rel, latitude, longitude",
    [
        ("jpeg/camera/DSCN0010.jpg", 43.4674, 11.8851),
        ("jpeg/camera/20250112_171126.JPG", 23.6007, 58.3931),
        ("heic/IMG_2682.heic", 41.2203, -96.0716),
        ("png/png_with_exif_and_gps.png", 50.2996, 14.8203),
        ("jpeg/camera/empty_gps.jpg", None, None),
        ("jpeg/camera/empty_gps_ifd.jpg", None, None),
        ("jpeg/camera/20240427_234934.JPG", None, None),
        ("jpeg/exif_edge/exif_gps_typeerror.jpg", None, None),
        ("jpeg/exif_edge/exif_gps.jpg", None, None),
    ],
)
def test_gps_is_decimal_degrees_or_none(corpus, rel, latitude, longitude):
    info = inspect(corpus / rel)
    if latitude is None:
        assert (info.gps_latitude, info.gps_longitude) == (None, None)
    else:
        assert info.gps_latitude == pytest.approx(latitude, abs=1e-3)
        assert info.gps_longitude == pytest.approx(longitude, abs=1e-3)


@pytest.mark.parametrize(
    "rel, make, model",
    [
        ("jpeg/camera/20240427_234934.JPG", "Sony", "XQ-BC52"),
        ("jpeg/camera/DSCN0010.jpg", "NIKON", "COOLPIX P6000"),
        ("jpeg/camera/door-knocker.jpg", "OLYMPUS IMAGING CORP.", "E-M10"),
        ("jpeg/camera/fujifilm.mpo", "FUJIFILM", "FinePix REAL 3D W3"),
        ("heic/iphone_15_pro.heic", "Apple", "iPhone 15 Pro"),
        ("tiff/casio_01.tif", "CASIO COMPUTER CO.,LTD", "QV-R51"),
        ("jpeg/exif_edge/exif_gps.jpg", "Make", "XXX-XXX"),
        ("raw/pair/canon_eos_6d.dng", "Canon", "Canon EOS 6D"),
        ("raw/truncated/fixture-sony-zv-e10.arw", "SONY", "ZV-E10"),
        ("raw/truncated/fixture-Leica-M10.dng", "Leica Camera AG", "LEICA M10"),
        ("bad/wrong_extension/Issue_247-1.nef", "NIKON CORPORATION", "NIKON D70s"),
        ("jpeg/camera/img_1771_no_exif.jpg", "", ""),
    ],
)
def test_camera_make_and_model(corpus, rel, make, model):
    info = inspect(corpus / rel)
    assert (info.camera_make, info.camera_model) == (make, model)


# --- RAW ------------------------------------------------------------------------------------------


def test_a_dng_takes_its_hothash_from_its_embedded_preview(corpus):
    info = inspect(corpus / "raw/pair/canon_eos_6d.dng")
    assert (info.file_format, info.is_raw, info.has_hotpreview) == ("dng", True, True)
    assert HEX32.match(info.hothash)
    assert (info.width, info.height) == (1224, 816)
    assert preview_of(info).size == (200, 134)
    # canon_eos_6d.JPG is that preview's bytes written out unchanged, so it is the same photo.
    assert inspect(corpus / "raw/pair/canon_eos_6d.JPG").hothash == info.hothash


def test_a_kodak_raw_takes_its_bitmap_thumbnail(corpus):
    info = inspect(corpus / "raw/RAW_KODAK_DC50.KDC")
    assert (info.file_format, info.is_raw, info.has_hotpreview) == ("kdc", True, True)
    assert (info.width, info.height) == (768, 512)
    assert preview_of(info).size == (96, 64)


@pytest.mark.parametrize("rel", [r for r in MANIFEST if r.startswith(("raw/metadata_only/", "raw/truncated/"))])
def test_stripped_and_truncated_raws_are_still_archived(corpus, rel):
    path = corpus / rel
    info = inspect(path)
    assert info.is_raw
    assert info.file_format == Path(rel).suffix.lower()[1:]
    if rel in RAW_WITHOUT_PREVIEW:
        assert (info.has_hotpreview, info.hotpreview) == (False, None)
        assert info.hothash == "raw:" + checksum_of(path)
    else:
        assert info.has_hotpreview and HEX32.match(info.hothash)
        assert preview_of(info).size == (160, 120)  # FujiFilm.raf's thumbnail


def test_wrong_extensions_are_read_by_content(corpus):
    nef = inspect(corpus / "bad/wrong_extension/Issue_247-1.nef")
    assert (nef.file_format, nef.is_raw, nef.width, nef.height) == ("jpeg", False, 2000, 3008)
    heic = inspect(corpus / "bad/wrong_extension/wrong.heic")
    assert (heic.file_format, heic.is_raw, heic.width, heic.height) == ("jpeg", False, 500, 500)


# --- the hothash ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rel",
    [
        "jpeg/camera/20240427_234934.JPG",
        "jpeg/camera/fujifilm.mpo",
        "heic/iphone_7.heic",
        "png/xmp_tags_orientation.png",
        "tiff/multipage.tiff",
        "raw/pair/canon_eos_6d.dng",
        "raw/metadata_only/FujiFilm.raf",
    ],
)
def test_inspecting_twice_gives_the_same_hothash_and_preview(corpus, rel):
    first, second = inspect(corpus / rel), inspect(corpus / rel)
    assert first.hothash == second.hothash
    assert first.hotpreview == second.hotpreview


def test_hothash_of_is_the_design_formula():
    image = Image.new("RGB", (200, 150))
    image.putdata([(x % 256, y % 256, (x * y) % 256) for y in range(150) for x in range(200)])
    assert hothash_of(image) == design_hothash(image)
    assert HOTHASH_VERSION == "imalink-hothash-v1"


@pytest.mark.parametrize(
    "rel", ["jpeg/camera/20250112_171126.JPG", "jpeg/orientation/landscape_7.jpg", "jpeg/camera/DSCN0010.jpg"]
)
def test_a_jpeg_hothash_is_the_formula_over_its_canonical_pixels(corpus, rel):
    with Image.open(corpus / rel) as im:
        im.draft("RGB", (200, 200))
        im.load()
        canonical = ImageOps.exif_transpose(im).convert("RGB")
    canonical.thumbnail((200, 200))
    info = inspect(corpus / rel)
    assert info.hothash == design_hothash(canonical)
    # The stored preview is an encoding of exactly those pixels.
    assert preview_of(info).size == canonical.size
    assert mean_abs_diff(preview_of(info), canonical) < 8  # JPEG quality 85 loses a little


# --- limits and hostile input ---------------------------------------------------------------------


def test_max_pixels_rejects_a_twelve_megapixel_photo_below_its_size(corpus):
    path = corpus / "jpeg/camera/20240427_234934.JPG"
    with pytest.raises(MediaRejected) as caught:
        inspect(path, max_pixels=10_000_000)
    assert caught.value.code == "bomb"
    assert "12192768 pixels" in caught.value.message.replace(",", "")
    assert inspect(path, max_pixels=DEFAULT_MAX_PIXELS).width == 4032


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_a_header_claiming_more_pixels_than_the_bytes_can_hold_is_a_bomb(tmp_path):
    # 6000x6000 grey pixels claimed in a file of a few hundred bytes; refused before any decoding.
    ihdr = struct.pack(">IIBBBBB", 6000, 6000, 8, 0, 0, 0, 0)
    path = tmp_path / "claims_36mp.png"
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 6001))
        + png_chunk(b"IEND", b"")
    )
    with pytest.raises(MediaRejected) as caught:
        inspect(path)
    assert caught.value.code == "bomb"
    assert "6000x6000" in caught.value.message


def test_a_directory_is_unreadable(tmp_path):
    with pytest.raises(MediaRejected) as caught:
        inspect_file(tmp_path, checksum="0" * 32, mtime_ns=0)
    assert caught.value.code == "unreadable"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads any file")
def test_a_file_without_read_permission_is_unreadable(tmp_path):
    path = tmp_path / "secret.jpg"
    path.write_bytes(b"\xff\xd8\xff")
    path.chmod(0)
    with pytest.raises(MediaRejected) as caught:
        inspect_file(path, checksum="0" * 32, mtime_ns=0)
    assert caught.value.code == "unreadable"


@pytest.mark.parametrize(
    "rel",
    [
        "jpeg/camera/DSCN0010.jpg",
        "jpeg/camera/frozenpond.mpo",
        "heic/xiaomi.heic",
        "png/exif_imagemagick_orientation.png",
        "tiff/casio_01.tif",
        "raw/pair/canon_eos_6d.dng",
        "raw/RAW_KODAK_DC50.KDC",
    ],
)
def test_damaged_copies_are_archived_or_rejected_never_crash(corpus, tmp_path, rel):
    original = (corpus / rel).read_bytes()
    variants = {f"cut{n}": original[: len(original) * n // 7] for n in range(1, 7)}
    variants.update(
        {
            f"flip{n}": original[: n * 97]
            + bytes(b ^ 0x5A for b in original[n * 97 : n * 97 + 64])
            + original[n * 97 + 64 :]
            for n in range(1, 6)
        }
    )
    for name, data in variants.items():
        path = tmp_path / f"{name}{Path(rel).suffix}"
        path.write_bytes(data)
        try:
            info = inspect(path)
        except MediaRejected as exc:
            assert exc.code in MediaRejected.CODES, name
        else:
            assert info.hothash, name


# --- the larger preview ---------------------------------------------------------------------------


def render(path: Path, file_format: str, **kwargs) -> Image.Image:
    with path.open("rb") as fh:
        data = render_preview(fh, file_format=file_format, max_side=1024, **kwargs)
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG"
    return image.convert("RGB")


def test_render_preview_turns_a_jpeg_upright_within_max_side(corpus):
    upright = render(corpus / "jpeg/orientation/landscape_1.jpg", "jpeg")
    turned = render(corpus / "jpeg/orientation/landscape_6.jpg", "jpeg")
    assert upright.size == turned.size and upright.width > upright.height
    assert mean_abs_diff(upright, turned) < 20
    assert max(render(corpus / "jpeg/camera/jolla.jpg", "jpeg").size) == 1024


def test_render_preview_of_a_raw_is_its_embedded_preview(corpus):
    # canon_eos_6d.JPG is the DNG's embedded preview written out unchanged.
    raw = render(corpus / "raw/pair/canon_eos_6d.dng", "dng")
    assert raw.size == render(corpus / "raw/pair/canon_eos_6d.JPG", "jpeg").size == (1024, 683)


def test_render_preview_refuses_a_file_over_max_pixels(corpus):
    with pytest.raises(MediaRejected) as caught:
        render(corpus / "jpeg/camera/jolla.jpg", "jpeg", max_pixels=1_000_000)
    assert caught.value.code == "bomb"
