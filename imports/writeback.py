"""XMP metadata out, when the user asks for it (issue 16, docs/MEDIA.md): a storage set to write sidecars gets
the photo's rating, tags, title and description merged into the photo's sidecar after each change in ImaLink.

- Only a sidecar is ever written: the originals never are.
- An existing sidecar is merged into (imports/xmp.py keeps every field ImaLink does not own), and its previous
  bytes are kept first in `.imalink/quarantine/` (a user's file under photos/ is never lost). A photo without one
  gets `<name of its primary file>.xmp` beside that file, recorded as a new sidecar of the photo.
- It holds the storage's lock (storages.locks), so no import, scan or validation of that storage runs meanwhile.
  A new sidecar is created exclusively: a file that appears at its name in between is never replaced.
- The write is atomic, through the storage's descriptor with nothing followed (storages.drive), and the new
  checksum, size and time are recorded, so the next scan sees nothing changed.
- A storage that is unplugged, read-only or unsafe refuses visibly: the answer says, per storage, that the sidecar
  was not written and why. It never pretends (immich#10538).
"""

import logging
from datetime import datetime, timezone
from pathlib import PurePosixPath

from django.db import transaction

from imalink.errors import ImalinkError
from storages import drive
from storages.layout import QUARANTINE_DIR
from storages.locks import storage_lock
from storages.models import FileStorage
from storages.services import storage_require_available

from .checksums import drive_checksum
from .metadata import MAX_SIDECAR_BYTES
from .models import ImageFile, Photo
from .xmp import XmpUnreadable, merge_xmp

logger = logging.getLogger("imalink.imports")

LOCK_WAIT_S = 5.0  # a photo edit waits this long for a storage's running job, then says the sidecar was not written


def write_sidecars(photo: Photo) -> list[dict]:
    """Write the photo's sidecar on every storage that holds it and is set to write sidecars.

    One answer per such storage: {"storage_uuid", "status": "written" | "not_written", "path", "reason"}.
    """
    answers = []
    primaries = (
        ImageFile.objects.filter(photo=photo, role=ImageFile.Role.ORIGINAL)
        .exclude(status=ImageFile.Status.MISSING)
        .filter(file_storage__xmp_writeback=FileStorage.XmpWriteback.SIDECARS)
        .select_related("file_storage", "import_session")
        .order_by("file_storage_id", "-is_primary", "id")
    )
    seen: set[int] = set()
    for original in primaries:
        if original.file_storage_id in seen:
            continue
        seen.add(original.file_storage_id)
        answers.append(_write_one(photo, original))
    return answers


def _write_one(photo: Photo, original: ImageFile) -> dict:
    storage = original.file_storage
    answer = {"storage_uuid": str(storage.storage_uuid), "status": "not_written", "path": None, "reason": ""}
    try:
        storage_require_available(storage, writable=True)
        with storage_lock(storage, wait=LOCK_WAIT_S), drive.Storage(storage.full_path) as opened:
            sidecar = _sidecar_of(photo, original)
            relative = sidecar.relative_path if sidecar else _new_sidecar_path(opened, original)
            answer["path"] = relative
            existing = _read_existing(opened, sidecar) if sidecar else None
            data = merge_xmp(
                existing,
                rating=photo.rating,
                keywords=photo.tags or [],
                title=photo.title,
                description=photo.description,
            )
            if existing is not None:
                if existing == data:
                    answer.update(status="written", reason="the sidecar already says this")
                    return answer
                _quarantine(opened, relative, existing)
                opened.write_atomic(relative, data)
            else:
                opened.write_new(relative, data)
            st = opened.lstat(relative)
            checksum = drive_checksum(opened, relative)
        _record(photo, original, sidecar, relative, checksum, st)
        answer["status"] = "written"
    except ImalinkError as exc:  # unplugged, read-only, unsafe: refused with the reason
        answer["reason"] = f"The sidecar was not written. {exc.message}"
    except (XmpUnreadable, ValueError) as exc:
        answer["reason"] = f"the sidecar {answer['path']} cannot be merged into: {exc}"
    except (OSError, drive.UnsafeLayout) as exc:
        answer["reason"] = f"the sidecar {answer['path']} could not be written: {exc}"
    if answer["status"] != "written":
        logger.warning("sidecar of %s on %s not written: %s", photo.hothash, storage.storage_uuid, answer["reason"])
    return answer


def _sidecar_of(photo: Photo, original: ImageFile) -> ImageFile | None:
    """The photo's sidecar in this storage: the one beside the primary file, named after it, first."""
    sidecars = list(
        ImageFile.objects.filter(photo=photo, file_storage=original.file_storage, role=ImageFile.Role.SIDECAR)
        .exclude(status=ImageFile.Status.MISSING)
        .order_by("id")
    )
    folder = PurePosixPath(original.relative_path).parent
    beside = [f for f in sidecars if PurePosixPath(f.relative_path).parent == folder]
    return (beside or sidecars or [None])[0]


def _new_sidecar_path(opened: drive.Storage, original: ImageFile) -> str:
    """`IMG_1.xmp` beside IMG_1.JPG, as Lightroom names it; `IMG_1.JPG.xmp` (darktable's) when that name is
    taken by a file ImaLink does not know as this photo's."""
    path = PurePosixPath(original.relative_path)
    for candidate in (path.with_suffix(".xmp"), path.with_name(path.name + ".xmp")):
        if opened.kind(candidate.as_posix()) is None:
            return candidate.as_posix()
    raise ImalinkError(
        f"Both {path.with_suffix('.xmp')} and {path.name}.xmp exist beside {path} and are not its known sidecar: "
        "ImaLink does not write over them.",
        code="sidecar_name_taken",
        status=409,
    )


def _read_existing(opened: drive.Storage, sidecar: ImageFile) -> bytes:
    return opened.read_bytes(sidecar.relative_path, limit=MAX_SIDECAR_BYTES)


def _quarantine(opened: drive.Storage, relative: str, data: bytes) -> None:
    """The sidecar's previous bytes, kept before it is replaced: .imalink/quarantine/<UTC time>/<its path>."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    opened.write_atomic((QUARANTINE_DIR / stamp / relative).as_posix(), data, create_folders=True)


def _record(photo, original: ImageFile, sidecar: ImageFile | None, relative: str, checksum: str, st) -> None:
    with transaction.atomic():
        if sidecar is not None:
            ImageFile.objects.filter(pk=sidecar.pk).update(
                checksum=checksum, file_size=st.st_size, mtime_ns=st.st_mtime_ns, status=ImageFile.Status.PRESENT
            )
            return
        ImageFile.objects.create(
            photo=photo,
            import_session=original.import_session,
            file_storage=original.file_storage,
            relative_path=relative,
            original_filename=PurePosixPath(relative).name[:1024],
            file_format="xmp",
            file_size=st.st_size,
            mtime_ns=st.st_mtime_ns,
            checksum=checksum,
            is_primary=False,
            role=ImageFile.Role.SIDECAR,
            status=ImageFile.Status.PRESENT,
        )
