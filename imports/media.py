"""Read one image or RAW file: decide its format from content, read its metadata, and build the canonical
hotpreview and hothash of DESIGN §2, or reject the file with a reason. Pure Python, no database.
"""

from __future__ import annotations

import io
import logging
import math
import os
import re
import struct
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, BinaryIO

import exifread
import pillow_heif
import rawpy
import xxhash
from PIL import Image, ImageFile, ImageOps, IptcImagePlugin, UnidentifiedImageError

logger = logging.getLogger("imalink.media")

pillow_heif.register_heif_opener()

HOTHASH_VERSION = "imalink-hothash-v1"
RAW_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".dng",
        ".cr2",
        ".cr3",
        ".crw",
        ".nef",
        ".nrw",
        ".arw",
        ".srf",
        ".sr2",
        ".orf",
        ".rw2",
        ".raf",
        ".pef",
        ".srw",
        ".kdc",
        ".dcr",
        ".raw",
        ".rwl",
        ".3fr",
        ".erf",
        ".mrw",
        ".x3f",
        ".iiq",
        ".mos",
    }
)
DEFAULT_MAX_PIXELS = 250_000_000

PREVIEW_BOX = (200, 200)
PREVIEW_QUALITY = 85
# A real compressed photo holds far fewer than this many pixels per byte of file; a header that claims
# more (above a megapixel) is a decompression bomb. Bilevel images (fax-style G4 TIFF) are exempt.
MAX_PIXELS_PER_BYTE = 2000
BOMB_RATIO_FLOOR = 1_000_000
# A RAW's embedded "preview" smaller than this on a side is a placeholder, not a picture of the photo.
MIN_PREVIEW_SIDE = 16
OLDEST_PLAUSIBLE_YEAR = 1826  # the oldest surviving photograph

_PILLOW_FORMATS = {"JPEG": "jpeg", "MPO": "mpo", "PNG": "png", "TIFF": "tiff", "WEBP": "webp", "HEIF": "heic"}
_DRAFTABLE = {"JPEG", "MPO"}
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_LIBRAW_FLIP_TO_ORIENTATION = {3: 3, 5: 8, 6: 6}
_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
_TAG_MAKE, _TAG_MODEL, _TAG_ORIENTATION, _TAG_DATETIME = 0x010F, 0x0110, 0x0112, 0x0132
_TAG_DTO, _TAG_DTD = 0x9003, 0x9004
_TAG_OFFSET, _TAG_OFFSET_DTO, _TAG_OFFSET_DTD = 0x9010, 0x9011, 0x9012
_TAG_XMP, _TAG_DNG_VERSION = 700, 50706

_EXIF_DATE = re.compile(r"(\d{4})[:\-/.](\d{1,2})[:\-/.](\d{1,2})(?:[ T]+(\d{1,2}):(\d{1,2})(?::(\d{1,2}))?)?")
_OFFSET = re.compile(r"^\s*(?:(Z)|([+-])(\d{2}):?(\d{2}))")
_XMP_DATE_TAGS = ("exif:DateTimeOriginal", "photoshop:DateCreated", "xmp:CreateDate")


class MediaRejected(Exception):
    """A file that is not an archivable image.

    .code is one of 'empty', 'not_image', 'corrupt', 'truncated', 'bomb', 'unreadable'. .message (and
    str(exc)) is a sentence that starts with the code and names the problem, e.g.
    'truncated: image file is truncated (3 bytes not processed)'.
    """

    CODES = frozenset({"empty", "not_image", "corrupt", "truncated", "bomb", "unreadable"})

    def __init__(self, code: str, message: str):
        if code not in self.CODES:
            raise ValueError(f"unknown rejection code {code!r}")
        self.code = code
        self.message = message if message.startswith(f"{code}:") else f"{code}: {message}"
        super().__init__(self.message)


@dataclass
class MediaInfo:
    """What the import needs to know about one file.

    taken_at is timezone-aware. An EXIF time without an offset takes the matching OffsetTime* tag when
    there is one, and is otherwise read as UTC (the camera's zone is unknown); the mtime fallback is UTC.
    """

    file_format: str
    is_raw: bool
    width: int | None
    height: int | None
    taken_at: datetime | None
    taken_at_source: str
    camera_make: str
    camera_model: str
    gps_latitude: float | None
    gps_longitude: float | None
    hothash: str
    has_hotpreview: bool
    hotpreview: bytes | None
    media_type: str = "photo"  # or "video" (imports/video.py)
    xmp: bytes | None = None  # the file's embedded XMP packet, as found (imports/metadata.py reads it)
    duration_s: float | None = None
    codec: str = ""


@dataclass
class _Tags:
    """Metadata gathered from whichever parser could read the file."""

    make: str = ""
    model: str = ""
    orientation: int = 1
    dates: list[tuple[str, Any, Any]] = field(default_factory=list)  # (source, value, offset) in priority order
    gps: tuple[float, float] | None = None
    xmp: list[Any] = field(default_factory=list)


# --- public API ------------------------------------------------------------------------------------


def hothash_of(image: Image.Image) -> str:
    """The hothash of a canonical hotpreview: an already oriented RGB image that fits within 200x200."""
    if image.mode != "RGB":
        raise ValueError(f"hothash_of needs an RGB image, got {image.mode}")
    width, height = image.size
    if width > PREVIEW_BOX[0] or height > PREVIEW_BOX[1]:
        raise ValueError(f"hothash_of needs an image within {PREVIEW_BOX}, got {image.size}")
    digest = xxhash.xxh3_128()
    digest.update(HOTHASH_VERSION.encode("ascii") + width.to_bytes(2, "big") + height.to_bytes(2, "big"))
    digest.update(image.tobytes())
    return digest.hexdigest()


# Process-wide, once: a decompression-bomb warning is an error for ImaLink, and Pillow's warnings about
# metadata quirks (corrupt EXIF, malformed MPO headers) are tolerated noise.
warnings.filterwarnings("error", category=Image.DecompressionBombWarning)
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")


def inspect_file(path: Path, *, checksum: str, mtime_ns: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> MediaInfo:
    """Inspect one file, or raise MediaRejected. No other exception escapes.

    Safe to call from several threads at once (the import runs it on a thread pool): the claimed size is
    checked explicitly before any decoding, and the warning filters below are set once for the process,
    because warnings.catch_warnings() is not thread-safe.
    """
    path = Path(path)
    # Pillow warns between 1x and 2x the limit and raises above 2x; we want both to reject at 1x.
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with open(path, "rb") as fh:
            file_size = os.fstat(fh.fileno()).st_size
            if file_size == 0:
                raise MediaRejected("empty", "the file has zero bytes")
            head = fh.read(64)
            fh.seek(0)
            return _inspect(fh, path, head, file_size, checksum, mtime_ns, max_pixels)
    except MediaRejected:
        raise
    except OSError as exc:
        raise MediaRejected("unreadable", f"cannot read the file ({exc.strerror or exc})") from exc
    except Exception as exc:  # any decoder or parser bug must become a recorded failure, not a crash
        logger.warning("unexpected error inspecting %s", path, exc_info=True)
        raise MediaRejected("corrupt", f"could not be read as an image ({type(exc).__name__}: {exc})") from exc


def render_preview(
    fh: BinaryIO, *, file_format: str, max_side: int, max_pixels: int = DEFAULT_MAX_PIXELS
) -> bytes | None:
    """A JPEG of an archived file, upright and within max_side on each side: the photo page's larger view.

    file_format is the one inspect_file gave the file. A RAW shows its embedded preview, never its sensor data,
    turned by LibRaw's flip; any other format is turned by its EXIF orientation. None when a RAW's preview is
    in a form Pillow cannot take. MediaRejected when the file claims more pixels than max_pixels or than its
    bytes can hold (it is no longer the file that passed the import); a decoder's own errors propagate.
    """
    box = (max_side, max_side)
    if file_format not in _PILLOW_FORMATS.values():
        # LibRaw opens by name; this name is the very file already opened, however it was reached.
        return _render_raw_preview(Path(f"/proc/self/fd/{fh.fileno()}"), box, max_pixels)
    with Image.open(fh) as im:
        _check_claimed_size(im, os.fstat(fh.fileno()).st_size, max_pixels)
        if im.format in _DRAFTABLE:
            im.draft("RGB", box)
        image = ImageOps.exif_transpose(im) or im
        return _encode_preview(_fit_preview(image, 1, box))


# --- the decision ---------------------------------------------------------------------------------


def _inspect(
    fh: BinaryIO, path: Path, head: bytes, file_size: int, checksum: str, mtime_ns: int, max_pixels: int
) -> MediaInfo:
    ext = path.suffix.lower()
    try:
        im = Image.open(fh)
    except Exception as exc:
        # Pillow cannot make an image of it; it may still be a RAW that only LibRaw or exifread reads.
        if _may_be_raw(ext, head):
            raw = _inspect_raw(path, ext, head, None, file_size, checksum, mtime_ns, max_pixels)
            if raw is not None:
                return raw
        raise _rejection(exc, head) from exc

    with im:
        if im.format == "TIFF" and (ext in RAW_EXTENSIONS or _TAG_DNG_VERSION in getattr(im, "tag_v2", {})):
            raw = _inspect_raw(path, ext, head, im, file_size, checksum, mtime_ns, max_pixels)
            if raw is not None:
                return raw
        return _inspect_image(im, file_size, mtime_ns, max_pixels)


def _inspect_image(im: ImageFile.ImageFile, file_size: int, mtime_ns: int, max_pixels: int) -> MediaInfo:
    file_format = _PILLOW_FORMATS.get(im.format or "")
    _check_claimed_size(im, file_size, max_pixels)
    if file_format is None:
        raise MediaRejected(
            "not_image", f"{im.format} is not an archived photo format (JPEG, PNG, TIFF, WebP, HEIC or RAW)"
        )

    full_size = im.size
    if im.format in _DRAFTABLE:
        # Decoding at 1/2..1/8 scale is what makes a 12 MP JPEG cheap; draft keeps both sides >= the box.
        im.draft("RGB", PREVIEW_BOX)
    if im.format == "PNG":
        # PNG's getexif() decodes the whole image to reach a trailing eXIf chunk; a decoding error must
        # reject the file, not pass as unreadable EXIF.
        _load(im)
    tags = _tags_from_pillow(im)
    orientation = _heif_orientation(im) if im.format == "HEIF" else tags.orientation  # HEIF: needs im.fp
    tiff_oriented = im.format == "TIFF" and _TAG_ORIENTATION in im.tag_v2
    _load(im)
    if tiff_oriented and _TAG_ORIENTATION not in im.tag_v2:
        # Recent Pillow orients a TIFF itself (its size at open, its pixels on load) and then drops the tag.
        (width, height), orientation = im.size, 1
    else:
        width, height = _oriented_size(full_size, orientation)

    preview = _fit_preview(im, orientation)

    taken_at, source = _taken_at(tags, im, mtime_ns)
    latitude, longitude = tags.gps or (None, None)
    return MediaInfo(
        file_format=file_format,
        is_raw=False,
        width=width,
        height=height,
        taken_at=taken_at,
        taken_at_source=source,
        camera_make=tags.make,
        camera_model=tags.model,
        gps_latitude=latitude,
        gps_longitude=longitude,
        hothash=hothash_of(preview),
        has_hotpreview=True,
        hotpreview=_encode_preview(preview),
        xmp=_packet(tags.xmp),
    )


def _packet(found: list) -> bytes | None:
    """The first embedded XMP packet as bytes (Pillow gives bytes or, for some formats, text)."""
    for value in found:
        if isinstance(value, bytes) and value:
            return value
        if isinstance(value, str) and value:
            return value.encode("utf-8", "replace")
    return None


def _inspect_raw(
    path: Path,
    ext: str,
    head: bytes,
    tiff: ImageFile.ImageFile | None,
    file_size: int,
    checksum: str,
    mtime_ns: int,
    max_pixels: int,
) -> MediaInfo | None:
    """A RAW by content, or None when nothing says this is a RAW."""
    raw_kind = ext[1:] if ext in RAW_EXTENSIONS else None
    if tiff is not None and _TAG_DNG_VERSION in getattr(tiff, "tag_v2", {}):
        raw_kind = raw_kind or "dng"

    tags = _tags_from_pillow(tiff) if tiff is not None else None
    if (tags is None or not (tags.make or tags.model or tags.dates)) and head[:2] in (b"II", b"MM"):
        # exifread reads the TIFF structure of RAWs that Pillow refuses, even when cut short.
        tags = _tags_from_exifread(path) or tags

    sizes, thumb, libraw_ok = _libraw_probe(path)
    confirmed = (
        libraw_ok
        or (tiff is not None and raw_kind is not None)
        or (ext in RAW_EXTENSIONS and tags is not None and bool(tags.make or tags.model or tags.dates))
    )
    if not confirmed:
        return None
    tags = tags or _Tags()
    raw_kind = raw_kind or "raw"

    orientation = tags.orientation
    if orientation == 1 and sizes is not None:
        orientation = _LIBRAW_FLIP_TO_ORIENTATION.get(sizes[2], 1)

    preview = _raw_preview(path, thumb, tiff, file_size, orientation, max_pixels)
    if sizes is not None and sizes[0] > 0 and sizes[1] > 0:
        width, height = _oriented_size(sizes[:2], orientation)
    elif preview is not None:
        width, height = preview.size
    else:
        width = height = None

    taken_at, source = _taken_at(tags, tiff, mtime_ns)
    latitude, longitude = tags.gps or (None, None)
    if preview is None:
        hothash, hotpreview = f"raw:{checksum}", None
    else:
        hothash, hotpreview = hothash_of(preview), _encode_preview(preview)
    return MediaInfo(
        file_format=raw_kind,
        is_raw=True,
        width=width,
        height=height,
        taken_at=taken_at,
        taken_at_source=source,
        camera_make=tags.make,
        camera_model=tags.model,
        gps_latitude=latitude,
        gps_longitude=longitude,
        hothash=hothash,
        has_hotpreview=preview is not None,
        hotpreview=hotpreview,
    )


def _may_be_raw(ext: str, head: bytes) -> bool:
    # LibRaw also recognises some headerless RAWs by file size alone, so without a RAW extension we ask
    # it only about content that looks like a RAW container.
    return ext in RAW_EXTENSIONS or _sniff(head) in ("TIFF", "RAW")


def _sniff(head: bytes) -> str | None:
    """The container a file's first bytes announce, if any."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head.startswith((b"FUJIFILMCCD-RAW", b"IIRO", b"IIRS", b"IIU\x00", b"FOVb", b"\x00MRM")):
        return "RAW"
    if head.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        return "TIFF"
    if head[4:8] == b"ftyp":
        return "RAW" if head[8:12] == b"crx " else "HEIF"
    return None


# --- rejections -----------------------------------------------------------------------------------


def _rejection(exc: Exception, head: bytes) -> MediaRejected:
    """Why Pillow could not open a file that is not a RAW either."""
    if isinstance(exc, MediaRejected):
        return exc
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return MediaRejected("bomb", str(exc))
    if isinstance(exc, ValueError) and "too large" in str(exc):
        return MediaRejected("bomb", f"a compressed chunk expands past Pillow's limit ({exc})")
    if isinstance(exc, UnidentifiedImageError):
        container = _sniff(head)
        if container:
            return MediaRejected("corrupt", f"starts like a {container} file but cannot be decoded")
        return MediaRejected("not_image", "not a recognised image or RAW file")
    if isinstance(exc, OSError) and "truncated" in str(exc).lower():
        return MediaRejected("truncated", str(exc))
    return MediaRejected("corrupt", _describe(exc))


def _load(im: Image.Image) -> None:
    try:
        im.load()
    except Exception as exc:
        raise _load_rejection(exc) from exc


def _load_rejection(exc: Exception) -> MediaRejected:
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return MediaRejected("bomb", str(exc))
    if isinstance(exc, ValueError) and "too large" in str(exc):
        return MediaRejected("bomb", f"a compressed chunk expands past Pillow's limit ({exc})")
    if "truncated" in str(exc).lower():
        return MediaRejected("truncated", str(exc))
    return MediaRejected("corrupt", f"the pixel data cannot be decoded ({_describe(exc)})")


def _describe(exc: Exception) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _check_claimed_size(im: Image.Image, nbytes: int, max_pixels: int) -> None:
    """Refuse before decoding a header that claims more pixels than we allow or than the bytes can hold."""
    width, height = im.size
    pixels = width * height
    if pixels > max_pixels:
        raise MediaRejected(
            "bomb", f"the image claims {width}x{height} = {pixels:,} pixels, over the limit of {max_pixels:,}"
        )
    if pixels > BOMB_RATIO_FLOOR and pixels > nbytes * MAX_PIXELS_PER_BYTE and im.mode != "1":
        raise MediaRejected("bomb", f"the image claims {width}x{height} pixels in only {nbytes:,} bytes")


# --- pixels ---------------------------------------------------------------------------------------


def _fit_preview(im: Image.Image, orientation: int, box: tuple[int, int] = PREVIEW_BOX) -> Image.Image:
    """Oriented, RGB, within box: by default DESIGN §2's canonical hotpreview, within 200x200."""
    method = _TRANSPOSE.get(orientation)
    image = im.transpose(method) if method is not None else im
    image = image.convert("RGB")  # always a plain copy, so thumbnail() below cannot re-draft the file
    image.thumbnail(box)
    return image


def _encode_preview(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=PREVIEW_QUALITY)
    return buffer.getvalue()


def _oriented_size(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    width, height = size
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _heif_orientation(im: Image.Image) -> int:
    """pillow-heif sets EXIF orientation to 1 and keeps the old value in info['original_orientation'].

    libheif already applied irot/imir when the file has them; only without them (iphone_7.heic) is the
    EXIF orientation still ours to apply.
    """
    original = _orientation_value(im.info.get("original_orientation"))
    if original == 1:
        return 1
    fp = getattr(im, "fp", None)
    try:
        transformed = _heif_primary_has_transform(fp) if fp is not None else None
    except Exception:
        logger.debug("could not read HEIF boxes", exc_info=True)
        transformed = None
    return 1 if transformed in (True, None) else original


def _heif_primary_has_transform(fp: BinaryIO) -> bool | None:
    """Whether the HEIF primary item carries an irot or imir property (None when the boxes cannot be read)."""
    position = fp.tell()
    try:
        fp.seek(0)
        data = fp.read(8 * 1024 * 1024)
    finally:
        fp.seek(position)
    meta = next((box for box in _boxes(data, 0, len(data)) if box[0] == b"meta"), None)
    if meta is None:
        return None
    primary, properties, associations = None, [], {}
    for kind, start, end in _boxes(data, meta[1] + 4, meta[2]):
        if kind == b"pitm":
            primary = struct.unpack_from(">H" if data[start] == 0 else ">I", data, start + 4)[0]
        elif kind == b"iprp":
            for sub_kind, sub_start, sub_end in _boxes(data, start, end):
                if sub_kind == b"ipco":
                    properties = [box[0] for box in _boxes(data, sub_start, sub_end)]
                elif sub_kind == b"ipma":
                    associations.update(_ipma(data, sub_start, sub_end))
    if primary is None or not properties:
        return None
    used = {properties[i - 1] for i in associations.get(primary, []) if 0 < i <= len(properties)}
    return bool(used & {b"irot", b"imir"})


def _boxes(data: bytes, start: int, end: int):
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            size, header = struct.unpack_from(">Q", data, pos + 8)[0], 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            return
        yield kind, pos + header, pos + size
        pos += size


def _ipma(data: bytes, start: int, end: int) -> dict[int, list[int]]:
    version, flags = data[start], int.from_bytes(data[start + 1 : start + 4], "big")
    pos = start + 4
    count = struct.unpack_from(">I", data, pos)[0]
    pos += 4
    result: dict[int, list[int]] = {}
    for _ in range(count):
        if pos >= end:
            break
        if version < 1:
            item = struct.unpack_from(">H", data, pos)[0]
            pos += 2
        else:
            item = struct.unpack_from(">I", data, pos)[0]
            pos += 4
        n = data[pos]
        pos += 1
        indexes = []
        for _ in range(n):
            if flags & 1:
                indexes.append(struct.unpack_from(">H", data, pos)[0] & 0x7FFF)
                pos += 2
            else:
                indexes.append(data[pos] & 0x7F)
                pos += 1
        result[item] = indexes
    return result


# --- RAW ------------------------------------------------------------------------------------------


def _libraw_probe(path: Path) -> tuple[tuple[int, int, int] | None, Any, bool]:
    """LibRaw's (width, height, flip) and embedded thumbnail; never decodes the sensor data."""
    try:
        with rawpy.imread(str(path)) as raw:
            s = raw.sizes
            sizes = (int(s.width), int(s.height), int(s.flip))
            try:
                thumb = raw.extract_thumb()
            except Exception as exc:
                logger.debug("no LibRaw thumbnail in %s: %s", path, exc)
                thumb = None
            return sizes, thumb, True
    except Exception as exc:
        logger.debug("LibRaw cannot open %s: %s", path, exc)
        return None, None, False


def _raw_preview(
    path: Path, thumb: Any, tiff: ImageFile.ImageFile | None, file_size: int, orientation: int, max_pixels: int
) -> Image.Image | None:
    """The canonical hotpreview of a RAW's embedded preview, or None when it has none worth showing."""
    candidates = []
    if thumb is not None:
        candidates.append(("LibRaw thumbnail", lambda: _decode_libraw_thumb(thumb, max_pixels)))
    if tiff is not None:
        candidates.append(("TIFF preview", lambda: _decode_tiff_preview(tiff, file_size, max_pixels)))
    for label, decode in candidates:
        try:
            image, oriented = decode()
        except Exception as exc:
            logger.debug("%s of %s cannot be decoded: %s", label, path, exc)
            continue
        if image is None or min(image.size) < MIN_PREVIEW_SIDE:
            continue
        # The preview is stored as the sensor sees it; the RAW's orientation applies, not the preview's.
        return _fit_preview(image, 1 if oriented else orientation)
    return None


def _render_raw_preview(path: Path, box: tuple[int, int], max_pixels: int) -> bytes | None:
    with rawpy.imread(str(path)) as raw:
        orientation = _LIBRAW_FLIP_TO_ORIENTATION.get(int(raw.sizes.flip), 1)
        thumb = raw.extract_thumb()
    image, _oriented = _decode_libraw_thumb(thumb, max_pixels, box)
    if image is None:
        return None
    # The embedded preview is stored as the sensor sees it: the RAW's flip applies, not the preview's EXIF.
    return _encode_preview(_fit_preview(image, orientation, box))


def _decode_libraw_thumb(
    thumb: Any, max_pixels: int, box: tuple[int, int] = PREVIEW_BOX
) -> tuple[Image.Image | None, bool]:
    if thumb.format == rawpy.ThumbFormat.BITMAP:
        return Image.fromarray(thumb.data), False
    if thumb.format == rawpy.ThumbFormat.JPEG:
        data = bytes(thumb.data)
        with Image.open(io.BytesIO(data)) as im:
            _check_claimed_size(im, len(data), max_pixels)
            if im.format in _DRAFTABLE:
                im.draft("RGB", box)
            im.load()
            return im.copy(), False
    return None, False


def _decode_tiff_preview(tiff: ImageFile.ImageFile, file_size: int, max_pixels: int) -> tuple[Image.Image | None, bool]:
    """The largest IFD image Pillow can decode (DNG and friends keep a small RGB preview in IFD0).

    The flag says whether Pillow already applied the orientation while loading (it does for TIFF since 11).
    """
    frames = []
    for index in range(getattr(tiff, "n_frames", 1)):
        tiff.seek(index)
        frames.append((tiff.size[0] * tiff.size[1], index))
    for _pixels, index in sorted(frames, reverse=True):
        try:
            tiff.seek(index)
            _check_claimed_size(tiff, file_size, max_pixels)
            had_orientation = _TAG_ORIENTATION in tiff.tag_v2
            tiff.load()
            return tiff.copy(), had_orientation and _TAG_ORIENTATION not in tiff.tag_v2
        except Exception as exc:
            logger.debug("TIFF frame %d cannot be decoded: %s", index, exc)
    return None, False


# --- metadata -------------------------------------------------------------------------------------


def _tags_from_pillow(im: Image.Image) -> _Tags:
    tags = _Tags()
    try:
        exif = im.getexif()
    except Exception as exc:
        logger.debug("unreadable EXIF: %s", exc)
        exif = Image.Exif()
    tags.make = _clean_text(exif.get(_TAG_MAKE))
    tags.model = _clean_text(exif.get(_TAG_MODEL))
    tags.orientation = _orientation_value(exif.get(_TAG_ORIENTATION))
    sub = _safe_ifd(exif, _EXIF_IFD)
    tags.dates = [
        ("exif:DateTimeOriginal", sub.get(_TAG_DTO), sub.get(_TAG_OFFSET_DTO)),
        ("exif:DateTimeDigitized", sub.get(_TAG_DTD), sub.get(_TAG_OFFSET_DTD)),
        ("exif:DateTime", exif.get(_TAG_DATETIME), sub.get(_TAG_OFFSET)),
    ]
    tags.dates = [d for d in tags.dates if d[1] is not None]
    gps = _safe_ifd(exif, _GPS_IFD)
    tags.gps = _gps(gps.get(1), gps.get(2), gps.get(3), gps.get(4))
    for key in ("xmp", "XML:com.adobe.xmp"):
        if im.info.get(key):
            tags.xmp.append(im.info[key])
    tag_v2 = getattr(im, "tag_v2", None)
    if tag_v2 is not None and not tags.xmp:
        try:
            if tag_v2.get(_TAG_XMP):
                tags.xmp.append(tag_v2.get(_TAG_XMP))
        except Exception:
            pass
    return tags


def _safe_ifd(exif: Image.Exif, tag: int) -> dict:
    try:
        return dict(exif.get_ifd(tag))
    except Exception as exc:
        logger.debug("unreadable EXIF IFD %#x: %s", tag, exc)
        return {}


def _tags_from_exifread(path: Path) -> _Tags | None:
    """Tags of a RAW that Pillow cannot parse; exifread copes with truncated files."""
    try:
        with open(path, "rb") as fh:
            found = exifread.process_file(fh, details=False)
    except Exception as exc:
        logger.debug("exifread cannot read %s: %s", path, exc)
        return None
    if not found:
        return None

    def value(name):
        tag = found.get(name)
        if tag is None:
            return None
        values = tag.values
        if isinstance(values, (list, tuple)):
            return values[0] if len(values) == 1 else list(values)
        return values

    tags = _Tags()
    tags.make = _clean_text(value("Image Make"))
    tags.model = _clean_text(value("Image Model"))
    tags.orientation = _orientation_value(value("Image Orientation"))
    tags.dates = [
        ("exif:DateTimeOriginal", value("EXIF DateTimeOriginal"), value("EXIF OffsetTimeOriginal")),
        ("exif:DateTimeDigitized", value("EXIF DateTimeDigitized"), value("EXIF OffsetTimeDigitized")),
        ("exif:DateTime", value("Image DateTime"), value("EXIF OffsetTime")),
    ]
    tags.dates = [d for d in tags.dates if d[1] is not None]
    tags.gps = _gps(
        value("GPS GPSLatitudeRef"), value("GPS GPSLatitude"), value("GPS GPSLongitudeRef"), value("GPS GPSLongitude")
    )
    return tags


def _clean_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        return ""
    return value.replace("\x00", "").strip()


def _orientation_value(value: Any) -> int:
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    try:
        number = int(value)
    except (TypeError, ValueError):
        return 1
    return number if 1 <= number <= 8 else 1


def _gps(lat_ref: Any, lat: Any, lon_ref: Any, lon: Any) -> tuple[float, float] | None:
    """Decimal degrees, or None for absent, 0/0, NaN, out-of-range or malformed values."""
    try:
        latitude, longitude = _degrees(lat), _degrees(lon)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError, IndexError):
        return None
    if latitude is None or longitude is None:
        return None
    if _clean_text(lat_ref).upper().startswith("S"):
        latitude = -latitude
    if _clean_text(lon_ref).upper().startswith("W"):
        longitude = -longitude
    if not (math.isfinite(latitude) and math.isfinite(longitude)):
        return None
    if abs(latitude) > 90 or abs(longitude) > 180 or (latitude == 0 and longitude == 0):
        return None
    return latitude, longitude


def _degrees(value: Any) -> float | None:
    if value is None or isinstance(value, (str, bytes)):
        return None
    parts = list(value) if isinstance(value, (list, tuple)) else [value]
    if not parts:
        return None
    numbers = [float(part) for part in parts[:3]]
    return sum(number / 60**i for i, number in enumerate(numbers))


def _taken_at(tags: _Tags, im: Image.Image | None, mtime_ns: int) -> tuple[datetime, str]:
    """The first plausible date in DESIGN §6's order, falling back to the file's mtime."""
    for source, value, offset in tags.dates:
        moment = _parse_exif_datetime(value, offset)
        if moment is not None:
            return moment, source
    for xmp in tags.xmp:
        moment = _xmp_datetime(xmp)
        if moment is not None:
            return moment, "xmp"
    if im is not None:
        moment = _iptc_datetime(im)
        if moment is not None:
            return moment, "iptc"
    seconds, nanos = divmod(mtime_ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, tz=timezone.utc) + timedelta(microseconds=nanos // 1000), "mtime"


def _parse_exif_datetime(value: Any, offset: Any = None) -> datetime | None:
    text = _clean_text(value)
    match = _EXIF_DATE.search(text)
    if not match:
        return None
    parts = [int(p) if p else 0 for p in match.groups()]
    try:
        moment = datetime(*parts)
    except ValueError:
        return None
    if moment.year < OLDEST_PLAUSIBLE_YEAR:
        return None
    # An ISO-style value may carry its own offset right after the time.
    return moment.replace(
        tzinfo=_parse_offset(text[match.end() :]) or _parse_offset(_clean_text(offset)) or timezone.utc
    )


def _parse_offset(text: str) -> timezone | None:
    match = _OFFSET.match(text or "")
    if not match:
        return None
    if match.group(1):
        return timezone.utc
    sign = -1 if match.group(2) == "-" else 1
    hours, minutes = int(match.group(3)), int(match.group(4))
    if hours > 23 or minutes > 59:
        return None
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _xmp_datetime(xmp: Any) -> datetime | None:
    text = xmp.decode("utf-8", errors="replace") if isinstance(xmp, bytes) else str(xmp)
    for name in _XMP_DATE_TAGS:
        # Both the attribute form (name="...") and the element form (<name>...</name>) occur.
        match = re.search(rf'{re.escape(name)}\s*=\s*["\']([^"\']+)["\']|<{re.escape(name)}>([^<]+)</', text)
        if match:
            moment = _parse_exif_datetime(match.group(1) or match.group(2))
            if moment is not None:
                return moment
    return None


def _iptc_datetime(im: Image.Image) -> datetime | None:
    try:
        iptc = IptcImagePlugin.getiptcinfo(im) or {}
    except Exception as exc:
        logger.debug("unreadable IPTC: %s", exc)
        return None
    date, time_ = iptc.get((2, 55)), iptc.get((2, 60))
    if isinstance(date, list):
        date = date[0]
    if isinstance(time_, list):
        time_ = time_[0]
    date_text = _clean_text(date)
    if not re.fullmatch(r"\d{8}", date_text):
        return None
    time_text = _clean_text(time_)
    clock = re.match(r"(\d{2})(\d{2})(\d{2})", time_text)
    try:
        moment = datetime(
            int(date_text[:4]),
            int(date_text[4:6]),
            int(date_text[6:8]),
            *(int(g) for g in clock.groups()) if clock else (0, 0, 0),
        )
    except ValueError:
        return None
    if moment.year < OLDEST_PLAUSIBLE_YEAR:
        return None
    return moment.replace(tzinfo=(_parse_offset(time_text[6:]) if clock else None) or timezone.utc)
