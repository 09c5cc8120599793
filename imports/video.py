"""Read one video file: decide its container from content, read its metadata with PyAV (FFmpeg), and pick a
poster frame for the same canonical hotpreview JPEG a photo gets, or reject the file with a reason. No database.
"""

from __future__ import annotations

import logging
import math
import os
import re
import stat
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import av
import av.error
import av.logging
from av.video.reformatter import VideoReformatter
from PIL import Image, ImageStat

from .media import (
    PREVIEW_BOX,
    MediaInfo,
    MediaRejected,
    _clean_text,
    _encode_preview,
    _fit_preview,
    _gps,
    _oriented_size,
    _parse_exif_datetime,
    _Tags,
    _taken_at,
)

logger = logging.getLogger("imalink.video")

# FFmpeg's log callback into Python takes a lock and the GIL from FFmpeg's own threads, which PyAV warns can
# deadlock or crawl under a thread pool, and a truncated file logs a line per packet. So FFmpeg logs nothing;
# its errors still reach us as raised av.FFmpegError, which this module words into MediaRejected and logs.
av.logging.set_level(None)

# Enough for two MPEG-TS packets of 192 bytes; every other container is known by its first 64 bytes.
SNIFF_BYTES = 400
# No camera records frames anywhere near this (8K is 33 MP); a stream claiming more is a memory bomb.
MAX_FRAME_PIXELS = 100_000_000
# The poster search looks at most this far into the stream, at most this many frames and packets, and for at
# most this long, so a crafted stream of undecodable or blank frames ends the search instead of the worker.
POSTER_WINDOW_S = 3.0
POSTER_MAX_FRAMES = 60
POSTER_MAX_PACKETS = 2000
POSTER_DEADLINE_S = 10.0
# A frame whose grey levels (its poster-sized image sampled at BLANK_PROBE_SIDE x BLANK_PROBE_SIDE) have a
# standard deviation under BLANK_STDDEV is blank: black or white lead-in, a fade, a flat title card. Real dark
# scenes measure well above.
BLANK_PROBE_SIDE = 32
BLANK_STDDEV = 4.0
# FFmpeg's defaults, stated so the probe stays bounded whatever defaults a later FFmpeg picks; the timeouts
# (seconds) interrupt any single open or read that stalls, e.g. on a hanging network mount.
PROBE_OPTIONS = {"probesize": "5000000", "analyzeduration": "5000000"}
OPEN_TIMEOUT_S = 20.0
READ_TIMEOUT_S = 20.0
# The demuxers whose header alone states each video stream's codec and frame size (QuickTime's sample
# descriptions, Matroska's track entries) and every packet's time. Probing them, FFmpeg would still open a
# decoder and decode the first frame to learn the pixel format, which nothing here reads, and the poster's
# decode does that very work again; a decoder whitelist that names no decoder keeps the probe from opening one
# (FFmpeg then keeps the header's parameters, as it does for a codec it has no decoder for), so a video's first
# frame is decoded once. The poster's decoder is PyAV's own and not bound by it. Elsewhere (MPEG-TS and -PS,
# whose streams and sizes only packets reveal, AVI, FLV, ASF) the probe decodes as FFmpeg always does.
_HEADER_DESCRIBES = frozenset({"mov", "matroska"})
_NO_PROBE_DECODER = {"codec_whitelist": "none"}
OLDEST_PLAUSIBLE_YEAR = 1888  # the oldest surviving film, the Roundhay Garden Scene
# A creation time of zero in the QuickTime (1904) or Unix (1970) epoch means the camera never set its clock.
_UNSET_EPOCHS = (datetime(1904, 1, 1, tzinfo=timezone.utc), datetime(1970, 1, 1, tzinfo=timezone.utc))

# The ISO BMFF brands (ftyp) of videos, by the format name they give; anything else with an ftyp is not ours.
_VIDEO_BRANDS = {
    **dict.fromkeys([b"qt  ", b"mqt ", b"caqv"], "mov"),
    **dict.fromkeys([b"M4V ", b"M4VH", b"M4VP"], "m4v"),
    **dict.fromkeys([b"kddi"], "3gp"),
    **dict.fromkeys(
        [
            b"isom",
            *(f"iso{n}".encode() for n in range(2, 10)),
            b"mp41",
            b"mp42",
            b"mp71",
            b"avc1",
            b"dash",
            b"msdh",
            b"msix",
            b"cmfc",
            b"cmf2",
            b"isml",
            b"piff",
            b"MSNV",
            b"XAVC",
            b"CAEP",
            b"mmp4",
            b"sdv ",
            b"f4v ",
        ],
        "mp4",
    ),
}
_3GPP_PREFIXES = (b"3gp", b"3g2", b"3ge", b"3gg", b"3gs", b"3gr")
# Still-image (HEIF, AVIF, HEIF image sequences), RAW (Canon CR3) and audio-only brands: never a video, even
# when a later compatible brand is. mif1/msf1 are the HEIF image and image-sequence brands.
_NOT_VIDEO_BRANDS = frozenset(
    {
        b"heic",
        b"heix",
        b"heim",
        b"heis",
        b"hevc",
        b"hevx",
        b"hevm",
        b"hevs",
        b"mif1",
        b"mif2",
        b"msf1",
        b"miaf",
        b"avif",
        b"avis",
        b"avio",
        b"avci",
        b"avcs",
        b"vvic",
        b"vvis",
        b"jpeg",
        b"j2ki",
        b"j2is",
        b"crx ",
        b"M4A ",
        b"M4B ",
        b"M4P ",
        b"F4A ",
        b"F4B ",
    }
)
# Top-level QuickTime atoms that old camera .mov files (no ftyp) start with.
_QUICKTIME_ATOMS = frozenset({b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"})
_ASF_GUID = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")
# The FFmpeg demuxer for each sniffed format: pinning it keeps FFmpeg from guessing another, such as a
# playlist demuxer that would open files the archive never asked for.
_DEMUXERS = {
    "mp4": "mov",
    "mov": "mov",
    "m4v": "mov",
    "3gp": "mov",
    "mkv": "matroska",
    "webm": "matroska",
    "avi": "avi",
    "mts": "mpegts",
    "mpg": "mpeg",
    "flv": "flv",
    "wmv": "asf",
}
# The display matrix's counter-clockwise rotation, in degrees, as the EXIF orientation media.py turns by.
_ROTATION_TO_ORIENTATION = {0: 1, 90: 8, 180: 3, 270: 6}
_ISO6709 = re.compile(r"^\s*([+-])(\d{2,6}(?:\.\d+)?)([+-])(\d{3,7}(?:\.\d+)?)")


# --- public API ------------------------------------------------------------------------------------


def looks_like_video(head: bytes) -> str | None:
    """The video format a file's first bytes announce ("mp4", "mov", "mkv", ...), or None.

    64 bytes decide every container but MPEG-TS, which needs two packets (SNIFF_BYTES). An ftyp file is a
    video only by its brands, so a HEIF or AVIF photo is never taken for a video nor an MP4 for a broken HEIF.
    """
    if head[4:8] == b"ftyp":
        return _ftyp_format(head)
    if head[4:8] in _QUICKTIME_ATOMS and _plausible_atom_size(int.from_bytes(head[:4], "big")):
        return "mov"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm" if b"webm" in head[:64] else "mkv"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    if _is_mpeg_ts(head):
        return "mts"
    if head.startswith(b"\x00\x00\x01\xba"):
        return "mpg"
    if head.startswith(b"FLV\x01"):
        return "flv"
    if head.startswith(_ASF_GUID):
        return "wmv"
    return None


def video_identity(checksum: str) -> str:
    """A video's hothash: `video:` and the xxh3-128 of its bytes (the form of a preview-less RAW's `raw:`).

    A poster frame says too little to tell two clips apart, and a video has no second rendering (as a RAW has
    its JPEG) that a content hash would need to meet (docs/MEDIA.md)."""
    return f"video:{checksum}"


def inspect_video(path: Path, *, checksum: str, mtime_ns: int) -> MediaInfo:
    """Inspect one video, or raise MediaRejected. No other exception escapes.

    The MediaInfo of a video: media_type "video", its identity from `checksum` (video_identity), duration and
    codec. A video whose container reads but whose frames do not (a truncated copy) is still a video: it comes
    back with has_hotpreview False, as a RAW without a preview does. Safe to call from several threads.

    taken_at is timezone-aware: QuickTime's creationdate keeps the camera's zone, creation_time is UTC, and
    the mtime fallback is UTC. width and height are as displayed (after a 90 or 270 degree rotation).
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO must not block the open
    except OSError as exc:
        raise MediaRejected("unreadable", f"cannot open the file ({exc.strerror or exc})") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise MediaRejected("unreadable", "not a regular file")
        if info.st_size == 0:
            raise MediaRejected("empty", "the file has zero bytes")
        file_format = looks_like_video(os.pread(fd, SNIFF_BYTES, 0))
        if file_format is None:
            raise MediaRejected("not_image", "not a recognised video file")
        # FFmpeg opens by name; this name is the very file already opened and checked, however it was reached.
        return _inspect(f"/proc/self/fd/{fd}", file_format, mtime_ns, checksum)
    except MediaRejected:
        raise
    except OSError as exc:
        raise MediaRejected("unreadable", f"cannot read the file ({exc.strerror or exc})") from exc
    except Exception as exc:  # any demuxer or decoder surprise must become a recorded failure, not a crash
        logger.warning("unexpected error inspecting video %s", path, exc_info=True)
        raise MediaRejected("corrupt", f"could not be read as a video ({type(exc).__name__}: {exc})") from exc
    finally:
        os.close(fd)


# --- the decision ---------------------------------------------------------------------------------


def _inspect(name: str, file_format: str, mtime_ns: int, checksum: str) -> MediaInfo:
    container = _open(name, file_format)
    with container:
        stream = next(
            (s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic), None
        )
        if stream is None:
            raise MediaRejected("not_image", f"a {file_format} container without a video stream")
        codec = stream.codec_context
        width, height = (codec.width or None, codec.height or None) if codec is not None else (None, None)
        if width and height and width * height > MAX_FRAME_PIXELS:
            raise MediaRejected(
                "bomb",
                f"the video claims {width}x{height} = {width * height:,} pixels a frame, over {MAX_FRAME_PIXELS:,}",
            )
        tags = [dict(container.metadata), dict(stream.metadata)]
        tags += [dict(s.metadata) for s in container.streams if s is not stream]

        poster = _poster(container, stream) if codec is not None else None
        rotation = poster.rotation if poster is not None and poster.rotation else _rotate_tag(stream.metadata)
        orientation = _ROTATION_TO_ORIENTATION.get(rotation % 360, 1)
        preview = _fit_preview(poster.image, orientation) if poster is not None else None
        if poster is not None:
            width, height = poster.width, poster.height  # the decoder's word over the header's
        if width and height:
            width, height = _oriented_size((width, height), orientation)
        elif codec is not None:
            # Probing zeroes a size over max_pixels, so this is a bomb's claim, or a stream with no size at all.
            raise MediaRejected(
                "corrupt",
                f"the video stream has no frame size FFmpeg accepts (none, or over {MAX_FRAME_PIXELS:,} pixels)",
            )

        taken_at, source = _video_taken_at(tags, mtime_ns)
        latitude, longitude = _location(tags) or (None, None)
        return MediaInfo(
            file_format=file_format,
            is_raw=False,
            width=width,
            height=height,
            taken_at=taken_at,
            taken_at_source=source,
            camera_make=_first_tag(tags, "com.apple.quicktime.make", "make", "com.android.manufacturer"),
            camera_model=_first_tag(tags, "com.apple.quicktime.model", "model", "com.android.model"),
            gps_latitude=latitude,
            gps_longitude=longitude,
            hothash=video_identity(checksum),
            has_hotpreview=preview is not None,
            hotpreview=_encode_preview(preview) if preview is not None else None,
            media_type="video",
            duration_s=_duration(container, stream),
            codec=codec.name if codec is not None else "",
        )


def _open(name: str, file_format: str) -> av.container.InputContainer:
    try:
        demuxer = _DEMUXERS[file_format]
        return av.open(
            name,
            format=demuxer,
            container_options={**PROBE_OPTIONS, **(_NO_PROBE_DECODER if demuxer in _HEADER_DESCRIBES else {})},
            # Given to the decoders FFmpeg opens while probing too, so none of them allocates a bomb's frame.
            options={"max_pixels": str(MAX_FRAME_PIXELS)},
            timeout=(OPEN_TIMEOUT_S, READ_TIMEOUT_S),
        )
    except av.error.ExitError as exc:
        raise MediaRejected("corrupt", f"FFmpeg gave up probing the {file_format} container (timed out)") from exc
    except av.error.InvalidDataError as exc:
        raise MediaRejected(
            "corrupt", f"starts like a {file_format} file but FFmpeg cannot open it ({exc.strerror})"
        ) from exc
    except av.FFmpegError as exc:
        if isinstance(exc, OSError):  # PyAV's I/O errors are also the builtin ones (EIO, EACCES, ...)
            raise MediaRejected("unreadable", f"FFmpeg cannot read the file ({exc.strerror})") from exc
        raise MediaRejected("corrupt", f"FFmpeg cannot open the {file_format} container ({exc.strerror})") from exc


def _ftyp_format(head: bytes) -> str | None:
    """The major brand decides; an unknown one defers to the compatible brands in their order."""
    size = int.from_bytes(head[:4], "big")
    end = min(size, len(head)) if size >= 16 else 16
    brands = [head[8:12]] + [head[i : i + 4] for i in range(16, end - 3, 4)]
    for brand in brands:
        if brand in _NOT_VIDEO_BRANDS:
            return None
        if brand in _VIDEO_BRANDS:
            return _VIDEO_BRANDS[brand]
        if brand.startswith(_3GPP_PREFIXES):
            return "3gp"
    return None


def _plausible_atom_size(size: int) -> bool:
    """An atom's 32-bit size: 0 (to the end of the file), 1 (a 64-bit size follows) or at least its header."""
    return size in (0, 1) or size >= 8


def _is_mpeg_ts(head: bytes) -> bool:
    """0x47 sync bytes at every packet start the head holds (two at least): 188-byte TS, or 192-byte M2TS."""
    for first, stride in ((0, 188), (4, 192)):
        starts = range(first, len(head), stride)
        if len(starts) >= 2 and all(head[i] == 0x47 for i in starts):
            return True
    return False


# --- poster frame ---------------------------------------------------------------------------------


class _Poster:
    """A decoded frame's poster-sized image, its display rotation and its decoded size."""

    __slots__ = ("image", "rotation", "width", "height")

    def __init__(self, image: Image.Image, frame: Any):
        self.image, self.rotation, self.width, self.height = image, frame.rotation, frame.width, frame.height


def _poster(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> _Poster | None:
    """The first frame near the start that is not blank, else the first decoded one, else None.

    Keyframes alone come first, as they are cheap and usually enough; only when all of them are blank are the
    frames between them decoded from the start. Each frame is scaled once, by swscale, straight to the size
    the hotpreview has, and the blank check looks at that small image, so no full-size RGB copy is ever made.
    """
    codec = stream.codec_context
    codec.options = {"max_pixels": str(MAX_FRAME_PIXELS)}  # FFmpeg refuses to allocate a larger frame
    # The import already inspects one file per core (IMALINK_IMPORT_THREADS), so decoder threads would only
    # add their start-up and hand-offs to each video: one thread decodes it with the least work.
    codec.thread_count = 1
    deadline = time.monotonic() + POSTER_DEADLINE_S
    first = None
    for skip in ("NONKEY", "DEFAULT"):
        if skip == "DEFAULT":
            try:
                container.seek(stream.start_time or 0, stream=stream, backward=True)
                codec.flush_buffers()
            except (av.FFmpegError, EOFError) as exc:
                logger.debug("cannot seek back to the start for a poster frame: %s", exc)
                break
        codec.skip_frame = skip
        for frame in _frames(container, stream, deadline):
            poster = _Poster(_poster_sized(frame), frame)
            if first is None:
                first = poster
            if not _is_blank(poster.image):
                return poster
    return first


def _frames(container: av.container.InputContainer, stream: av.video.stream.VideoStream, deadline: float) -> Iterator:
    """Decoded frames within POSTER_WINDOW_S of the stream's start, within the frame, packet and time caps."""
    start = (stream.start_time or 0) * stream.time_base if stream.time_base else 0
    frames = 0
    try:
        for packets, packet in enumerate(container.demux(stream), start=1):
            if packets > POSTER_MAX_PACKETS or time.monotonic() > deadline:
                return
            try:
                decoded = packet.decode()
            except (av.FFmpegError, EOFError) as exc:
                # One damaged packet does not end the search; the caps do.
                logger.debug("a video packet does not decode: %s", exc)
                continue
            for frame in decoded:
                frames += 1
                if frames > POSTER_MAX_FRAMES or frame.width * frame.height > MAX_FRAME_PIXELS:
                    return
                if frame.time is not None and frame.time - start > POSTER_WINDOW_S:
                    return
                yield frame
    except (av.FFmpegError, EOFError) as exc:
        # A container that ends or breaks mid-way is a truncated copy: whatever decoded so far is all there is.
        logger.debug("demuxing stopped: %s", exc)


def _is_blank(image: Image.Image) -> bool:
    sample = image.convert("L").resize((BLANK_PROBE_SIDE, BLANK_PROBE_SIDE), Image.Resampling.BOX)
    return ImageStat.Stat(sample).stddev[0] < BLANK_STDDEV


# One swscale context per thread, kept from video to video (swscale makes a new one only when a size or format
# changes): a camera's clips share a size, so the scaler's filters are set up once, not once a video.
_scalers = threading.local()


def _poster_sized(frame: Any) -> Image.Image:
    """The frame in RGB at the size Pillow's thumbnail() gives it within PREVIEW_BOX, scaled by swscale in one
    area-averaging step from the decoded planes, so the preview path's thumbnail() finds nothing left to do."""
    scaler = getattr(_scalers, "scaler", None)
    if scaler is None:
        scaler = _scalers.scaler = VideoReformatter()
    width, height = _thumbnail_size(frame.width, frame.height, PREVIEW_BOX)
    return scaler.reformat(frame, width=width, height=height, format="rgb24", interpolation="AREA").to_image()


def _thumbnail_size(width: int, height: int, box: tuple[int, int]) -> tuple[int, int]:
    """The size Pillow's Image.thumbnail(box) gives a width x height image: the side that binds is the box's,
    the other the whole number that keeps the aspect best (its rounding, which a test holds to Pillow's)."""
    x, y = box
    if x >= width and y >= height:
        return width, height
    aspect = width / height
    if x / y >= aspect:
        x = max(min(math.floor(y * aspect), math.ceil(y * aspect), key=lambda n: abs(aspect - n / y)), 1)
    else:
        y = max(
            min(math.floor(x / aspect), math.ceil(x / aspect), key=lambda n: 0 if n == 0 else abs(aspect - x / n)),
            1,
        )
    return x, y


def _rotate_tag(metadata: dict) -> int:
    """The counter-clockwise rotation of the legacy `rotate` tag, which gives it clockwise."""
    try:
        return -int(float(_clean_text(metadata.get("rotate")) or 0))
    except (ValueError, OverflowError):
        return 0


# --- metadata -------------------------------------------------------------------------------------


def _first_tag(tags: list[dict], *keys: str) -> str:
    """The first non-empty value of the keys in order, each looked up in the container's then streams' tags."""
    for key in keys:
        for metadata in tags:
            value = _clean_text(metadata.get(key))
            if value:
                return value
    return ""


def _video_taken_at(tags: list[dict], mtime_ns: int) -> tuple[datetime, str]:
    """QuickTime's creationdate (it carries the zone), then creation_time, then the file's mtime."""
    for key in ("com.apple.quicktime.creationdate", "creation_time"):
        for metadata in tags:
            moment = _container_datetime(metadata.get(key))
            if moment is not None:
                return moment, "container"
    return _taken_at(_Tags(), None, mtime_ns)


def _container_datetime(value: Any) -> datetime | None:
    """An ISO 8601 time (FFmpeg's form, or Apple's with +0200), timezone-aware, or None when unset or absurd."""
    text = _clean_text(value)
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = _parse_exif_datetime(text)  # some cameras write EXIF's 2005:08:11 14:03:54
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    if moment.year < OLDEST_PLAUSIBLE_YEAR or any(abs(moment - epoch) <= timedelta(days=1) for epoch in _UNSET_EPOCHS):
        return None
    return moment


def _location(tags: list[dict]) -> tuple[float, float] | None:
    for key in ("com.apple.quicktime.location.ISO6709", "location"):
        for metadata in tags:
            position = _iso6709(metadata.get(key))
            if position is not None:
                return position
    return None


def _iso6709(value: Any) -> tuple[float, float] | None:
    """Decimal degrees of an ISO 6709 point (+59.9139+010.7522+012.000/, or its DDMM and DDMMSS forms)."""
    match = _ISO6709.match(_clean_text(value))
    if not match:
        return None
    lat_sign, lat, lon_sign, lon = match.groups()
    return _gps(
        "S" if lat_sign == "-" else "N",
        _iso6709_degrees(lat, 2),
        "W" if lon_sign == "-" else "E",
        _iso6709_degrees(lon, 3),
    )


def _iso6709_degrees(text: str, degree_digits: int) -> float | None:
    whole = text.split(".")[0]
    extra = len(whole) - degree_digits
    if extra == 0:
        return float(text)
    if extra == 2:
        return float(whole[:degree_digits]) + float(text[degree_digits:]) / 60
    if extra == 4:
        d = degree_digits
        return float(whole[:d]) + float(whole[d : d + 2]) / 60 + float(text[d + 2 :]) / 3600
    return None


def _duration(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float | None:
    """Seconds, from the container, else from the video stream; None when neither says."""
    seconds = None
    if container.duration is not None and container.duration > 0:
        seconds = container.duration / av.time_base
    elif stream.duration and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        return None
    return seconds
