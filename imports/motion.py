"""A motion photo's embedded video (issue 16): Samsung, Google and others append a short MP4 to the still. The
file is archived whole; this finds where its video lies so the page can play it, without copying anything.

The places are read from the file's own XMP, as the Motion Photo format 1.0 (Google's, also written by Samsung's
One UI) lays them out: `Container:Directory` lists the items in file order with their `Item:Length` and
`Item:Padding`, the primary still first, so an item starts where the ones before it end. The older Google form,
`GCamera:MicroVideoOffset`, counts from the end of the file. Either way the place is taken only when an ISO BMFF
`ftyp` box stands there: a directory that lies is not followed.
"""

from dataclasses import dataclass

from .xmp import XmpUnreadable, read_xmp_properties

HEAD_BYTES = 4 * 1024 * 1024  # the still's metadata (and so its XMP) is near its start
_XMP_START, _XMP_END = b"<x:xmpmeta", b"</x:xmpmeta>"


@dataclass(frozen=True)
class EmbeddedVideo:
    offset: int
    length: int
    mime: str


def embedded_video(fd_read, size: int) -> EmbeddedVideo | None:
    """Where the embedded video of a file lies. `fd_read(offset, n)` reads n bytes at offset (os.pread on an open
    descriptor); `size` is the file's size. None when the file is not a motion photo, or says so falsely."""
    head = fd_read(0, min(size, HEAD_BYTES))
    start = head.find(_XMP_START)
    end = head.find(_XMP_END, start)
    if start < 0 or end < 0:
        return None
    try:
        values = read_xmp_properties(head[start : end + len(_XMP_END)])
    except (XmpUnreadable, ValueError):
        return None
    found = _from_directory(values, size) or _from_micro_video(values, size)
    if found is None or found.length < 16 or fd_read(found.offset + 4, 4) != b"ftyp":
        return None
    return found


def _from_directory(values: dict, size: int) -> EmbeddedVideo | None:
    offset, i = 0, 1
    while f"Xmp.Container.Directory[{i}]" in values:
        item = f"Xmp.Container.Directory[{i}]/Container:Item/Item:"
        length, padding = _number(values.get(item + "Length")), _number(values.get(item + "Padding")) or 0
        mime, semantic = values.get(item + "Mime", ""), values.get(item + "Semantic", "")
        if semantic == "MotionPhoto" or (i > 1 and str(mime).startswith("video/")):
            if i == 1 or length is None or offset + length > size:
                return None
            return EmbeddedVideo(offset, length, str(mime) or "video/mp4")
        if length is None:
            return None  # an item before the video without its length: the video's place cannot be known
        offset += length + padding
        i += 1
    return None


def _from_micro_video(values: dict, size: int) -> EmbeddedVideo | None:
    from_end = _number(values.get("Xmp.GCamera.MicroVideoOffset"))
    if not from_end or from_end > size:
        return None
    return EmbeddedVideo(size - from_end, from_end, "video/mp4")


def _number(value) -> int | None:
    text = str(value).strip() if value is not None else ""
    return int(text) if text.isascii() and text.isdigit() and len(text) < 16 else None
