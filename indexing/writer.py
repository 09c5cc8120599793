"""Writes a storage's JSON indexes (DESIGN §4), the master `index.json` and one per import session, and says
whether each is current.

Currentness, in one sentence: an index is current exactly when its IndexRecord says ImaLink wrote it, or found it
equal to a fresh build, at its scope's present trigger-kept IndexRevision and basis, and the file still lstats as
it did then.

What follows from it: while a file is the one its record describes, index_status reads nothing and builds nothing;
a revision (or basis) that has moved answers "stale" at once, even if the rows were then put back (the next write
finds the content equal, leaves the file alone and records it current). A file no record describes (never seen,
replaced by hand or by a restore, edited in place) is read, compared with a fresh build, and the verdict, current
or stale, is recorded, so it is compared once. The lstat cannot see an edit in place that keeps the size and puts
the mtime back (as rsync's quick check cannot): a regeneration, which compares content, puts it right.

Why the revision triggers (indexing migration 0007) stay: they make "has anything this index is built from changed?"
one query over a handful of rows, at any size. Measured at 100,000 photos in 100 sessions of 1,000 (SQLite, on a
busy 2-core machine): status of all 101 indexes through the records 26 ms (11 ms when every revision has moved);
comparing one session index with a fresh build 539 ms (the build alone 292 ms), every index 55 s; even the least a
trigger-free digest must read, every watched column of every row, is 18 ms for one session and 4.3 s for the
storage, on each call. Their price is on writes: a bare UPDATE of 1,000 file rows costs 72 ms with them against
3 ms without, an insert of 1,000 rows 316 ms against 284 ms. The
running totals (imports migration 0002) cannot stand in: they count files and bytes, and a rating, a title or an
author's name is in a session index too. Their cost is the SQLite trap: a migration that rebuilds one of the five
tables drops their triggers, and tests/indexing/test_index_revisions.py::test_the_triggers_are_installed fails.

Every write goes through storages.drive (descriptor-relative, atomic: temp file, fsync, rename), keeps the last
BACKUPS_KEPT copies in .imalink/index-backups/, and is skipped when nothing but the generation time would change.
"""

import json
import logging
import os
import stat
from collections import namedtuple
from datetime import datetime
from datetime import timezone as dt_timezone
from pathlib import Path, PurePosixPath

import xxhash
from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from imports.media import HOTHASH_VERSION
from imports.models import ImageFile, ImportSession
from imports.totals import file_totals
from storages import drive
from storages.layout import BACKUP_DIR, FORMAT_VERSION, MASTER_INDEX, hotpreview_relative_path, session_index_file
from storages.locks import storage_lock
from storages.services import storage_require_available

from .models import IndexRecord, IndexRevision
from .reader import MAX_INDEX_BYTES, IndexReading, parse_index, read_index

logger = logging.getLogger("imalink.indexing")

BACKUPS_KEPT = 5
# Timestamps, not content: an index differing only in these is current, and is not rewritten for them.
VOLATILE_KEYS = ("generated_at", "index_generated", "last_scan")
HASH_ALGORITHMS = {"checksum": "xxh3_128", "hothash": "imalink-hothash-v1"}


def _iso(value):
    return value.isoformat() if value else None


def _without_volatile(data):
    if isinstance(data, dict):
        return {k: _without_volatile(v) for k, v in data.items() if k not in VOLATILE_KEYS}
    if isinstance(data, list):
        return [_without_volatile(v) for v in data]
    return data


def _backup(storage: drive.Storage, relative: PurePosixPath, content: bytes | None) -> None:
    """Keep what is about to be replaced: a plain index (`content`) is copied to .imalink/index-backups (the last
    BACKUPS_KEPT of each are kept); a plain file too large to be an index is moved there whole and never pruned.
    Anything that is not a plain file never gets here: it makes the storage unsafe (drive.UnsafeLayout).
    """
    stem = relative.stem
    if content is None:
        aside = set_aside(storage, relative, name=stem, suffix=".set-aside")
        logger.warning("%s was too large to be an index: moved to %s", storage.shown(relative), storage.shown(aside))
        return
    # Created level by level from the storage's descriptor: never re-creates a storage that has gone.
    with storage.folder(BACKUP_DIR, create=True) as backups:
        drive.write_atomic_at(backups, f"{stem}.{_backup_stamp()}.json", content, shown=storage.shown(BACKUP_DIR))
        with os.scandir(backups) as entries:
            old = sorted(
                e.name
                for e in entries
                if e.is_file(follow_symlinks=False) and e.name.startswith(f"{stem}.") and e.name.endswith(".json")
            )
        for stale in old[:-BACKUPS_KEPT]:
            # Only ImaLink's own backup copies are removed here, never anything under photos/.
            try:
                os.unlink(stale, dir_fd=backups)
            except FileNotFoundError:
                pass


def set_aside(storage: drive.Storage, relative, *, name: str, suffix: str) -> PurePosixPath:
    """Move a file of the storage whole into .imalink/index-backups/ as `<name>.<time stamp><suffix>`, unread and
    never pruned: what ImaLink will not keep in place is kept there. Returns the storage-relative path it got.

    The backups folder is created level by level from the storage's descriptor, so a storage that has gone is
    never re-created; the entry itself is moved, never followed (drive.Storage.rename).
    """
    aside = PurePosixPath(BACKUP_DIR) / f"{name}.{_backup_stamp()}{suffix}"
    storage.rename(relative, aside, create_folders=True)
    return aside


def _backup_stamp() -> str:
    return timezone.now().strftime("%Y%m%dT%H%M%S%fZ")


def write_index(root: Path, relative: str, payload: dict) -> bool:
    """Write one index file atomically. Returns False when the file already held the same content.

    The file in its place is untrusted (see reader.read_index); whatever it is, it is kept (see _backup).
    """
    return _write_index(root, relative, payload)[0]


def _generated_at(data: dict) -> str | None:
    statistics = data.get("statistics") if isinstance(data.get("statistics"), dict) else {}
    generated = data.get("generated_at") or statistics.get("index_generated")
    return generated if isinstance(generated, str) else None  # the file is untrusted


def _write_index(root: Path, relative: str, payload: dict) -> tuple[bool, str | None]:
    """write_index, also saying the generation time of the index now in place."""
    relative = PurePosixPath(relative)
    # imports/ may have been deleted by hand, but the storage folder itself is never re-created: if it has
    # gone (an unplugged drive), this raises instead of writing onto an empty mount point. Every folder on the
    # way is walked from the storage's descriptor without following (storages.drive), and whatever stands in
    # the index's place must be a plain file: anything else raises drive.UnsafeLayout, and nothing is written.
    with drive.Storage(root) as storage:
        with storage.folder(relative.parent, create=True):
            pass
        try:
            raw = storage.read_bytes(relative, limit=MAX_INDEX_BYTES)
            too_large = False
        except FileNotFoundError:
            raw, too_large = None, False
        except drive.FileTooLarge:
            raw, too_large = None, True
        if raw is not None:
            reading = parse_index(raw)
            if reading.data is not None and _without_volatile(reading.data) == _without_volatile(payload):
                return False, _generated_at(reading.data)
            del reading
        if raw is not None or too_large:
            _backup(storage, relative, raw)
        del raw
        data = json.dumps(payload, indent=2, ensure_ascii=False, sort_keys=False).encode("utf-8") + b"\n"
        storage.write_atomic(relative, data)
    logger.info("wrote %s", root / relative)
    return True, _generated_at(payload)


# --- what was written: revisions and records ---------------------------------------------------------
# The rule of the module docstring. The triggers of migration 0007 bump a scope's revision in the same transaction
# as any change to a row its index is built from; an IndexRecord says "the file that stats (inode, size, mtime) so
# was, or was not, equal to the build at revision R and basis B". The revision is read before the build, so a
# commit during the build leaves the record one revision behind: "stale" until the next write, never a wrong
# "current".


def _session_scope(session_id) -> str:
    return f"session:{session_id}"


def _storage_scope(storage_id) -> str:
    return f"storage:{storage_id}"


def _basis(*values) -> str:
    """What an index is built from besides the rows the triggers watch: the writer's versions and the caller's
    objects (which may differ from their rows, e.g. a storage whose new base_path is not yet saved).
    """
    return xxhash.xxh3_128_hexdigest(
        repr((settings.IMALINK_VERSION, FORMAT_VERSION, HASH_ALGORITHMS) + values).encode("utf-8", "surrogatepass")
    )


def _master_basis(storage) -> str:
    return _basis(
        storage.pk,
        str(storage.storage_uuid),
        storage.directory_name,
        storage.base_path,
        storage.display_name,
        storage.description,
        _iso(storage.created_at),
        # Not is_accessible: an index is written and judged only while its storage is accessible (indexing
        # migration 0010), so the true it says on disk is never what makes it current or stale.
    )


# The columns a session index's basis is made of, in order; index_status reads them without making models.
SESSION_BASIS_FIELDS = (
    "id",
    "title",
    "description",
    "imported_at",
    "default_author_id",
    "default_author__name",
    "default_author__email",
    "source_path",
    "target_subdirectory",
    "file_storage_id",
    "file_storage__storage_uuid",
    "file_storage__directory_name",
    "mirror_of_id",
    "mirror_of__file_storage__storage_uuid",
)


def _session_basis(session) -> str:
    author, storage = session.default_author, session.file_storage
    return _session_basis_of(
        (
            session.pk,
            session.title,
            session.description,
            session.imported_at,
            session.default_author_id,
            author.name if author else None,
            author.email if author else None,
            session.source_path,
            session.target_subdirectory,
            storage.pk,
            storage.storage_uuid,
            storage.directory_name,
            session.mirror_of_id,
            session.mirror_of.file_storage.storage_uuid if session.mirror_of_id else None,
        )
    )


def _session_basis_of(values: tuple) -> str:
    """values: SESSION_BASIS_FIELDS of one session, its author and its storage as stored."""

    (
        pk,
        title,
        description,
        imported_at,
        author_id,
        author_name,
        author_email,
        source_path,
        target,
        storage_pk,
        storage_uuid,
        directory,
        mirror_id,
        mirror_storage_uuid,
    ) = values
    # Only a mirror's basis names its mirror, so the basis (and the record) of every other session stays as it was.
    mirror = (mirror_id, str(mirror_storage_uuid)) if mirror_id is not None else ()
    return _basis(
        HOTHASH_VERSION,
        pk,
        title,
        description,
        _iso(imported_at),
        author_id,
        (author_name, author_email) if author_id is not None else None,
        source_path,
        target,
        storage_pk,
        str(storage_uuid),
        directory,
        *mirror,
    )


def _revisions(scopes) -> dict[str, int]:

    return dict(IndexRevision.objects.filter(scope__in=list(scopes)).values_list("scope", "revision"))


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value  # an inode number may use all 64 bits; the column is signed


def _plain_file_stat(storage: drive.Storage, relative: str):
    try:
        st = storage.lstat(relative)
    except (OSError, drive.UnsafeLayout):
        return None
    return st if stat.S_ISREG(st.st_mode) else None


RECORD_FIELDS = ("st_ino", "st_size", "st_mtime_ns", "current", "revision", "basis", "generated_at")
_RecordSeen = namedtuple("_RecordSeen", RECORD_FIELDS)


def _records_of(storage) -> dict:
    """The storage's IndexRecords by relative path, as plain tuples: at a hundred sessions, making the models was
    a third of index_status."""
    if not storage.pk:
        return {}
    rows = IndexRecord.objects.filter(storage_id=storage.pk).values_list("relative_path", *RECORD_FIELDS)
    return {row[0]: _RecordSeen(*row[1:]) for row in rows}


def _stat_matches(record, st) -> bool:
    return st is not None and (record.st_ino, record.st_size, record.st_mtime_ns) == (
        _signed64(st.st_ino),
        st.st_size,
        st.st_mtime_ns,
    )


def _record(
    storage, relative: str, *, revision: int, basis: str, st, generated_at: str | None, current: bool = True
) -> None:
    """Remember whether the file that stats as st equalled the build of its scope at this revision and basis. A
    record only spares a read and a build: failing to save one (SQLite busy under an import, say) costs one full
    check later, never a wrong answer.
    """

    if st is None or not storage.pk:
        return
    record = IndexRecord(
        storage_id=storage.pk,
        relative_path=relative,
        revision=revision,
        basis=basis,
        st_ino=_signed64(st.st_ino),
        st_size=st.st_size,
        st_mtime_ns=st.st_mtime_ns,
        generated_at=generated_at,
        current=current,
    )
    try:
        with transaction.atomic():
            IndexRecord.objects.bulk_create(
                [record],
                update_conflicts=True,
                unique_fields=["storage", "relative_path"],
                update_fields=["revision", "basis", "st_ino", "st_size", "st_mtime_ns", "generated_at", "current"],
            )
    except DatabaseError:
        logger.warning("could not record the state of %s; its status will be checked in full", relative, exc_info=True)


def _write_recorded(storage, relative: str, *, scope: str, basis: str, build) -> bool:
    revision = _revisions([scope]).get(scope, 0)  # before the build (see above)
    root = storage.full_path
    written, generated_at = _write_index(root, relative, build())
    with drive.Storage(root) as opened:
        st = _plain_file_stat(opened, relative)
    _record(storage, relative, revision=revision, basis=basis, st=st, generated_at=generated_at)
    return written


def build_master_index(storage) -> dict:

    # Running totals kept by database triggers (imports/totals.py): a handful of rows at any size.
    totals, counts = file_totals(storage)
    sessions = (
        ImportSession.objects.filter(file_storage=storage).order_by("id").values_list("id", "title", "imported_at")
    )
    return {
        "storage_info": {
            "uuid": str(storage.storage_uuid),
            "directory_name": storage.directory_name,
            "base_path": storage.base_path,
            "full_path": str(storage.full_path),
            "display_name": storage.display_name,
            "description": storage.description,
            "created_at": _iso(storage.created_at),
            "last_scan": _iso(storage.last_scan_at),
            "is_accessible": storage.is_accessible,
            "total_files": totals["present_files"],
            "total_size_mb": round(totals["present_bytes"] / (1024 * 1024), 3),
        },
        "import_sessions": [
            {
                "id": session_id,
                "title": title,
                "imported_at": _iso(imported_at),
                "file_count": counts.get(session_id, (0, 0))[0],
                "index_file": session_index_file(session_id),
            }
            for session_id, title, imported_at in sessions
        ],
        "imalink_version": settings.IMALINK_VERSION,
        "format_version": FORMAT_VERSION,
        "generated_at": _iso(timezone.now()),
        "hash_algorithms": HASH_ALGORITHMS,
    }


def write_master_index(storage) -> bool:
    written = _write_recorded(
        storage,
        MASTER_INDEX,
        scope=_storage_scope(storage.pk),
        basis=_master_basis(storage),
        build=lambda: build_master_index(storage),
    )
    storage.last_index_at = timezone.now()
    if storage.pk:
        type(storage).objects.filter(pk=storage.pk).update(last_index_at=storage.last_index_at)
    return written


def index_file_exists(storage) -> bool:
    try:
        with drive.Storage(storage.full_path) as opened:
            return opened.kind(MASTER_INDEX) == "file"
    except (OSError, drive.UnsafeLayout):
        return False


def _file_entry(image_file) -> dict:
    relative_to_photos = image_file.relative_path.removeprefix("photos/")
    return {
        "filename": relative_to_photos,
        "path": image_file.relative_path,
        "original_filename": image_file.original_filename,
        "file_size": image_file.file_size,
        "checksum": f"xxh3_128:{image_file.checksum}",
        "mtime_ns": image_file.mtime_ns,
        "file_format": image_file.file_format,
        "is_primary": image_file.is_primary,
        "role": image_file.role,
        "status": image_file.status,
    }


def _mirror_entry(session) -> dict:
    """A session made by replication names the session it mirrors (issue 17): {"mirror_of": {"storage_uuid",
    "session_id"}}. The key is left out for every other session, so their indexes read as they always did; an
    optional key, so a reader of format 2 that does not know it loses nothing else (recovery reads both)."""
    if not session.mirror_of_id:
        return {}
    origin = session.mirror_of
    return {"mirror_of": {"storage_uuid": str(origin.file_storage.storage_uuid), "session_id": origin.pk}}


def build_session_index(session) -> dict:
    """The session's files keyed by hothash: each photo's primary file, with its other files as companions."""

    storage = session.file_storage
    files = (
        ImageFile.objects.filter(import_session=session)
        .select_related("photo", "photo__author")
        .order_by("photo_id", "-is_primary", "id")
    )
    entries: dict[str, dict] = {}
    total_size = missing = count = 0
    for image_file in files.iterator(chunk_size=2000):
        count += 1
        total_size += image_file.file_size
        missing += image_file.status == ImageFile.Status.MISSING
        photo = image_file.photo
        entry = entries.get(photo.hothash)
        if entry is not None:
            entry["companions"].append(_file_entry(image_file))
            continue
        entries[photo.hothash] = {
            **_file_entry(image_file),
            "media_type": photo.media_type,
            "duration_s": photo.duration_s,
            "codec": photo.codec,
            "taken_at": _iso(photo.taken_at),
            "created_at": _iso(image_file.created_at),
            "width": photo.width,
            "height": photo.height,
            "has_hotpreview": photo.has_hotpreview,
            "hotpreview": hotpreview_relative_path(photo.hothash) if photo.has_hotpreview else None,
            "hothash_version": photo.hothash_version or HOTHASH_VERSION,
            "camera_make": photo.camera_make,
            "camera_model": photo.camera_model,
            "gps_latitude": photo.gps_latitude,
            "gps_longitude": photo.gps_longitude,
            "photo": {
                "title": photo.title,
                "description": photo.description,
                "rating": photo.rating,
                "tags": photo.tags,
                "metadata_edited_at": _iso(photo.metadata_edited_at),
                "author": {"id": photo.author_id, "name": photo.author.name, "email": photo.author.email}
                if photo.author
                else None,
            },
            "companions": [],
        }
    author = session.default_author
    return {
        "import_session": {
            "id": session.id,
            "title": session.title,
            "description": session.description,
            "imported_at": _iso(session.imported_at),
            "default_author_id": session.default_author_id,
            "default_author": {"id": author.id, "name": author.name, "email": author.email} if author else None,
            "file_storage_id": storage.id,
            "storage_uuid": str(storage.storage_uuid),
            "storage_directory": storage.directory_name,
            "source_path": session.source_path,
            "target_subdirectory": session.target_subdirectory,
            **_mirror_entry(session),
        },
        "files": entries,
        "statistics": {
            "total_files": count,
            "total_size_bytes": total_size,
            "missing_files": missing,
            "index_generated": _iso(timezone.now()),
            "imalink_version": settings.IMALINK_VERSION,
            "format_version": FORMAT_VERSION,
        },
    }


def write_session_index(session) -> bool:
    return _write_recorded(
        session.file_storage,
        session_index_file(session.id),
        scope=_session_scope(session.id),
        basis=_session_basis(session),
        build=lambda: build_session_index(session),
    )


# --- jobs and status --------------------------------------------------------------------------------


def run_index_session_job(job, ctx) -> dict:

    session = job.session
    storage = session.file_storage
    storage_require_available(storage, writable=True)
    ctx.progress(total=1, done=0, current=session_index_file(session.id), force=True)
    with storage_lock(storage, wait=settings.IMALINK_LOCK_WAIT, should_stop=ctx.check_cancelled):
        written = write_session_index(session)
    ctx.progress(done=1, current=None, force=True)
    return {
        "storage_uuid": str(storage.storage_uuid),
        "session_ids": [session.id],
        "index_files": [session_index_file(session.id)],
        "written": int(written),
    }


def write_storage_indexes(storage, *, progress=None, should_stop=None) -> dict:
    """Every session index and then the master index of one storage, under its lock."""

    progress = progress or (lambda **kw: None)
    storage_require_available(storage, writable=True)
    written = 0
    with storage_lock(storage, wait=settings.IMALINK_LOCK_WAIT, should_stop=should_stop):
        # Read under the lock: an import that held it may have changed its session (source path, target)
        # meanwhile, and an index built from rows read before the wait would be stale the moment it is written.
        sessions = list(
            ImportSession.objects.filter(file_storage=storage)
            .select_related("file_storage", "default_author")
            .order_by("id")
        )
        progress(total=len(sessions) + 1, done=0, force=True)
        for done, session in enumerate(sessions, start=1):
            if should_stop:
                should_stop()
            progress(current=session_index_file(session.id))
            written += write_session_index(session)
            progress(done=done)
        written += write_master_index(storage)
        progress(done=len(sessions) + 1, current=None, force=True)
    files = [session_index_file(s.id) for s in sessions] + [MASTER_INDEX]
    return {
        "storage_uuid": str(storage.storage_uuid),
        "session_ids": [s.id for s in sessions],
        "index_files": files,
        "written": written,
    }


def run_index_storage_job(job, ctx) -> dict:
    return write_storage_indexes(job.storage, progress=ctx.progress, should_stop=ctx.check_cancelled)


def _index_state(drive_storage: drive.Storage, relative: str, build_expected) -> dict:
    """Read the index and compare it with a fresh build: the full check, whose cost grows with the photos."""
    try:
        with drive_storage.path_to(relative) as path:
            reading = read_index(path)
    except drive.UnsafeLayout as problem:
        reading = IndexReading(None, f"not a plain file: {problem.path} is {problem.found}", problem.found)
    except FileNotFoundError:
        reading = IndexReading(None, "missing")
    state = {
        "exists": reading.problem != "missing",
        "readable": reading.data is not None,
        "current": False,
        "problem": reading.problem,
        "generated_at": None,
    }
    if reading.data is not None:
        state["current"] = _without_volatile(reading.data) == _without_volatile(build_expected())
        state["generated_at"] = _generated_at(reading.data)
    state["status"] = (
        "missing"
        if not state["exists"]
        else "corrupt"
        if not state["readable"]
        else "current"
        if state["current"]
        else "stale"
    )
    return state


def _index_states(storage, indexes) -> dict[str, dict]:
    """The state of each (relative path, scope, basis, build) index of one storage, by relative path, by the rule
    of the module docstring: a file its record describes is answered from the record, with no read and no build;
    any other file is read, compared with a fresh build if it parses, and the verdict recorded.
    """
    with drive.Storage(storage.full_path) as opened:
        return _index_states_in(opened, storage, indexes)


def _index_states_in(opened: drive.Storage, storage, indexes) -> dict[str, dict]:
    revisions = _revisions(scope for _, scope, _, _ in indexes)  # before any build (see _write_recorded)
    records = _records_of(storage)
    states = {}
    stats = opened.plain_file_stats(relative for relative, _, _, _ in indexes)  # each folder opened once
    for relative, scope, basis, build in indexes:
        revision = revisions.get(scope, 0)
        record = records.get(relative)
        st = stats[relative]  # before the read: a later change to the file then fails the match
        if record is not None and _stat_matches(record, st):
            # The file ImaLink wrote or compared: only a record that is current at today's revision and basis says
            # current. A revision that has moved says stale even if the rows were put back; the next write finds the
            # content equal, leaves the file alone and records it current.
            current = record.current and record.revision == revision and record.basis == basis
            states[relative] = {
                "exists": True,
                "readable": True,  # only a file that parsed is recorded
                "current": current,
                "problem": None,
                "generated_at": record.generated_at,
                "status": "current" if current else "stale",
            }
            continue
        state = states[relative] = _index_state(opened, relative, build)
        if state["readable"]:
            _record(
                storage,
                relative,
                revision=revision,
                basis=basis,
                st=st,
                generated_at=state["generated_at"],
                current=state["current"],
            )
    return states


def session_index_state(session) -> dict:
    """index_status's answer for one session index."""
    relative = session_index_file(session.id)
    indexes = [(relative, _session_scope(session.id), _session_basis(session), lambda: build_session_index(session))]
    return _index_states(session.file_storage, indexes)[relative]


def index_status(storage) -> dict:
    """Whether each index exists, parses, and says what the database says (current) or not (stale).

    Costs three queries and one lstat per index while each file is the one its record describes, whether that says
    current or stale (a running import only moves revisions): no index is read or built. See _index_states.
    """

    root = storage.full_path
    # Plain values, not models: at a hundred sessions, making the models was half of this call. A session is only
    # loaded whole if its index needs the full check.
    rows = list(ImportSession.objects.filter(file_storage=storage).order_by("id").values_list(*SESSION_BASIS_FIELDS))

    def build_session(session_id):
        return build_session_index(
            ImportSession.objects.select_related("file_storage", "default_author").get(pk=session_id)
        )

    # The caller's storage object, saved or not, is what the master index is compared with.
    indexes = [(MASTER_INDEX, _storage_scope(storage.pk), _master_basis(storage), lambda: build_master_index(storage))]
    indexes += [
        (
            session_index_file(row[0]),
            _session_scope(row[0]),
            _session_basis_of(row),
            lambda sid=row[0]: build_session(sid),
        )
        for row in rows
    ]
    states = _index_states(storage, indexes)
    master = states[MASTER_INDEX]
    sessions = [
        {
            "session_id": row[0],
            "title": row[1],
            "index_file": session_index_file(row[0]),
            **states[session_index_file(row[0])],
        }
        for row in rows
    ]
    backups = []
    try:
        with drive.Storage(root) as opened, opened.folder(BACKUP_DIR) as backups_fd, os.scandir(backups_fd) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                if entry.is_file(follow_symlinks=False):  # a set-aside entry is listed by nothing that would follow it
                    st = os.stat(entry.name, dir_fd=backups_fd, follow_symlinks=False)
                    backups.append(
                        {
                            "name": entry.name,
                            "size": st.st_size,
                            "modified_at": datetime.fromtimestamp(st.st_mtime, tz=dt_timezone.utc).isoformat(),
                        }
                    )
    except FileNotFoundError:
        pass
    healthy = master["current"] and all(s["current"] for s in sessions)
    return {
        "storage_uuid": str(storage.storage_uuid),
        "available": True,
        "reason": None,
        "reason_code": None,
        "master_index_exists": master["exists"],
        "master_index": master,
        "sessions": sessions,
        "healthy": healthy,
        "last_generated": _iso(storage.last_index_at),
        "last_scan": _iso(storage.last_scan_at),
        "backups": backups,
    }


def unavailable_index_status(storage, *, reason: str, reason_code: str | None = None) -> dict:
    """Index status of a storage whose drive is not there: nothing on it can be read, so nothing is current."""
    unknown = {
        "exists": False,
        "readable": False,
        "current": False,
        "status": "unavailable",
        "problem": reason,
        "generated_at": None,
    }
    return {
        "storage_uuid": str(storage.storage_uuid),
        "available": False,
        "reason": reason,
        "reason_code": reason_code,
        "master_index_exists": False,
        "master_index": unknown,
        "sessions": [],
        "healthy": False,
        "last_generated": _iso(storage.last_index_at),
        "last_scan": _iso(storage.last_scan_at),
        "backups": [],
    }
