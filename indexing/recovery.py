"""Disaster recovery (DESIGN §6): rebuild the database from the JSON indexes on the drives.

Index files are hostile input. Every value is checked before it is used: a path must stay inside its
storage, a checksum must be a checksum, a hotpreview must sit where its hothash says. Whatever fails is
reported and skipped, and the rest of the storage is still recovered. Running recovery twice changes
nothing the second time.
"""

import logging
import os
import re
import time
import uuid as uuid_lib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from django.core.management.color import no_style
from django.db import connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from imports.models import Author, ImageFile, ImportSession, Photo
from storages import layout
from storages.atomic import make_folders_below, write_atomic
from storages.models import FileStorage

from .reader import read_index
from .writer import BACKUP_DIR

logger = logging.getLogger("imalink.recovery")

RECOVERY_MAX_INDEX_BYTES = 256 * 1024 * 1024
MAX_HOTPREVIEW_BYTES = 2 * 1024 * 1024
SEARCH_DEPTH = 6
DIRECTORY_NAME = re.compile(r"^imalink_\d{8}_\d{6}_[0-9a-f]{8}$")
HEX32 = re.compile(r"^[0-9a-f]{32}$")
HOTHASH = re.compile(r"^(?:[0-9a-f]{32}|raw:[0-9a-f]{32})$")
SESSION_FILE = re.compile(r"^session_(\d{1,18})\.json$")
MAX_LISTED = 500


class Bad(Exception):
    """One value of an index that cannot be trusted; the entry holding it is skipped."""


# --- typed readers for untrusted values -------------------------------------------------------------

def _str(value, name, *, max_length=10_000, default=None) -> str:
    if value is None and default is not None:
        return default
    if not isinstance(value, str):
        raise Bad(f"{name} is a {type(value).__name__}, not a string")
    if "\x00" in value:
        raise Bad(f"{name} contains a NUL byte")
    return value[:max_length]


def _int(value, name, *, minimum=None, maximum=None, optional=False):
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise Bad(f"{name} is not a whole number")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise Bad(f"{name}={value} is out of range")
    return value


def _float(value, name, *, low, high):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (low <= value <= high):
        raise Bad(f"{name} is not a number between {low} and {high}")
    return float(value)


def _bool(value, name, *, default=False) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise Bad(f"{name} is not true or false")
    return value


def _datetime(value, name):
    if value is None:
        return None
    text = _str(value, name, max_length=64)
    try:
        parsed = parse_datetime(text)
    except ValueError:
        parsed = None
    if parsed is None:
        raise Bad(f"{name}={text!r} is not a date and time")
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, timezone.utc)


def _checksum(value, name) -> str:
    text = _str(value, name, max_length=80)
    hex_part = text.removeprefix("xxh3_128:")
    if not HEX32.match(hex_part):
        raise Bad(f"{name}={text[:40]!r} is not an xxh3_128 checksum")
    return hex_part


def _storage_path(root: Path, value, name) -> str:
    """A storage-relative POSIX path under photos/ that stays inside the storage, symlinks resolved."""
    text = _str(value, name, max_length=4096)
    parts = text.split("/")
    if text.startswith("/") or "\\" in text or parts[0] != "photos" or len(parts) < 2 or any(p in ("", ".", "..") for p in parts):
        raise Bad(f"{name}={text[:200]!r} is not a path inside the storage's photos/ folder")
    real_root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(root, text))
    if not real.startswith(real_root + os.sep):
        raise Bad(f"{name}={text[:200]!r} leads out of the storage through a symbolic link")
    return text


# --- reports ----------------------------------------------------------------------------------------

@dataclass
class StorageRecovery:
    path: str
    storage_uuid: str | None = None
    storage_id: int | None = None
    display_name: str | None = None
    outcome: str = "restored"  # restored | unchanged | skipped
    storage_created: bool = False
    index_sources: dict = field(default_factory=dict)
    sessions_restored: list = field(default_factory=list)
    sessions_existing: list = field(default_factory=list)
    session_id_changes: list = field(default_factory=list)
    authors_restored: int = 0
    photos_restored: int = 0
    files_restored: int = 0
    files_existing: int = 0
    hotpreviews_restored: int = 0
    missing_files: list = field(default_factory=list)
    missing_count: int = 0
    conflicts: list = field(default_factory=list)
    problems: list = field(default_factory=list)

    def problem(self, where: str, what: str) -> None:
        if len(self.problems) < MAX_LISTED:
            self.problems.append({"where": where, "problem": what})

    def conflict(self, where: str, what: str) -> None:
        if len(self.conflicts) < MAX_LISTED:
            self.conflicts.append({"where": where, "conflict": what})


@dataclass
class RecoveryReport:
    search_roots: list
    dry_run: bool
    storages: list = field(default_factory=list)
    found: int = 0
    duration_s: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


# --- finding storages ----------------------------------------------------------------------------------

def find_storage_folders(roots, *, depth: int = SEARCH_DEPTH) -> list[Path]:
    """Every imalink_* folder under the roots that holds .imalink/storage.json or index.json.

    Symbolic links are not followed, and the search does not descend into a storage it found.
    """
    found: list[Path] = []
    seen: set[str] = set()
    for root in roots:
        stack = [(Path(root), 0)]
        while stack:
            folder, level = stack.pop()
            if folder.name.startswith("imalink_"):
                if (folder / layout.MARKER).is_file() or (folder / "index.json").is_file():
                    real = os.path.realpath(folder)
                    if real not in seen:
                        seen.add(real)
                        found.append(folder)
                    continue
            if level >= depth:
                continue
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name, reverse=True)
            except OSError:
                continue
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False) and entry.name not in ("photos", ".imalink", "imports"):
                        stack.append((Path(entry.path), level + 1))
                except OSError:
                    continue
    return sorted(found)


# --- reading indexes with fallback to backups ------------------------------------------------------

def _read_with_backups(root: Path, relative: str, report: StorageRecovery, check) -> dict | None:
    """The index at `relative`, or the newest backup of it that parses and passes `check`."""
    reading = read_index(root / relative, max_bytes=RECOVERY_MAX_INDEX_BYTES)
    if reading.data is not None:
        try:
            check(reading.data)
            report.index_sources[relative] = "file"
            return reading.data
        except Bad as exc:
            report.problem(relative, str(exc))
    elif reading.problem != "missing":
        report.problem(relative, reading.problem)
    stem = Path(relative).stem
    backups = sorted((root / BACKUP_DIR).glob(f"{stem}.*.json"), reverse=True) if (root / BACKUP_DIR).is_dir() else []
    for backup in backups:
        if backup.is_symlink():
            continue
        candidate = read_index(backup, max_bytes=RECOVERY_MAX_INDEX_BYTES)
        if candidate.data is None:
            continue
        try:
            check(candidate.data)
        except Bad:
            continue
        report.index_sources[relative] = f"backup:{backup.name}"
        if reading.problem != "missing":
            report.problem(relative, f"used the backup {backup.name} instead")
        return candidate.data
    report.index_sources[relative] = "missing" if reading.problem == "missing" else "unusable"
    return None


def _check_master(data) -> None:
    info = data.get("storage_info")
    if not isinstance(info, dict):
        raise Bad("storage_info is missing or not an object")
    if not isinstance(data.get("import_sessions", []), list):
        raise Bad("import_sessions is not a list")


def _check_session(data) -> None:
    meta = data.get("import_session")
    if not isinstance(meta, dict):
        raise Bad("import_session is missing or not an object")
    _int(meta.get("id"), "import_session.id", minimum=1, maximum=2**62)
    if not isinstance(data.get("files", {}), dict):
        raise Bad("files is not an object")


# --- the recovery of one storage -------------------------------------------------------------------

def _identity(folder: Path, master: dict | None, report: StorageRecovery) -> uuid_lib.UUID | None:
    marker = layout.read_marker(folder)
    from_marker = uuid_lib.UUID(marker.storage_uuid) if marker.storage_uuid else None
    from_index = None
    if master is not None:
        try:
            from_index = uuid_lib.UUID(_str(master["storage_info"].get("uuid"), "storage_info.uuid", max_length=64))
        except (Bad, ValueError) as exc:
            report.problem("index.json", f"storage_info.uuid: {exc}")
    if from_marker and from_index and from_marker != from_index:
        report.conflict("index.json", f"the index names storage {from_index}, the marker {from_marker}; the marker wins")
    chosen = from_marker or from_index
    if chosen is None:
        report.problem(".imalink/storage.json", f"no usable storage uuid (marker: {marker.problem})")
    elif not folder.name.endswith(chosen.hex[:8]):
        report.conflict(folder.name, f"the folder name does not end with the uuid's first 8 hex digits ({chosen.hex[:8]})")
    return chosen


def _author(data, where: str, report: StorageRecovery) -> Author | None:
    if data is None:
        return None
    try:
        if isinstance(data, str):
            data = {"name": data}
        if not isinstance(data, dict):
            raise Bad("author is not an object")
        name = _str(data.get("name"), "author.name", max_length=200).strip()
        email = _str(data.get("email"), "author.email", max_length=254, default="")
        author_id = _int(data.get("id"), "author.id", minimum=1, maximum=2**62, optional=True)
    except Bad as exc:
        report.problem(where, str(exc))
        return None
    if not name:
        return None
    if author_id is not None:
        existing = Author.objects.filter(pk=author_id).first()
        if existing is None:
            report.authors_restored += 1
            return Author.objects.create(pk=author_id, name=name, email=email)
        if existing.name == name:
            return existing
        report.conflict(where, f"author id {author_id} is {existing.name!r} here, {name!r} in the index; matched by name instead")
    existing = Author.objects.filter(name=name, email=email).order_by("id").first()
    if existing:
        return existing
    report.authors_restored += 1
    return Author.objects.create(name=name, email=email)


def _storage_row(folder: Path, storage_uuid, master: dict | None, session_storage_id, report: StorageRecovery, *, dry_run: bool) -> FileStorage | None:
    info = master["storage_info"] if master else {}
    base_path = str(folder.parent)
    existing = FileStorage.objects.filter(storage_uuid=storage_uuid).first()
    if existing is not None:
        if os.path.realpath(existing.full_path) != os.path.realpath(folder):
            report.conflict(folder.name, f"this storage is already known at {existing.full_path}; migrate it to {base_path} to use this copy")
            return None
        return existing
    if FileStorage.objects.filter(directory_name=folder.name).exists():
        report.conflict(folder.name, "another storage already has this folder name")
        return None
    try:
        display_name = _str(info.get("display_name"), "storage_info.display_name", max_length=200, default=folder.name) or folder.name
        description = _str(info.get("description"), "storage_info.description", default="")
        created_at = _datetime(info.get("created_at"), "storage_info.created_at") or timezone.now()
    except Bad as exc:
        report.problem("index.json", str(exc))
        display_name, description, created_at = folder.name, "", timezone.now()
    keep_id = session_storage_id if session_storage_id and not FileStorage.objects.filter(pk=session_storage_id).exists() else None
    storage = FileStorage.objects.create(
        pk=keep_id, storage_uuid=storage_uuid, directory_name=folder.name, base_path=base_path,
        display_name=display_name, description=description,
    )
    FileStorage.objects.filter(pk=storage.pk).update(created_at=created_at)
    storage.refresh_from_db()
    report.storage_created = True
    return storage


def _session_files(folder: Path, master: dict | None, report: StorageRecovery) -> list[str]:
    """Session index files named by the master index and found in imports/, each once."""
    names: list[str] = []
    if master:
        for i, entry in enumerate(master.get("import_sessions") or []):
            try:
                if not isinstance(entry, dict):
                    raise Bad("not an object")
                index_file = _str(entry.get("index_file"), "index_file", max_length=300)
                if not re.fullmatch(r"imports/session_\d{1,18}\.json", index_file):
                    raise Bad(f"index_file={index_file[:100]!r} is not imports/session_<id>.json")
                names.append(index_file)
            except Bad as exc:
                report.problem(f"index.json import_sessions[{i}]", str(exc))
    imports = folder / "imports"
    if imports.is_dir():
        for entry in sorted(os.scandir(imports), key=lambda e: e.name):
            if SESSION_FILE.match(entry.name) and not entry.is_symlink():
                names.append(f"imports/{entry.name}")
    seen, unique = set(), []
    for name in names:
        if name not in seen:
            seen.add(name)
            unique.append(name)
    return unique


def _photo_for(entry: dict, hothash: str, root: Path, report: StorageRecovery, where: str) -> Photo:
    photo = Photo.objects.filter(hothash=hothash).first()
    if photo is not None:
        return photo
    meta = entry.get("photo") if isinstance(entry.get("photo"), dict) else {}
    fields = {"hothash": hothash}
    for name, reader in (
        ("width", lambda v: _int(v, "width", minimum=0, maximum=10**6, optional=True)),
        ("height", lambda v: _int(v, "height", minimum=0, maximum=10**6, optional=True)),
        ("taken_at", lambda v: _datetime(v, "taken_at")),
        ("gps_latitude", lambda v: _float(v, "gps_latitude", low=-90, high=90)),
        ("gps_longitude", lambda v: _float(v, "gps_longitude", low=-180, high=180)),
        ("camera_make", lambda v: _str(v, "camera_make", max_length=200, default="")),
        ("camera_model", lambda v: _str(v, "camera_model", max_length=200, default="")),
        ("hothash_version", lambda v: _str(v, "hothash_version", max_length=40, default="imalink-hothash-v1")),
    ):
        try:
            fields[name] = reader(entry.get(name))
        except Bad as exc:
            report.problem(where, str(exc))
    for name, reader in (
        ("title", lambda v: _str(v, "photo.title", max_length=300, default="")),
        ("description", lambda v: _str(v, "photo.description", default="")),
        ("rating", lambda v: _int(v if v is not None else 0, "photo.rating", minimum=0, maximum=5)),
    ):
        try:
            fields[name] = reader(meta.get(name))
        except Bad as exc:
            report.problem(where, str(exc))
    tags = meta.get("tags") or []
    if isinstance(tags, list) and all(isinstance(t, str) for t in tags) and len(tags) <= 1000:
        fields["tags"] = [t[:200] for t in tags]
    else:
        report.problem(where, "photo.tags is not a list of strings")
    fields["author"] = _author(meta.get("author"), where, report)
    has_preview = entry.get("has_hotpreview") is True and not hothash.startswith("raw:")
    fields["has_hotpreview"] = has_preview
    if has_preview:
        from imports.pipeline import hotpreview_relative_path

        expected = hotpreview_relative_path(hothash)
        given = entry.get("hotpreview")
        if given is not None and given != expected:
            report.problem(where, f"hotpreview path {str(given)[:120]!r} does not match its hothash; the preview is not used")
        else:
            preview = _hotpreview_bytes(root / expected)
            if preview is None:
                report.problem(where, "its hotpreview is missing or not a JPEG")
            else:
                fields["hotpreview"] = preview
                report.hotpreviews_restored += 1
    report.photos_restored += 1
    return Photo.objects.create(**fields)


def _hotpreview_bytes(path: Path) -> bytes | None:
    try:
        if path.is_symlink() or path.stat().st_size > MAX_HOTPREVIEW_BYTES:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    return data if data.startswith(b"\xff\xd8\xff") else None


def _restore_file(data, *, photo, session, storage, root: Path, report: StorageRecovery, where: str, default_primary: bool) -> None:
    if not isinstance(data, dict):
        raise Bad("a file entry is not an object")
    path = _storage_path(root, data.get("path") or ("photos/" + _str(data.get("filename"), "filename", max_length=4000)), "path")
    checksum = _checksum(data.get("checksum"), "checksum")
    size = _int(data.get("file_size"), "file_size", minimum=0)
    mtime_ns = _int(data.get("mtime_ns"), "mtime_ns", minimum=0, optional=True) or 0
    fields = {
        "original_filename": _str(data.get("original_filename"), "original_filename", max_length=1024, default=path.rsplit("/", 1)[1]),
        "file_format": _str(data.get("file_format"), "file_format", max_length=16, default=""),
        "is_primary": _bool(data.get("is_primary"), "is_primary", default=default_primary),
    }
    status = data.get("status") if data.get("status") in ("present", "modified", "missing") else "present"
    existing = ImageFile.objects.filter(file_storage=storage, relative_path=path, checksum=checksum).first()
    if existing is not None:
        report.files_existing += 1
        return
    on_disk = os.path.isfile(os.path.join(root, path)) and not os.path.islink(os.path.join(root, path))
    if not on_disk:
        status = "missing"
        report.missing_count += 1
        if len(report.missing_files) < MAX_LISTED:
            report.missing_files.append(path)
    elif status == "missing":
        status = "present"
    if status != "missing" and ImageFile.objects.filter(file_storage=storage, relative_path=path).exclude(status="missing").exists():
        report.conflict(where, f"{path} is already known with other bytes; this entry is skipped")
        return
    ImageFile.objects.create(
        photo=photo, import_session=session, file_storage=storage, relative_path=path, checksum=checksum,
        file_size=size, mtime_ns=mtime_ns, status=status, last_seen_at=timezone.now() if on_disk else None, **fields,
    )
    report.files_restored += 1


def _same_session(existing: ImportSession, meta: dict, storage: FileStorage) -> bool:
    """A row with the index's id is this session (restored before) only if it is on this storage with this title."""
    title = meta.get("title") if isinstance(meta.get("title"), str) else None
    return existing.file_storage_id == storage.pk and (title is None or existing.title == title[:300] or (not title and existing.title == "Recovered session"))


def _restore_session(name: str, data: dict, *, storage: FileStorage, root: Path, report: StorageRecovery, claimed_ids: set, dry_run: bool, reserved_ids: set) -> None:
    meta = data["import_session"]
    index_id = meta["id"]
    if index_id in claimed_ids:
        report.problem(name, f"session id {index_id} appears in two index files; this one is skipped")
        return
    claimed_ids.add(index_id)
    existing = ImportSession.objects.filter(pk=index_id).first()
    renamed_from = None
    with transaction.atomic():
        if existing is not None and _same_session(existing, meta, storage):
            session = existing
            report.sessions_existing.append(index_id)
        else:
            try:
                title = _str(meta.get("title"), "import_session.title", max_length=300, default="Recovered session") or "Recovered session"
                description = _str(meta.get("description"), "import_session.description", default="")
                source_path = _str(meta.get("source_path"), "import_session.source_path", max_length=4096, default="")
                target = _str(meta.get("target_subdirectory"), "import_session.target_subdirectory", max_length=1024, default="")
                imported_at = _datetime(meta.get("imported_at"), "import_session.imported_at")
            except Bad as exc:
                report.problem(name, str(exc))
                return
            author = _author(meta.get("default_author"), name, report)
            keep = existing is None
            session = ImportSession.objects.create(
                pk=index_id if keep else _fresh_session_id(reserved_ids), title=title, description=description, file_storage=storage,
                default_author=author, source_path=source_path, target_subdirectory=target,
            )
            if imported_at:
                ImportSession.objects.filter(pk=session.pk).update(imported_at=imported_at)
            if not keep:
                renamed_from = index_id
                report.session_id_changes.append({"old_id": index_id, "new_id": session.pk, "index_file": name})
                report.conflict(name, f"session id {index_id} belongs to another storage here; restored as session {session.pk}")
            report.sessions_restored.append(session.pk)
        files = data.get("files") or {}
        for key, entry in files.items():
            where = f"{name} files[{str(key)[:40]}]"
            try:
                if not isinstance(key, str) or not HOTHASH.match(key):
                    raise Bad("the key is not a hothash")
                if not isinstance(entry, dict):
                    raise Bad("the entry is not an object")
                photo = _photo_for(entry, key, root, report, where)
                _restore_file(entry, photo=photo, session=session, storage=storage, root=root, report=report, where=where, default_primary=True)
                companions = entry.get("companions") or []
                if not isinstance(companions, list):
                    raise Bad("companions is not a list")
                for i, companion in enumerate(companions):
                    try:
                        _restore_file(companion, photo=photo, session=session, storage=storage, root=root, report=report, where=f"{where} companions[{i}]", default_primary=False)
                    except Bad as exc:
                        report.problem(f"{where} companions[{i}]", str(exc))
            except Bad as exc:
                report.problem(where, str(exc))
    if renamed_from is not None and not dry_run:
        _rename_session_index(root, name, session)


def _rename_session_index(root: Path, name: str, session: ImportSession) -> None:
    """The session got a new id: write its index under the new name and keep the old file as a backup."""
    from .writer import write_session_index

    session = ImportSession.objects.select_related("file_storage", "default_author").get(pk=session.pk)
    write_session_index(session)
    old = root / name
    if old.exists() and not old.is_symlink():
        backups = make_folders_below(root / ".imalink", "index-backups")
        stamp = timezone.now().strftime("%Y%m%dT%H%M%S%fZ")
        # Named so that no later recovery takes it for a backup of session_<old id>.
        write_atomic(backups / f"renamed-{old.stem}-to-{session.pk}.{stamp}.json", old.read_bytes())
        old.unlink()


def _reserved_session_ids(folders) -> set[int]:
    """Session ids that the indexes of these folders name (by file name): a renamed session avoids them all."""
    ids: set[int] = set()
    for folder in folders:
        imports = Path(folder) / "imports"
        if imports.is_dir():
            for entry in os.scandir(imports):
                match = SESSION_FILE.match(entry.name)
                if match:
                    ids.add(int(match.group(1)))
    return ids


def _fresh_session_id(reserved: set[int]) -> int:
    from django.db.models import Max

    highest = ImportSession.objects.aggregate(m=Max("id"))["m"] or 0
    fresh = max(highest, max(reserved, default=0)) + 1
    reserved.add(fresh)
    return fresh


def recover_storage_folder(folder: Path, *, dry_run: bool = False, touch_disk: bool = True, reserved_ids: set | None = None) -> StorageRecovery:
    report = StorageRecovery(path=str(folder))
    root = folder
    master = _read_with_backups(root, "index.json", report, _check_master)
    storage_uuid = _identity(folder, master, report)
    if storage_uuid is None:
        report.outcome = "skipped"
        return report
    report.storage_uuid = str(storage_uuid)
    sessions = []
    for name in _session_files(folder, master, report):
        data = _read_with_backups(root, name, report, _check_session)
        if data is not None:
            sessions.append((name, data))
    first_storage_id = None
    for _, data in sessions:
        candidate = data["import_session"].get("file_storage_id")
        if isinstance(candidate, int) and not isinstance(candidate, bool) and candidate > 0:
            first_storage_id = candidate
            break
    storage = _storage_row(folder, storage_uuid, master, first_storage_id, report, dry_run=dry_run)
    if storage is None:
        report.outcome = "skipped"
        return report
    report.storage_id, report.display_name = storage.pk, storage.display_name
    # Sessions that keep their ids go first: a renamed session takes the next free id, which must not be
    # an id that a later index of this same storage still needs.
    def renamed_later(item):
        existing = ImportSession.objects.filter(pk=item[1]["import_session"]["id"]).first()
        return existing is not None and not _same_session(existing, item[1]["import_session"], storage)

    sessions.sort(key=renamed_later)
    claimed: set[int] = set()
    for name, data in sessions:
        _restore_session(name, data, storage=storage, root=root, report=report, claimed_ids=claimed, dry_run=dry_run or not touch_disk,
                         reserved_ids=reserved_ids if reserved_ids is not None else _reserved_session_ids([folder]))
    if report.session_id_changes and not dry_run and touch_disk:
        from .writer import write_master_index

        write_master_index(storage)  # it must name the renamed session indexes, not the old files
    changed = report.storage_created or report.sessions_restored or report.files_restored or report.photos_restored
    report.outcome = "restored" if changed else "unchanged"
    return report


def _reset_sequences() -> None:
    """Rows were inserted with their old ids: move PostgreSQL's sequences past them."""
    statements = connection.ops.sequence_reset_sql(no_style(), [FileStorage, Author, ImportSession, Photo, ImageFile])
    if statements:
        with connection.cursor() as cursor:
            for sql in statements:
                cursor.execute(sql)


class _DryRun(Exception):
    pass


def recover_from_indexes(search_roots, *, dry_run: bool = False, touch_disk: bool = True, folders=None, progress=None, should_stop=None) -> RecoveryReport:
    """Find the storages under the roots (or take `folders` as given) and rebuild their rows.

    dry_run reports without keeping anything; touch_disk=False (the recovery drill) keeps the rows but
    writes nothing on the drives: no lock file, no renamed index.
    """
    progress = progress or (lambda **kw: None)
    started = time.monotonic()
    report = RecoveryReport(search_roots=[str(r) for r in search_roots], dry_run=dry_run)
    folders = [Path(f) for f in folders] if folders is not None else find_storage_folders(search_roots)
    report.found = len(folders)
    reserved = _reserved_session_ids(folders)
    progress(total=len(folders), done=0, force=True)
    for done, folder in enumerate(folders, start=1):
        if should_stop:
            should_stop()
        progress(current=folder.name)
        try:
            with transaction.atomic():
                storage_report = _recover_locked(folder, dry_run=dry_run, touch_disk=touch_disk, reserved_ids=reserved)
                if dry_run:
                    raise _DryRun()
        except _DryRun:
            pass
        report.storages.append(asdict(storage_report))
        progress(done=done)
    if not dry_run:
        _reset_sequences()
    report.duration_s = round(time.monotonic() - started, 3)
    progress(current=None, force=True)
    return report


def _recover_locked(folder: Path, *, dry_run: bool, touch_disk: bool = True, reserved_ids: set | None = None) -> StorageRecovery:
    """Recover one folder holding its storage lock, so no import or scan runs on it meanwhile.

    A read-only drive cannot hold the lock file; recovery only reads it, so it goes ahead without.
    """
    from contextlib import ExitStack

    from storages.locks import LOCK_FILE, storage_lock

    target = FileStorage(directory_name=folder.name, base_path=str(folder.parent), display_name=folder.name)
    with ExitStack() as stack:
        if not dry_run and touch_disk and (folder / LOCK_FILE).parent.is_dir():
            try:
                stack.enter_context(storage_lock(target, wait=60))
            except OSError as exc:
                logger.info("recovering %s without a lock: %s", folder, exc.strerror)
        return recover_storage_folder(folder, dry_run=dry_run, touch_disk=touch_disk, reserved_ids=reserved_ids)


def check_storage_folder(raw: str) -> Path:
    """A client's path to one storage folder (for adopt): allowed, and really an ImaLink storage."""
    from imalink.errors import PathRejected
    from storages.paths import resolve_client_dir

    folder = resolve_client_dir(raw, field="path")
    if not folder.name.startswith("imalink_") or not ((folder / layout.MARKER).is_file() or (folder / "index.json").is_file()):
        raise PathRejected(
            f"{raw} is not an ImaLink storage folder: it needs an imalink_* name and .imalink/storage.json or index.json.",
            code="not_a_storage", details={"field": "path"},
        )
    return folder


def run_recover_job(job, ctx) -> dict:
    roots = [Path(p) for p in job.params.get("search_roots", [])]
    folders = job.params.get("folders")
    return recover_from_indexes(
        roots, dry_run=bool(job.params.get("dry_run")), folders=folders, progress=ctx.progress, should_stop=ctx.check_cancelled
    ).as_dict()
