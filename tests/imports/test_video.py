"""imports.video against the corpus card's videos (MANIFEST.tsv), videos written here by PyAV, and hostile files.

No database: inspect_video is pure Python, and these tests only read the corpora and write to tmp_path.
"""

import csv
import io
import os
import random
import struct
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import av
import pytest
from PIL import Image, ImageChops, ImageDraw, ImageStat

from imports import video
from imports.media import PREVIEW_BOX, MediaInfo, MediaRejected
from imports.video import SNIFF_BYTES, inspect_video, looks_like_video, video_identity
from tests.conftest import CORPUS, require

pytestmark = pytest.mark.database_independent  # pure media code: the PostgreSQL pass leaves it out

CARD = Path(os.environ.get("IMALINK_CORPUS_CARD", CORPUS.parent / "corpus-card"))
UTC = timezone.utc
MTIME_NS = 1_234_567_890_123_456_789
MTIME = datetime(2009, 2, 13, 23, 31, 30, 123456, tzinfo=UTC)


@pytest.fixture
def card() -> Path:
    require(CARD.is_dir(), f"the shared corpus card at {CARD}")
    return CARD


def inspect(path: Path) -> MediaInfo:
    return inspect_video(path, checksum="0" * 32, mtime_ns=MTIME_NS)


def head_of(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(SNIFF_BYTES)


def poster(info: MediaInfo) -> Image.Image:
    """The hotpreview, checked to be a JPEG within the preview box, as a loaded RGB image."""
    assert info.has_hotpreview and info.hotpreview is not None
    with Image.open(io.BytesIO(info.hotpreview)) as im:
        assert im.format == "JPEG"
        im.load()
        assert im.width <= PREVIEW_BOX[0] and im.height <= PREVIEW_BOX[1]
        return im.convert("RGB")


def still_images() -> list[str]:
    manifest = CORPUS / "MANIFEST.tsv"
    if not manifest.is_file():
        return []
    with manifest.open(newline="") as fh:
        return [row["path"] for row in csv.DictReader(fh, delimiter="\t")]


# --- the corpus card's videos ---------------------------------------------------------------------


def test_quicktime_mp4_reads_its_container_and_poster(card):
    info = inspect(card / "video/quicktime.mp4")

    assert info.file_format == "mp4"
    assert (info.width, info.height) == (190, 240)  # no display matrix: as stored
    assert info.duration_s == pytest.approx(5.0, abs=0.1)
    assert info.codec == "mpeg4"
    assert (info.taken_at, info.taken_at_source) == (datetime(2005, 10, 28, 17, 46, 46, tzinfo=UTC), "container")
    assert (info.camera_make, info.camera_model) == ("", "")
    assert (info.gps_latitude, info.gps_longitude) == (None, None)
    image = poster(info)
    assert image.size == (158, 200)  # 190x240 fitted into 200x200
    assert ImageStat.Stat(image.convert("L")).stddev[0] > 10  # a picture, not a blank lead-in


def test_10min_mkv_has_no_creation_time_so_takes_the_mtime(card):
    info = inspect(card / "video/10min.mkv")

    assert info.file_format == "mkv"
    assert info.duration_s == pytest.approx(600, abs=1)
    assert (info.width, info.height, info.codec) == (384, 288, "h264")
    assert (info.taken_at, info.taken_at_source) == (MTIME, "mtime")
    assert poster(info).size == (200, 150)


def test_truncated_pentax_mov_keeps_its_metadata_without_a_poster(card):
    info = inspect(card / "video/pentax_320x240.mov")

    assert info.file_format == "mov"  # no ftyp: a camera QuickTime that starts with its moov atom
    assert (info.width, info.height, info.codec) == (320, 240, "mjpeg")
    assert (info.taken_at, info.taken_at_source) == (datetime(2005, 8, 11, 14, 3, 54, tzinfo=UTC), "container")
    assert (info.has_hotpreview, info.hotpreview) == (False, None)


def test_truncated_avi_keeps_its_header_without_a_poster(card):
    info = inspect(card / "video/smallville.s03e02.avi")

    assert info.file_format == "avi"
    assert (info.width, info.height, info.codec) == (640, 352, "mpeg4")
    assert info.taken_at_source == "mtime"
    assert (info.has_hotpreview, info.hotpreview) == (False, None)


def test_two_videos_give_different_results(card):
    one, other = inspect(card / "video/quicktime.mp4"), inspect(card / "video/10min.mkv")

    assert (one.width, one.height, one.codec, one.duration_s) != (
        other.width,
        other.height,
        other.codec,
        other.duration_s,
    )
    assert one.hotpreview != other.hotpreview


def test_inspecting_again_gives_the_same_poster(card):
    assert inspect(card / "video/quicktime.mp4").hotpreview == inspect(card / "video/quicktime.mp4").hotpreview


def test_threads_at_once_get_what_one_thread_gets(card):
    names = ["video/quicktime.mp4", "video/10min.mkv", "video/pentax_320x240.mov", "video/smallville.s03e02.avi"] * 2
    alone = [inspect(card / name) for name in names]
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(lambda name: inspect(card / name), names))
    assert together == alone


@pytest.mark.parametrize(
    "container, codec, name, probe_decodes",
    [
        ("mp4", "libx264", "a.mp4", False),
        ("mov", "mjpeg", "a.mov", False),
        ("matroska", "libx264", "a.mkv", False),
        ("avi", "mpeg4", "a.avi", True),
        ("mpegts", "mpeg2video", "a.ts", True),
    ],
)
def test_the_first_frame_is_decoded_once_where_the_header_describes_the_stream(
    tmp_path, container, codec, name, probe_decodes
):
    # FFmpeg's probe learns the pixel format only by decoding a frame. Where the header states codec, size and
    # times (QuickTime, Matroska), the probe opens no decoder, so the poster's decode is the only one.
    path = write_video(tmp_path / name, container=container, codec=codec, frames=lambda i: moving_pattern(i + 1))
    file_format = looks_like_video(head_of(path))
    with video._open(str(path), file_format) as container_read:
        probed = container_read.streams.video[0].codec_context
        assert (probed.width, probed.height) == (WIDTH, HEIGHT)
        assert (probed.pix_fmt is not None) == probe_decodes
    info = inspect(path)
    assert (info.width, info.height, info.has_hotpreview) == (WIDTH, HEIGHT, True)
    assert difference(poster(info), shown(moving_pattern(1), 0)) < 10


@pytest.mark.parametrize(
    "size",
    [
        (1920, 1080),
        (1080, 1920),
        (3840, 2160),
        (1440, 1080),
        (190, 240),
        (201, 100),
        (720, 576),
        (4000, 3),
        (3, 4000),
        (200, 200),
        (250, 200),
        (199, 500),
        (64, 48),
    ],
)
def test_the_poster_is_scaled_once_to_the_size_thumbnail_gives(size):
    # swscale scales each frame straight to the preview's size, so Pillow's thumbnail() has nothing left to do.
    image = Image.new("RGB", size)
    image.thumbnail(PREVIEW_BOX)
    assert video._thumbnail_size(*size, PREVIEW_BOX) == image.size
    frame = av.VideoFrame.from_image(Image.new("RGB", size, (40, 90, 200)))
    assert (
        video._poster_sized(frame.reformat(format="yuv420p" if size[0] % 2 == size[1] % 2 == 0 else "rgb24")).size
        == image.size
    )


# --- sniffing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, expected",
    [
        ("video/quicktime.mp4", "mp4"),
        ("video/10min.mkv", "mkv"),
        ("video/pentax_320x240.mov", "mov"),
        ("video/smallville.s03e02.avi", "avi"),
    ],
)
def test_card_videos_are_sniffed(card, name, expected):
    assert looks_like_video(head_of(card / name)) == expected
    assert looks_like_video(head_of(card / name)[:64]) == expected  # what inspection.py reads


def test_no_still_image_in_the_corpus_is_taken_for_a_video(corpus):
    paths = still_images()
    assert len(paths) > 50
    taken = [p for p in paths if looks_like_video(head_of(corpus / p)) is not None]
    assert taken == []


def test_a_motion_photo_is_a_photo_not_a_video(card):
    path = card / "motion/samsung-one-ui-6.heic"
    assert looks_like_video(head_of(path)) is None
    with pytest.raises(MediaRejected) as caught:
        inspect(path)
    assert caught.value.code == "not_image"


# --- videos written here --------------------------------------------------------------------------

WIDTH, HEIGHT, RATE = 320, 240, 10


def moving_pattern(index: int) -> Image.Image:
    """Frame 0 is black; later frames are a gradient with a white bar that moves right, frame by frame."""
    if not index:
        return Image.new("RGB", (WIDTH, HEIGHT))
    across = Image.linear_gradient("L").transpose(Image.Transpose.ROTATE_90).resize((WIDTH, HEIGHT))
    down = Image.linear_gradient("L").resize((WIDTH, HEIGHT))
    frame = Image.merge("RGB", (across, Image.new("L", (WIDTH, HEIGHT)), down))
    ImageDraw.Draw(frame).rectangle([20 * index, 0, 20 * index + 19, HEIGHT - 1], fill="white")
    return frame


def write_video(
    path: Path,
    *,
    container: str,
    codec: str,
    frames=moving_pattern,
    count=2 * RATE,
    rate=RATE,
    rotation=0,
    metadata=None,
    container_options=None,
    codec_options=None,
) -> Path:
    """A real video written by FFmpeg: count frames of frames(index) at rate, with the tags and rotation given."""
    out = av.open(str(path), "w", format=container, options=container_options or {})
    with out:
        out.metadata.update(metadata or {})
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height = WIDTH, HEIGHT
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        stream.codec_context.options = codec_options or {}
        if rotation:
            stream.set_display_rotation(rotation)
        for index in range(count):
            for packet in stream.encode(av.VideoFrame.from_image(frames(index))):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def difference(a: Image.Image, b: Image.Image) -> float:
    return ImageStat.Stat(ImageChops.difference(a, b).convert("L")).mean[0]


def shown(frame: Image.Image, rotation: int) -> Image.Image:
    """How a player shows a frame: turned counter-clockwise by the display rotation, then fitted to the box."""
    image = frame.rotate(rotation, expand=True)
    image.thumbnail(PREVIEW_BOX)
    return image


IPHONE_TAGS = {
    "creation_time": "2021-06-01T10:20:30.000000Z",
    "com.apple.quicktime.creationdate": "2021-06-01T12:20:30+0200",
    "com.apple.quicktime.location.ISO6709": "+59.9139+010.7522+012.000/",
    "com.apple.quicktime.make": "Apple",
    "com.apple.quicktime.model": "iPhone 12",
}
# One keyframe for the whole clip, and no scene-cut keyframe where the black frame ends: only decoding the
# frames between keyframes finds the first picture.
SPARSE_KEYFRAMES = {"preset": "ultrafast", "x264-params": "keyint=250:min-keyint=250:scenecut=0:bframes=0"}


@pytest.mark.parametrize("rotation", [90, -90])
def test_a_phone_video_gives_zone_place_camera_rotation_and_a_real_poster(tmp_path, rotation):
    path = write_video(
        tmp_path / "IMG_0001.MOV",
        container="mov",
        codec="libx264",
        rotation=rotation,
        metadata=IPHONE_TAGS,
        container_options={"movflags": "use_metadata_tags"},
        codec_options=SPARSE_KEYFRAMES,
    )
    info = inspect(path)

    assert (info.file_format, info.codec) == ("mov", "h264")
    assert (info.width, info.height) == (HEIGHT, WIDTH)  # turned a quarter: the sides swap
    assert info.duration_s == pytest.approx(2.0, abs=0.15)
    assert info.taken_at == datetime(2021, 6, 1, 12, 20, 30, tzinfo=timezone(timedelta(hours=2)))
    assert info.taken_at.utcoffset() == timedelta(hours=2)  # creationdate's zone, not creation_time's UTC
    assert info.taken_at_source == "container"
    assert (info.gps_latitude, info.gps_longitude) == pytest.approx((59.9139, 10.7522))
    assert (info.camera_make, info.camera_model) == ("Apple", "iPhone 12")

    image = poster(info)
    assert image.size == (150, 200)
    # Not the black first frame but the first picture, turned as a player turns it, not the other way.
    assert difference(image, shown(moving_pattern(0), rotation)) > 40
    assert difference(image, shown(moving_pattern(1), rotation)) < 10
    assert difference(image, shown(moving_pattern(2), rotation)) > 10  # the first picture, not a later one
    assert difference(image, shown(moving_pattern(1), -rotation)) > 2 * difference(
        image, shown(moving_pattern(1), rotation)
    )


def test_a_video_that_is_all_blank_takes_its_first_frame(tmp_path):
    path = write_video(tmp_path / "black.mp4", container="mp4", codec="mjpeg", frames=lambda index: moving_pattern(0))
    image = poster(inspect(path))
    assert image.size == (200, 150)
    assert ImageStat.Stat(image.convert("L")).extrema[0][1] < 16


def test_mp4_location_in_degrees_and_minutes_and_an_unset_creation_time(tmp_path):
    # ISO 6709's DDMM.M form (33 52.5' S, 151 12.0' E); a zero QuickTime time is 1904-01-01: not a date.
    path = write_video(
        tmp_path / "clip.mp4",
        container="mp4",
        codec="mpeg4",
        count=3,
        metadata={"location": "-3352.5+15112.0/", "creation_time": "1904-01-01T00:00:00.000000Z"},
    )
    info = inspect(path)

    assert (info.gps_latitude, info.gps_longitude) == pytest.approx((-33.875, 151.2))
    assert (info.taken_at, info.taken_at_source) == (MTIME, "mtime")


@pytest.mark.parametrize(
    "container, codec, name, options, expected",
    [
        ("mp4", "mpeg4", "a.mp4", {}, "mp4"),
        ("mov", "mjpeg", "a.mov", {}, "mov"),
        ("3gp", "mpeg4", "a.3gp", {}, "3gp"),
        ("ipod", "libx264", "a.m4v", {}, "m4v"),
        ("matroska", "mjpeg", "a.mkv", {}, "mkv"),
        ("webm", "libvpx", "a.webm", {}, "webm"),
        ("avi", "mpeg4", "a.avi", {}, "avi"),
        ("mpegts", "mpeg2video", "a.ts", {}, "mts"),
        ("mpegts", "mpeg2video", "a.m2ts", {"mpegts_m2ts_mode": "1"}, "mts"),
        ("mpeg", "mpeg1video", "a.mpg", {}, "mpg"),
        ("flv", "flv", "a.flv", {}, "flv"),
        ("asf", "wmv2", "a.wmv", {}, "wmv"),
    ],
)
def test_each_container_is_sniffed_and_read(tmp_path, container, codec, name, options, expected):
    rate = 25 if codec == "mpeg1video" else RATE  # MPEG-1 knows only the broadcast rates
    path = write_video(
        tmp_path / name,
        container=container,
        codec=codec,
        frames=lambda index: moving_pattern(index + 1),
        count=5,
        rate=rate,
        container_options=options,
    )

    assert looks_like_video(head_of(path)) == expected
    info = inspect(path)
    assert (info.file_format, info.width, info.height) == (expected, WIDTH, HEIGHT)
    assert info.duration_s is not None and info.duration_s > 0
    assert poster(info).size == (200, 150)


# --- hostile files --------------------------------------------------------------------------------


def rejection(path: Path) -> MediaRejected:
    # a hang would fail at pytest-timeout's limit (pyproject.toml); speed is the import benchmark's
    with pytest.raises(MediaRejected) as caught:
        inspect(path)
    return caught.value


def test_random_bytes_are_not_a_video(tmp_path):
    path = tmp_path / "noise.mp4"
    path.write_bytes(random.Random(16).randbytes(100_000))
    found = rejection(path)
    assert (found.code, found.message) == ("not_image", "not_image: not a recognised video file")


def test_a_zero_byte_file_is_empty(tmp_path):
    path = tmp_path / "empty.mp4"
    path.touch()
    assert rejection(path).code == "empty"


def test_a_text_file_named_mp4_is_not_a_video(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("ftyp is not at offset four here; this is a shopping list\n" * 50)
    assert rejection(path).code == "not_image"


def test_an_mp4_header_over_noise_is_corrupt(tmp_path, card):
    path = tmp_path / "noise.mp4"
    path.write_bytes(head_of(card / "video/quicktime.mp4")[:24] + os.urandom(50_000))
    found = rejection(path)
    assert found.code == "corrupt" and "starts like a mp4 file" in found.message


def test_an_mp4_cut_inside_its_moov_is_corrupt(tmp_path, card):
    path = tmp_path / "cut.mp4"
    path.write_bytes((card / "video/quicktime.mp4").read_bytes()[:3000])
    assert rejection(path).code == "corrupt"


def raw_video_claiming(path: Path, container: str, width: int, height: int) -> Path:
    """A real raw-video file whose header is rewritten to claim width x height frames; rawvideo takes its size
    from the container alone, so nothing but a size check stands in the way of a frame that large."""
    out = av.open(str(path), "w", format=container)
    with out:
        stream = out.add_stream("rawvideo", rate=RATE)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "rgb24"
        for packet in stream.encode(av.VideoFrame.from_image(Image.new("RGB", (64, 48), (99, 99, 99)))):
            out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    data = bytearray(path.read_bytes())
    if container == "mov":
        entry = data.index(b"raw ", data.index(b"stsd"))
        at = entry + 4 + 6 + 2 + 2 + 2 + 4 + 4 + 4  # past the visual sample entry's fixed fields
        assert data[at : at + 4] == struct.pack(">HH", 64, 48)
        data[at : at + 4] = struct.pack(">HH", width, height)
    else:  # AVI: the stream format's BITMAPINFOHEADER (bottom-up, so a negative height) and the main header
        at = data.index(b"strf") + 8 + 4
        assert data[at : at + 8] == struct.pack("<ii", 64, -48)
        data[at : at + 8] = struct.pack("<ii", width, -height)
        at = data.index(b"avih") + 8 + 32
        assert data[at : at + 8] == struct.pack("<ii", 64, 48)
        data[at : at + 8] = struct.pack("<ii", width, height)
    path.write_bytes(data)
    return path


def test_a_video_claiming_a_gigantic_frame_is_refused(tmp_path):
    # QuickTime's header is taken as it stands (the probe decodes nothing), so our own check refuses the claim.
    found = rejection(raw_video_claiming(tmp_path / "bomb.mov", "mov", 12000, 12000))
    assert (found.code, found.message) == (
        "bomb",
        "bomb: the video claims 12000x12000 = 144,000,000 pixels a frame, over 100,000,000",
    )
    # AVI is probed by decoding: FFmpeg's probe, held to our pixel limit, drops the size rather than take it.
    found = rejection(raw_video_claiming(tmp_path / "bomb.avi", "avi", 12000, 12000))
    assert (found.code, found.message) == (
        "corrupt",
        "corrupt: the video stream has no frame size FFmpeg accepts (none, or over 100,000,000 pixels)",
    )


def test_a_fifo_named_mp4_does_not_block(tmp_path):
    path = tmp_path / "pipe.mp4"
    os.mkfifo(path)
    found = rejection(path)
    assert (found.code, found.message) == ("unreadable", "unreadable: not a regular file")


def test_a_still_image_handed_to_inspect_video_is_refused(corpus):
    assert rejection(corpus / "heic/IMG_2682.heic").code == "not_image"
    assert rejection(corpus / "jpeg/camera/jolla.jpg").code == "not_image"


def test_a_video_is_a_media_item_known_by_its_checksum():
    info = inspect_video(CARD / "video/quicktime.mp4", checksum="ab" * 16, mtime_ns=MTIME_NS)
    assert (info.media_type, info.hothash, info.is_raw) == ("video", "video:" + "ab" * 16, False)
    assert video_identity("cd" * 16) == "video:" + "cd" * 16
