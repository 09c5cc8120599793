"""Which reader takes a file: content decides, never the name. A video (imports/video.py, FFmpeg by PyAV) is
recognised by its container's first bytes before any image decoder sees it, so an MP4 is never taken for a
broken HEIF; everything else goes to the still-image reader (imports/media.py).

A video's identity is `video:` and its checksum (docs/MEDIA.md): a poster frame says too little to tell two
clips apart, and a video has no second rendering (as a RAW has its JPEG) that a content hash would need to meet.
"""

from pathlib import Path

from . import media, video


def inspect_file(
    path: Path, *, checksum: str, mtime_ns: int, max_pixels: int = media.DEFAULT_MAX_PIXELS
) -> media.MediaInfo:
    """A MediaInfo for a photo or a video, or media.MediaRejected. No other exception escapes."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(video.SNIFF_BYTES)
    except OSError as exc:
        raise media.MediaRejected("unreadable", f"cannot read the file ({exc.strerror or exc})") from exc
    if video.looks_like_video(head) is None:
        return media.inspect_file(path, checksum=checksum, mtime_ns=mtime_ns, max_pixels=max_pixels)
    found = video.inspect_video(Path(path), checksum=checksum, mtime_ns=mtime_ns)
    return media.MediaInfo(
        file_format=found.file_format,
        is_raw=False,
        width=found.width,
        height=found.height,
        taken_at=found.taken_at,
        taken_at_source=found.taken_at_source,
        camera_make=found.camera_make,
        camera_model=found.camera_model,
        gps_latitude=found.gps_latitude,
        gps_longitude=found.gps_longitude,
        hothash=video_identity(checksum),
        has_hotpreview=found.has_hotpreview,
        hotpreview=found.hotpreview,
        media_type="video",
        duration_s=found.duration_s,
        codec=found.codec,
    )


def video_identity(checksum: str) -> str:
    """A video's hothash: `video:` and the xxh3-128 of its bytes (the same form as a preview-less RAW's `raw:`)."""
    return f"video:{checksum}"
