"""Mutated JPEGs and HEICs from the corpus fed to inspect_file: it returns a MediaInfo or raises MediaRejected
with a message, nothing else, and never takes more than a few seconds on one file. No database.

The card corpus is folded in (issue 16): its videos through imports.inspection (content decides the reader, so a
damaged MP4 may reach either), and its XMP sidecars through imports.xmp.read_xmp.
"""

import time
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imports import inspection
from imports.media import MediaInfo, MediaRejected, inspect_file
from imports.xmp import XmpFields, XmpUnreadable, read_xmp
from tests.conftest import CORPUS, CORPUS_CARD

PER_FILE_SECONDS = 5  # a bound on pathological inputs, not a speed target
EXIF_REGION = 64 * 1024

JPEGS = (
    sorted(CORPUS.glob("jpeg/orientation/f*t.jpg"))
    + sorted(CORPUS.glob("jpeg/orientation/orientation_rectangle.jpg"))
    + [CORPUS / "jpeg/camera/img_1771.jpg"]
    + sorted(CORPUS.glob("jpeg/exif_edge/*.jpg"))
)
HEICS = sorted(CORPUS.glob("heic/*.heic"))
VIDEOS = sorted(p for p in CORPUS_CARD.glob("video/*") if p.stat().st_size < 300_000)
SIDECARS = sorted(CORPUS_CARD.glob("sidecar/*.xmp"))

pytestmark = [
    pytest.mark.database_independent,
    pytest.mark.skipif(
        not JPEGS or not HEICS or not VIDEOS or not SIDECARS, reason=f"the shared corpora beside {CORPUS} are missing"
    ),
    # The filters imports.media sets at import are dropped when pytest's collection ends; restore them so the
    # fuzzing runs under the production filters (a bomb warning is an error, Pillow's EXIF quirks are noise).
    pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning:PIL"),
]

# Hypothesis reuses one tmp_path for every example of a test; each example overwrites the same file.
FUZZ_SETTINGS = dict(
    deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


@cache
def original(path: Path) -> bytes:
    return path.read_bytes()


def flips():
    """(offset fraction, xor mask) pairs;
    apply_flips scales each fraction to the file, or to its first `limit` bytes."""
    return st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), min_size=1, max_size=16)


def apply_flips(data: bytes, changes, limit: int | None = None) -> bytes:
    out = bytearray(data)
    span = min(len(out), limit) if limit else len(out)
    for fraction, mask in changes:
        out[int(fraction * span)] ^= mask
    return bytes(out)


def check(tmp_path: Path, name: str, data: bytes, inspect=inspect_file) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    started = time.monotonic()
    try:
        result = inspect(path, checksum="0" * 32, mtime_ns=0)
    except MediaRejected as exc:
        assert exc.message and str(exc), "a rejection must say why"
        assert exc.code in MediaRejected.CODES
    else:
        assert isinstance(result, MediaInfo)
        assert len(result.hothash) == 32 or result.hothash == "video:" + "0" * 32
    elapsed = time.monotonic() - started
    assert elapsed < PER_FILE_SECONDS, f"{name} ({len(data)} bytes) took {elapsed:.1f}s"


# --- JPEG ----------------------------------------------------------------------------------------------

jpeg_source = st.sampled_from(JPEGS)
heic_source = st.sampled_from(HEICS)


@settings(max_examples=500, **FUZZ_SETTINGS)
@given(source=jpeg_source, changes=flips())
def test_jpeg_with_flipped_bytes_is_inspected_or_rejected(tmp_path, source, changes):
    check(tmp_path, source.name, apply_flips(original(source), changes))


@settings(max_examples=400, **FUZZ_SETTINGS)
@given(source=jpeg_source, fraction=st.floats(0, 1, exclude_max=True))
def test_truncated_jpeg_is_inspected_or_rejected(tmp_path, source, fraction):
    data = original(source)
    check(tmp_path, source.name, data[: int(fraction * len(data))])


@settings(max_examples=400, **FUZZ_SETTINGS)
@given(
    source=jpeg_source,
    insertions=st.lists(st.tuples(st.floats(0, 1), st.binary(min_size=1, max_size=64)), min_size=1, max_size=4),
)
def test_jpeg_with_inserted_bytes_is_inspected_or_rejected(tmp_path, source, insertions):
    data = original(source)
    for fraction, blob in insertions:
        at = int(fraction * len(data))
        data = data[:at] + blob + data[at:]
    check(tmp_path, source.name, data)


@settings(max_examples=500, **FUZZ_SETTINGS)
@given(
    source=jpeg_source,
    changes=flips(),
    overwrite=st.one_of(
        st.none(),
        st.tuples(
            st.integers(0, EXIF_REGION - 1),
            st.sampled_from(
                [b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x7f\xff\xff\xff", b"\xff\xd9", b"\xff\xe1\xff\xff"]
            ),
        ),
    ),
)
def test_jpeg_with_corrupt_exif_region_is_inspected_or_rejected(tmp_path, source, changes, overwrite):
    data = bytearray(apply_flips(original(source), changes, limit=EXIF_REGION))
    if overwrite is not None:
        at, blob = overwrite
        at = at % max(1, min(len(data), EXIF_REGION))
        data[at : at + len(blob)] = blob  # counts, offsets and lengths pushed to their extremes
    check(tmp_path, source.name, bytes(data))


# --- HEIC (each decode is slower, so fewer examples) ------------------------------------------------


@settings(max_examples=60, **FUZZ_SETTINGS)
@given(source=heic_source, changes=flips())
def test_heic_with_flipped_bytes_is_inspected_or_rejected(tmp_path, source, changes):
    check(tmp_path, source.name, apply_flips(original(source), changes))


@settings(max_examples=60, **FUZZ_SETTINGS)
@given(source=heic_source, fraction=st.floats(0, 1, exclude_max=True))
def test_truncated_heic_is_inspected_or_rejected(tmp_path, source, fraction):
    data = original(source)
    check(tmp_path, source.name, data[: int(fraction * len(data))])


@settings(max_examples=60, **FUZZ_SETTINGS)
@given(source=heic_source, changes=flips(), insert=st.tuples(st.floats(0, 1), st.binary(min_size=1, max_size=32)))
def test_heic_with_corrupt_box_headers_is_inspected_or_rejected(tmp_path, source, changes, insert):
    # The ftyp/meta/iinf/iloc/ipma boxes that the orientation probe walks sit in the first few KB.
    data = apply_flips(original(source), changes, limit=4096)
    at = int(insert[0] * min(len(data), EXIF_REGION))
    check(tmp_path, source.name, data[:at] + insert[1] + data[at:])


# --- videos and sidecars (the card corpus) ---------------------------------------------------------------

video_source = st.sampled_from(VIDEOS)


@settings(max_examples=40, **FUZZ_SETTINGS)
@given(source=video_source, changes=flips())
def test_video_with_flipped_bytes_is_inspected_or_rejected(tmp_path, source, changes):
    check(tmp_path, source.name, apply_flips(original(source), changes, limit=8192), inspect=inspection.inspect_file)


@settings(max_examples=40, **FUZZ_SETTINGS)
@given(source=video_source, fraction=st.floats(0, 1, exclude_max=True))
def test_truncated_video_is_inspected_or_rejected(tmp_path, source, fraction):
    data = original(source)
    check(tmp_path, source.name, data[: int(fraction * len(data))], inspect=inspection.inspect_file)


@settings(max_examples=150, **FUZZ_SETTINGS)
@given(source=st.sampled_from(SIDECARS), changes=flips(), fraction=st.floats(0.05, 1))
def test_damaged_sidecars_are_read_or_refused_with_a_reason(source, changes, fraction):
    data = apply_flips(original(source), changes)
    data = data[: max(1, int(fraction * len(data)))]
    started = time.monotonic()
    try:
        fields = read_xmp(data)
    except XmpUnreadable as exc:
        assert str(exc), "a refusal must say why"
    else:
        assert isinstance(fields, XmpFields)
    assert time.monotonic() - started < PER_FILE_SECONDS
