"""Which reader takes a file: content decides, never the name. A video (imports/video.py, FFmpeg by PyAV) is
recognised by its container's first bytes before any image decoder sees it, so an MP4 is never taken for a
broken HEIF; everything else goes to the still-image reader (imports/media.py).

A video's identity is `video:` and its checksum (video.video_identity, docs/MEDIA.md).
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
    return video.inspect_video(Path(path), checksum=checksum, mtime_ns=mtime_ns)
