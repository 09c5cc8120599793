"""XMP metadata in: what a photo's sidecars and embedded XMP say, applied to its item (issue 16, docs/MEDIA.md).

Order, weakest first: the file's own EXIF (imports/media.py), its embedded XMP, then its sidecars, since a
sidecar is where Lightroom, darktable, Capture One and digiKam keep what the user decided. A value that XMP
leaves out keeps what came before. After the import, a changed sidecar is applied again only when it is newer
than the user's last change in ImaLink (Photo.metadata_edited_at): the newer source wins, an older sidecar
never overwrites an edit.
"""

import os
from datetime import datetime, timezone

from django.utils import timezone as django_timezone

from storages import drive

from .models import Photo
from .xmp import XmpFields, XmpUnreadable, read_xmp

MAX_SIDECAR_BYTES = 4 * 1024 * 1024  # real sidecars are kilobytes; a Lightroom file with many masks a few MB
# What ImaLink keeps of XMP, as Photo's fields.
MAX_TAGS, MAX_TAG_LENGTH = 100, 200


def read_sidecar(fd_path, size: int) -> tuple[XmpFields | None, str]:
    """(fields, "") or (None, why not) for a sidecar read through an already opened file's path."""
    if size > MAX_SIDECAR_BYTES:
        return None, f"the sidecar is {size:,} bytes, more than the {MAX_SIDECAR_BYTES:,} ImaLink reads"
    try:
        with open(fd_path, "rb") as fh:
            data = fh.read(MAX_SIDECAR_BYTES + 1)
        return read_xmp(data), ""
    except (XmpUnreadable, ValueError) as exc:
        return None, str(exc)[:300]
    except OSError as exc:
        return None, f"cannot be read: {exc.strerror}"


def read_embedded(packet: bytes | None) -> XmpFields | None:
    """The fields of a file's embedded XMP packet; None when there is none or it cannot be read."""
    if not packet or len(packet) > MAX_SIDECAR_BYTES:
        return None
    try:
        return read_xmp(packet)
    except (XmpUnreadable, ValueError):
        return None  # the picture is fine; its embedded metadata is not worth failing it over


def xmp_values(fields: XmpFields) -> dict:
    """Photo field values that this XMP sets; a field it leaves out is not there."""
    values: dict = {}
    if fields.rating is not None:
        values["rating"] = max(0, min(5, fields.rating))
    if fields.keywords:
        values["tags"] = list(dict.fromkeys(k[:MAX_TAG_LENGTH] for k in fields.keywords))[:MAX_TAGS]
    if fields.title:
        values["title"] = fields.title[:300]
    if fields.description:
        values["description"] = fields.description[:10_000]
    if fields.taken_at is not None:
        values["taken_at"] = fields.taken_at
    if fields.gps_latitude is not None and fields.gps_longitude is not None:
        values["gps_latitude"], values["gps_longitude"] = fields.gps_latitude, fields.gps_longitude
    return values


def merged_values(sources: list[XmpFields]) -> dict:
    """The values of several XMP sources, the later overriding the earlier field by field."""
    values: dict = {}
    for fields in sources:
        values.update(xmp_values(fields))
    return values


def sidecar_is_newer(sidecar_mtime_ns: int, edited_at: datetime | None) -> bool:
    """Whether a sidecar changed after the user's last change in ImaLink (or the user never changed anything)."""
    if edited_at is None:
        return True
    return datetime.fromtimestamp(sidecar_mtime_ns / 1e9, tz=timezone.utc) > edited_at


def read_stored_sidecar(opened: drive.Storage, relative: str, size: int) -> tuple[XmpFields | None, str]:
    """A sidecar in a storage, read through the storage's descriptor with nothing followed."""
    if size > MAX_SIDECAR_BYTES:
        return None, f"the sidecar is {size:,} bytes, more than the {MAX_SIDECAR_BYTES:,} ImaLink reads"
    try:
        fd, _ = opened.open_read(relative)
    except (OSError, drive.UnsafeLayout) as exc:
        return None, f"cannot be read: {exc}"
    try:
        return read_sidecar(f"/proc/self/fd/{fd}", size)
    finally:
        os.close(fd)


def apply_sidecar(hothash: str, fields: XmpFields, mtime_ns: int) -> tuple[bool, str | list[str]]:
    """Apply a changed sidecar to its item if it is newer than the user's last change in ImaLink.

    (True, the fields set) or (False, why not)."""
    photo = Photo.objects.filter(hothash=hothash).only("pk", "metadata_edited_at").first()
    if photo is None:
        return False, "its item is gone"
    if not sidecar_is_newer(mtime_ns, photo.metadata_edited_at):
        return False, "older than the last change made in ImaLink, which is kept"
    values = xmp_values(fields)
    if values:
        Photo.objects.filter(pk=photo.pk).update(**values, updated_at=django_timezone.now())
    return True, sorted(values)
