""" "Safe to format": the source folder of an import read again, file by file, against the storage.

The answer is yes only when every file there (junk such as .DS_Store aside, as the import leaves it aside) is in
the session's storage with identical bytes: as an original, a companion, or a duplicate of a file already there.
The storage's copy is read again too, through the storage's own descriptor (storages.drive), because the copy
is what the user keeps once the card is formatted. Nothing is written, in the source or in the storage.
"""

import time

from django.utils import timezone

from imalink.errors import ImalinkError
from storages import drive
from storages.paths import resolve_client_dir
from storages.services import storage_require_available

from .checksums import drive_checksum, file_checksum
from .models import ImageFile, ImportSession, SourceEntry
from .sources import SourceTree, unsafe_reason

MAX_LISTED = 1000


def verify_source(session: ImportSession, *, progress=None, should_stop=None) -> dict:
    """The verdict on the session's source folder (see the module docstring), with every file that is not safe."""
    progress = progress or (lambda **kw: None)
    storage = session.file_storage
    verify_validate(session)
    source = resolve_client_dir(session.source_path, field="source_path")
    started = time.monotonic()
    problems: list[dict] = []
    counts = {"checked_files": 0, "archived_files": 0, "not_archived_files": 0, "bytes_read": 0}

    def problem(path: str, code: str, reason: str) -> None:
        counts["not_archived_files"] += 1
        if len(problems) < MAX_LISTED:
            problems.append({"path": path, "code": code, "reason": reason})

    fates = dict(
        SourceEntry.objects.filter(import_session=session)
        .exclude(fate__in=[SourceEntry.Fate.ARCHIVED, SourceEntry.Fate.COMPANION, SourceEntry.Fate.DUPLICATE])
        .values_list("path", "reason")
    )
    copies: dict[str, tuple[bool, str]] = {}  # checksum -> (the storage's copy is sound, why not)
    with SourceTree(source) as tree, drive.Storage(storage.full_path) as store:
        files, skipped = tree.walk(recursive=True)
        progress(total=len(files) + len(skipped), done=0, force=True)
        for s in skipped:
            counts["checked_files"] += 1
            problem(s.relative, s.code, s.reason)
        for f in files:
            if should_stop is not None:
                should_stop()
            counts["checked_files"] += 1
            relative = f.relative.as_posix()
            try:
                with f.reading() as opened:
                    checksum = file_checksum(opened.path)
                    counts["bytes_read"] += opened.stat.st_size
            except drive.UnsafeLayout as exc:
                problem(relative, "unsafe_source", unsafe_reason(exc))
                continue
            except OSError as exc:
                problem(relative, "unreadable", f"cannot be read: {exc.strerror}")
                continue
            if checksum not in copies:
                copies[checksum] = _storage_copy(store, storage, checksum, counts)
            sound, why = copies[checksum]
            if sound:
                counts["archived_files"] += 1
            else:
                earlier = fates.get(relative)
                problem(relative, "not_archived", f"{why}; the import said: {earlier}" if earlier else why)
            progress(done=counts["checked_files"], current=relative)
    return {
        "session_id": session.pk,
        "source_path": str(source),
        "storage_uuid": str(storage.storage_uuid),
        "safe_to_format": counts["not_archived_files"] == 0,
        **counts,
        "problems": problems,
        "checked_at": timezone.now().isoformat(),
        "duration_s": round(time.monotonic() - started, 3),
    }


def _storage_copy(store: drive.Storage, storage, checksum: str, counts: dict) -> tuple[bool, str]:
    """Whether the storage holds these bytes: a recorded file with this checksum, read again and matching."""
    rows = (
        ImageFile.objects.filter(file_storage=storage, checksum=checksum)
        .exclude(status=ImageFile.Status.MISSING)
        .values_list("relative_path", "file_size")
    )
    why = "no file with these bytes is in the storage"
    for relative, size in rows:
        try:
            again = drive_checksum(store, relative)
        except FileNotFoundError:
            why = f"its copy {relative} is no longer in the storage"
            continue
        except (OSError, drive.UnsafeLayout) as exc:
            why = f"its copy {relative} cannot be read ({exc})"
            continue
        counts["bytes_read"] += size
        if again == checksum:
            return True, ""
        why = f"its copy {relative} no longer has the same bytes"
    return False, why


def run_verify_source_job(job, ctx) -> dict:
    """Job runner for kind 'verify_source'."""
    session = ImportSession.objects.select_related("file_storage").get(pk=job.session_id)
    return verify_source(session, progress=ctx.progress, should_stop=ctx.check_cancelled)


def verify_validate(session: ImportSession) -> None:
    """Checked before the job starts, so that a bad request gets its error at once and nothing is queued."""
    if not session.source_path:
        raise ImalinkError(
            f"Import session {session.pk} has not imported a folder yet: there is no source to verify.",
            code="no_source",
            status=409,
        )
    storage_require_available(session.file_storage)
    resolve_client_dir(session.source_path, field="source_path")
