"""Disaster recovery (DESIGN §6): rebuild the database from the JSON indexes on the drives.

Index files are hostile input. Every value is checked before it is used: a path must stay inside its
storage, a checksum must be a checksum, a hotpreview must sit where its hothash says. Whatever fails is
reported and skipped, and the rest of the storage is still recovered. Running recovery twice changes
nothing the second time.
"""

import json
import logging
import os
import re
import stat
import time
import uuid as uuid_lib
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path

import ijson
from django.core.management.color import no_style
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from imalink.errors import PathRejected
from imports.models import Author, ImageFile, ImportSession, Photo
from jobs.services import JobCancelled
from storages import drive, layout
from storages.layout import BACKUP_DIR, MASTER_INDEX, hotpreview_relative_path
from storages.locks import storage_lock
from storages.models import FileStorage
from storages.paths import resolve_client_dir

from .writer import set_aside, write_master_index, write_session_index

logger = logging.getLogger("imalink.recovery")

RECOVERY_MAX_INDEX_BYTES = 256 * 1024 * 1024
MAX_HOTPREVIEW_BYTES = 2 * 1024 * 1024
MAX_MARKER_BYTES = 64 * 1024
DESCRIBE_MAX_INDEX_BYTES = 64 * 1024 * 1024
SEARCH_DEPTH = 6
DIRECTORY_NAME = re.compile(r"^imalink_\d{8}_\d{6}_[0-9a-f]{8}$")
HEX32 = re.compile(r"^[0-9a-f]{32}$")
HOTHASH = re.compile(r"^(?:[0-9a-f]{32}|(?:raw|video):[0-9a-f]{32})$")
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
    if (
        text.startswith("/")
        or "\\" in text
        or parts[0] != "photos"
        or len(parts) < 2
        or any(p in ("", ".", "..") for p in parts)
    ):
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
    reason_code: str | None = None  # "unsafe_layout" when the storage was refused as unsafe to touch
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
    # Sessions whose index says they mirror a session of another storage (issue 17): {"session_id", "mirror_of":
    # {"storage_uuid", "session_id"}, "linked"}; linked once that session is in the database too.
    mirrors: list = field(default_factory=list)

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


def _entry_mode(dirfd: int, name: str) -> int | None:
    try:
        return os.stat(name, dir_fd=dirfd, follow_symlinks=False).st_mode
    except OSError:
        return None


def _is_storage_folder(fd: int) -> bool:
    """An imalink_* folder (open on fd) is a storage when it holds index.json or .imalink/storage.json, whatever
    kind of entry they are (recovery reports one that is not a plain file); a .imalink that is not a folder is
    reported too. Nothing is followed or read."""
    if _entry_mode(fd, MASTER_INDEX) is not None:
        return True
    mode = _entry_mode(fd, ".imalink")
    if mode is None:
        return False
    if not stat.S_ISDIR(mode):
        return True
    try:
        inner = os.open(".imalink", drive.DIR_FLAGS, dir_fd=fd)
    except OSError:
        return True
    try:
        return _entry_mode(inner, "storage.json") is not None
    finally:
        os.close(inner)


def find_storage_folders(roots, *, depth: int = SEARCH_DEPTH, should_stop=None) -> list[Path]:
    """Every imalink_* folder under the roots, at any depth up to `depth`, that holds .imalink/storage.json or
    index.json, inside user folders of any name (photos/, imports/, archive/ ...).

    Each folder is opened from its parent's descriptor with O_NOFOLLOW: symbolic links are never followed, and
    a folder swapped for one while the search runs is skipped. Only a found storage's own insides are not
    searched. `should_stop()` is called at each folder (a job's cancel check).
    """
    found: list[Path] = []
    seen: set[tuple[int, int]] = set()

    def visit(fd: int, path: Path, level: int) -> None:
        if should_stop:
            should_stop()
        if path.name.startswith("imalink_") and _is_storage_folder(fd):
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                found.append(path)
            return
        if level >= depth:
            return
        try:
            with os.scandir(fd) as entries:
                names = sorted(e.name for e in entries if e.is_dir(follow_symlinks=False))
        except OSError:
            return
        for name in names:
            try:
                child = os.open(name, drive.DIR_FLAGS, dir_fd=fd)
            except OSError:
                continue  # gone, no permission, or swapped for a symbolic link since it was listed
            try:
                visit(child, path / name, level + 1)
            finally:
                os.close(child)

    for root in roots:
        try:
            fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)  # the root itself was checked by its caller
        except OSError:
            continue
        try:
            visit(fd, Path(root), 0)
        finally:
            os.close(fd)
    return sorted(found)


# --- reading indexes through the storage's descriptor, with fallback to backups ----------------------
# An index is parsed as a stream by ijson (its yajl2_c backend) straight from the descriptor drive opened, after
# its size is checked with fstat; ijson is never let read more than the limit. A first pass checks that the
# whole file is one JSON object and keeps its small top-level members; its one big member (a session's `files`,
# the master's `import_sessions`) is never built whole: members() reads the file again and yields it entry by
# entry, each built and dropped. Memory stays near the size of one entry, not of the file.
#
# ijson.basic_parse is driven here, not ijson.parse/items/kvitems: those keep a prefix string for every level of
# nesting, so an index of nothing but "[" takes memory quadratic in its depth (100 KB of them exhaust a
# machine's memory). basic_parse and MAX_NESTING keep a hostile index at a cost linear in its size. Numbers
# come as json.loads gives them: ints (of any size) and floats; ijson's Decimals are turned into floats here
# (with use_float=True, yajl would refuse a whole index over one integer past 64 bits).

MAX_NESTING = 512  # ImaLink's indexes nest 6 levels deep; json.loads stopped near 1,000 (the recursion limit)
_BIG_MEMBER = {"files": "start_map", "import_sessions": "start_array"}
_OPEN = frozenset(("start_map", "start_array"))
_CLOSE = frozenset(("end_map", "end_array"))


class Corrupt(ValueError):
    pass


class _Grew(Corrupt):
    pass


class _Bounded:
    """The index's open file as ijson reads it: from its start (a UTF-8 byte order mark skipped), and never
    more than `limit` bytes, since the file may grow while it is read."""

    def __init__(self, handle, limit: int):
        self.handle, self.limit, self.done = handle, limit, 0

    def rewind(self) -> None:
        self.handle.seek(0)
        start = self.handle.read(4)
        encoding = json.detect_encoding(start)
        if encoding not in ("utf-8", "utf-8-sig"):
            raise Corrupt(f"not UTF-8 text (it looks like {encoding}); ImaLink writes its indexes as UTF-8")
        skip = 3 if encoding == "utf-8-sig" else 0
        self.handle.seek(skip)
        self.done = skip

    def read(self, size: int = -1) -> bytes:
        room = self.limit + 1 - self.done
        chunk = self.handle.read(room if size is None or size < 0 else min(size, room))
        self.done += len(chunk)
        if self.done > self.limit:
            raise _Grew(f"too large: it grew past the limit of {self.limit:,} bytes while being read")
        return chunk

    def close(self) -> None:
        self.handle.close()


def _ijson_message(exc: Exception) -> str:
    """yajl's message without the excerpt of the file it quotes."""
    text = exc.args[0] if exc.args else ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return (str(text).strip().splitlines() or ["not valid JSON"])[0]


def _events(source: _Bounded):
    """The JSON events of the whole file, from its start; numbers as json.loads gives them; nesting limited."""
    source.rewind()
    depth = 0
    try:
        for event, value in ijson.basic_parse(source):
            if event in _OPEN:
                depth += 1
                if depth > MAX_NESTING:
                    raise Corrupt("nested too deeply")
            elif event in _CLOSE:
                depth -= 1
            elif event == "number" and type(value) is Decimal:
                value = float(value)
            yield event, value
    except ijson.JSONError as exc:
        raise Corrupt(_ijson_message(exc)) from None


def _next(events):
    for item in events:
        return item
    raise Corrupt("the file ends too early")  # ijson raises first; this keeps a StopIteration out of the generators


def _value(first, value, events):
    """The whole JSON value that starts with (first, value), built from the events that follow."""
    if first not in _OPEN:
        return value
    builder = ijson.ObjectBuilder()
    add = builder.event
    add(first, value)
    depth = 1
    for event, item in events:
        add(event, item)
        if event in _OPEN:
            depth += 1
        elif event in _CLOSE:
            depth -= 1
            if not depth:
                return builder.value
    raise Corrupt("the file ends too early")


def _pass_over(first, events) -> None:
    """Read past the value that starts with the event `first` without building it."""
    if first in _OPEN:
        depth = 1
        for event, _ in events:
            if event in _OPEN:
                depth += 1
            elif event in _CLOSE:
                depth -= 1
                if not depth:
                    return


def _top_level(events):
    """(key, first event of its value, first value) of each member of the top-level object; the caller reads
    (or passes over) each value before it asks for the next member. The file must end after the object."""
    if _next(events)[0] != "start_map":
        raise Corrupt("the top level is not an object")
    for event, key in events:
        if event == "end_map":
            for _ in events:  # ijson reports anything but white space after the object
                pass
            return
        yield (key, *_next(events))


def _scan(source: _Bounded) -> tuple[dict, dict]:
    """(the small top-level members, {big member's key: which of its occurrences holds it}) of the whole file,
    checked to be one JSON object as json.loads would, its big member walked but not built. A repeated key
    counts by its last occurrence, as with json.loads."""
    events = _events(source)
    head: dict = {}
    big: dict = {}
    seen: dict = {}
    for key, event, value in _top_level(events):
        if key in _BIG_MEMBER:
            seen[key] = seen.get(key, 0) + 1
            head.pop(key, None)
            big.pop(key, None)
            if event == _BIG_MEMBER[key]:
                big[key] = seen[key]
            else:
                head[key] = None  # of the wrong type: its check reports it, its value is never needed
            _pass_over(event, events)
        else:
            head[key] = _value(event, value, events)
    return head, big


@dataclass(eq=False)
class LazyIndex:
    """An index's top level without its big member, which `members(key)` reads again from the open file."""

    head: dict
    big: dict = field(default_factory=dict)
    source: _Bounded | None = None

    def members(self, key: str):
        """(key, value) of each entry of the big member `key` (key None in an array), read from the file again.

        Raises Corrupt (a ValueError) if the file no longer reads as it did when it was checked."""
        occurrence = self.big.get(key)
        if occurrence is None:
            return
        try:
            events = _events(self.source)
            seen = 0
            for name, event, value in _top_level(events):
                if name == key:
                    seen += 1
                    if seen == occurrence:
                        if event != _BIG_MEMBER[key]:
                            raise Corrupt(f"{key} changed since the file was checked")
                        yield from _entries(event, events)
                        return
                _pass_over(event, events)
            raise Corrupt(f"{key} is gone since the file was checked")
        except OSError as exc:
            raise Corrupt(f"unreadable: {exc.strerror}") from exc

    def close(self) -> None:
        if self.source is not None:
            self.source.close()

    def __del__(self):
        self.close()

    def get(self, key, default=None):
        return self.head.get(key, default)

    def __getitem__(self, key):
        return self.head[key]


def _entries(opener, events):
    if opener == "start_map":
        for event, key in events:
            if event == "end_map":
                return
            yield key, _value(*_next(events), events)
    else:
        for event, value in events:
            if event == "end_array":
                return
            yield None, _value(event, value, events)


@dataclass
class Reading:
    data: LazyIndex | None
    problem: str | None  # None, "missing", or why it cannot be used


def read_lazy_index(store: drive.Storage, relative, *, max_bytes: int) -> Reading:
    """One index of the storage as untrusted input, read through the storage's descriptor.

    The folders on the way must be real folders (drive.UnsafeLayout otherwise: the storage is unsafe). The file
    itself must be a plain file of at most max_bytes (fstat, before a byte is read); anything else is a reason
    it cannot be used, and a backup may stand in for it. An index with a big member keeps its file open for
    members(); close() it (or drop it) when done.
    """
    try:
        with store.parent_of(relative) as (dirfd, name):
            try:
                fd, st = drive.open_file_at(dirfd, name, shown=store.shown(relative))
            except drive.UnsafeLayout as unsafe:
                return Reading(None, f"not a plain file: {unsafe.found} (ImaLink writes its indexes as plain files)")
    except (FileNotFoundError, NotADirectoryError):
        return Reading(None, "missing")
    except drive.UnsafeLayout:
        raise
    except OSError as exc:
        return Reading(None, f"unreadable: {exc.strerror}")
    handle = os.fdopen(fd, "rb", buffering=0)
    try:
        if st.st_size > max_bytes:
            return Reading(None, f"too large: {st.st_size:,} bytes, over the limit of {max_bytes:,}")
        source = _Bounded(handle, max_bytes)
        try:
            head, big = _scan(source)
        except _Grew as exc:
            return Reading(None, str(exc))
        except OSError as exc:
            return Reading(None, f"unreadable: {exc.strerror}")
        except (ValueError, MemoryError) as exc:
            return Reading(None, f"corrupt: {str(exc)[:200]}")
        if not big:
            return Reading(LazyIndex(head), None)
        handle = None  # kept open by the index, for members()
        return Reading(LazyIndex(head, big, source), None)
    finally:
        if handle is not None:
            handle.close()


class Backups:
    """The storage's .imalink/index-backups/, listed once: index stem -> its backups, newest first."""

    def __init__(self, store: drive.Storage):
        self.store = store
        self._by_stem: dict[str, list[str]] | None = None

    def of(self, stem: str) -> list[str]:
        if self._by_stem is None:
            self._by_stem = {}
            try:
                listed = self.store.listdir(BACKUP_DIR)
            except (FileNotFoundError, NotADirectoryError, PermissionError):
                listed = []
            for name, kind in listed:
                if kind == "file" and name.endswith(".json") and "." in name[:-5]:
                    self._by_stem.setdefault(name.split(".", 1)[0], []).append(name)
            for names in self._by_stem.values():
                names.sort(reverse=True)
        return self._by_stem.get(stem, [])


def _read_with_backups(
    store: drive.Storage, relative: str, report: StorageRecovery, check, backups: Backups, *, source: str | None = None
):
    """(the index at `relative` or the newest backup of it that parses and passes `check`, where it came from).

    With `source` (a where-from of an earlier call) only that file is read again.
    """
    if source is not None:
        path = relative if source == "file" else f"{BACKUP_DIR.as_posix()}/{source.removeprefix('backup:')}"
        reading = read_lazy_index(store, path, max_bytes=RECOVERY_MAX_INDEX_BYTES)
        if reading.data is None:
            report.problem(relative, f"changed while it was recovered: {reading.problem}")
            return None, None
        try:
            check(reading.data)
        except Bad as exc:
            reading.data.close()
            report.problem(relative, f"changed while it was recovered: {exc}")
            return None, None
        return reading.data, source
    reading = read_lazy_index(store, relative, max_bytes=RECOVERY_MAX_INDEX_BYTES)
    if reading.data is not None:
        try:
            check(reading.data)
            report.index_sources[relative] = "file"
            return reading.data, "file"
        except Bad as exc:
            reading.data.close()
            report.problem(relative, str(exc))
    elif reading.problem != "missing":
        report.problem(relative, reading.problem)
    problem = reading.problem
    del reading
    for backup in backups.of(Path(relative).stem):
        candidate = read_lazy_index(store, f"{BACKUP_DIR.as_posix()}/{backup}", max_bytes=RECOVERY_MAX_INDEX_BYTES)
        if candidate.data is None:
            continue
        try:
            check(candidate.data)
        except Bad:
            candidate.data.close()
            continue
        report.index_sources[relative] = f"backup:{backup}"
        if problem != "missing":
            report.problem(relative, f"used the backup {backup} instead")
        return candidate.data, f"backup:{backup}"
    report.index_sources[relative] = "missing" if problem == "missing" else "unusable"
    return None, None


def _check_master(data) -> None:
    info = data.get("storage_info")
    if not isinstance(info, dict):
        raise Bad("storage_info is missing or not an object")
    if "import_sessions" in data.head:  # a list is walked, not kept in head: what is here is not a list
        raise Bad("import_sessions is not a list")


def _check_session(data) -> None:
    meta = data.get("import_session")
    if not isinstance(meta, dict):
        raise Bad("import_session is missing or not an object")
    _int(meta.get("id"), "import_session.id", minimum=1, maximum=2**62)
    if "files" in data.head:  # an object is walked, not kept in head: what is here is not an object
        raise Bad("files is not an object")


# --- the recovery of one storage -------------------------------------------------------------------


def _read_marker(store: drive.Storage) -> layout.MarkerReading:
    """The storage's marker through its descriptor; a marker that is not a plain file makes the storage unsafe."""
    try:
        raw = store.read_bytes(layout.MARKER, limit=MAX_MARKER_BYTES)
    except drive.FileTooLarge:
        return layout.MarkerReading(None, "too large")
    except (FileNotFoundError, NotADirectoryError):
        return layout.MarkerReading(None, "missing")
    except drive.UnsafeLayout:
        raise
    except OSError as exc:
        return layout.MarkerReading(None, f"unreadable: {exc.strerror}")
    try:
        return layout.MarkerReading(str(uuid_lib.UUID(str(json.loads(raw)["storage_uuid"]))))
    except (ValueError, KeyError, TypeError, RecursionError):
        return layout.MarkerReading(None, "not a valid storage marker")


def _identity(folder: Path, store: drive.Storage, master, report: StorageRecovery) -> uuid_lib.UUID | None:
    marker = _read_marker(store)
    from_marker = uuid_lib.UUID(marker.storage_uuid) if marker.storage_uuid else None
    from_index = None
    if master is not None:
        try:
            from_index = uuid_lib.UUID(_str(master["storage_info"].get("uuid"), "storage_info.uuid", max_length=64))
        except (Bad, ValueError) as exc:
            report.problem(MASTER_INDEX, f"storage_info.uuid: {exc}")
    if from_marker and from_index and from_marker != from_index:
        report.conflict(
            MASTER_INDEX, f"the index names storage {from_index}, the marker {from_marker}; the marker wins"
        )
    chosen = from_marker or from_index
    if chosen is None:
        report.problem(".imalink/storage.json", f"no usable storage uuid (marker: {marker.problem})")
    elif not folder.name.endswith(chosen.hex[:8]):
        report.conflict(
            folder.name, f"the folder name does not end with the uuid's first 8 hex digits ({chosen.hex[:8]})"
        )
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
        report.conflict(
            where, f"author id {author_id} is {existing.name!r} here, {name!r} in the index; matched by name instead"
        )
    existing = Author.objects.filter(name=name, email=email).order_by("id").first()
    if existing:
        return existing
    report.authors_restored += 1
    return Author.objects.create(name=name, email=email)


def _storage_row(
    folder: Path, storage_uuid, master: dict | None, session_storage_id, report: StorageRecovery, *, dry_run: bool
) -> FileStorage | None:
    info = master["storage_info"] if master else {}
    base_path = str(folder.parent)
    existing = FileStorage.objects.filter(storage_uuid=storage_uuid).first()
    if existing is not None:
        if os.path.realpath(existing.full_path) != os.path.realpath(folder):
            report.conflict(
                folder.name,
                f"this storage is already known at {existing.full_path}; migrate it to {base_path} to use this copy",
            )
            return None
        return existing
    if FileStorage.objects.filter(directory_name=folder.name).exists():
        report.conflict(folder.name, "another storage already has this folder name")
        return None
    try:
        display_name = (
            _str(info.get("display_name"), "storage_info.display_name", max_length=200, default=folder.name)
            or folder.name
        )
        description = _str(info.get("description"), "storage_info.description", default="")
        created_at = _datetime(info.get("created_at"), "storage_info.created_at") or timezone.now()
    except Bad as exc:
        report.problem(MASTER_INDEX, str(exc))
        display_name, description, created_at = folder.name, "", timezone.now()
    keep_id = (
        session_storage_id
        if session_storage_id and not FileStorage.objects.filter(pk=session_storage_id).exists()
        else None
    )
    storage = FileStorage.objects.create(
        pk=keep_id,
        storage_uuid=storage_uuid,
        directory_name=folder.name,
        base_path=base_path,
        display_name=display_name,
        description=description,
    )
    FileStorage.objects.filter(pk=storage.pk).update(created_at=created_at)
    storage.refresh_from_db()
    report.storage_created = True
    return storage


def _session_files(store: drive.Storage, master, report: StorageRecovery) -> list[str]:
    """Session index files named by the master index and found in imports/, each once."""
    names: list[str] = []
    if master:
        try:
            for i, (_, entry) in enumerate(master.members("import_sessions")):
                try:
                    if not isinstance(entry, dict):
                        raise Bad("not an object")
                    index_file = _str(entry.get("index_file"), "index_file", max_length=300)
                    if not re.fullmatch(r"imports/session_\d{1,18}\.json", index_file):
                        raise Bad(f"index_file={index_file[:100]!r} is not imports/session_<id>.json")
                    names.append(index_file)
                except Bad as exc:
                    report.problem(f"index.json import_sessions[{i}]", str(exc))
        except ValueError as exc:  # the file changed since it was checked: the sessions in imports/ are still found
            report.problem(MASTER_INDEX, f"corrupt: {str(exc)[:200]}; the sessions listed after it are skipped")
    for name, kind in _listed_imports(store):
        if SESSION_FILE.match(name) and kind != "folder":
            names.append(f"imports/{name}")  # a session index that is not a plain file is reported when read
    return list(dict.fromkeys(names))


def _listed_imports(store: drive.Storage) -> list[tuple[str, str]]:
    try:
        return sorted(store.listdir("imports"))
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []


def _photo_for(entry: dict, hothash: str, store: drive.Storage, report: StorageRecovery, where: str) -> Photo:
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
        ("duration_s", lambda v: _float(v, "duration_s", low=0, high=10**7)),
        ("codec", lambda v: _str(v, "codec", max_length=40, default="")),
    ):
        try:
            fields[name] = reader(entry.get(name))
        except Bad as exc:
            report.problem(where, str(exc))
    for name, reader in (
        ("title", lambda v: _str(v, "photo.title", max_length=300, default="")),
        ("description", lambda v: _str(v, "photo.description", default="")),
        ("rating", lambda v: _int(v if v is not None else 0, "photo.rating", minimum=0, maximum=5)),
        ("metadata_edited_at", lambda v: _datetime(v, "photo.metadata_edited_at")),
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
    # The identity says what an item is; media_type in a format 2 index must agree with it.
    fields["media_type"] = Photo.MediaType.VIDEO if hothash.startswith("video:") else Photo.MediaType.PHOTO
    if entry.get("media_type") not in (None, fields["media_type"]):
        report.problem(where, f"media_type {str(entry.get('media_type'))[:20]!r} does not match its identity")
    has_preview = entry.get("has_hotpreview") is True and not hothash.startswith("raw:")
    fields["has_hotpreview"] = has_preview
    if has_preview:
        expected = hotpreview_relative_path(hothash)
        given = entry.get("hotpreview")
        if given is not None and given != expected:
            report.problem(
                where, f"hotpreview path {str(given)[:120]!r} does not match its hothash; the preview is not used"
            )
        else:
            preview = _hotpreview_bytes(store, expected)
            if preview is None:
                report.problem(where, "its hotpreview is missing or not a JPEG")
            else:
                fields["hotpreview"] = preview
                report.hotpreviews_restored += 1
    report.photos_restored += 1
    return Photo.objects.create(**fields)


def _hotpreview_bytes(store: drive.Storage, relative: str) -> bytes | None:
    """The hotpreview through the storage's descriptor: a fan-out folder or a file that is a symbolic link (or
    anything but what it should be) raises drive.UnsafeLayout, and nothing outside the storage is read."""
    try:
        data = store.read_bytes(relative, limit=MAX_HOTPREVIEW_BYTES)
    except drive.UnsafeLayout:
        raise
    except (drive.FileTooLarge, OSError):
        return None
    return data if data.startswith(b"\xff\xd8\xff") else None


def _restore_file(
    data, *, photo, session, storage, store: drive.Storage, report: StorageRecovery, where: str, default_primary: bool
) -> None:
    root = store.root
    if not isinstance(data, dict):
        raise Bad("a file entry is not an object")
    path = _storage_path(
        root, data.get("path") or ("photos/" + _str(data.get("filename"), "filename", max_length=4000)), "path"
    )
    checksum = _checksum(data.get("checksum"), "checksum")
    size = _int(data.get("file_size"), "file_size", minimum=0)
    mtime_ns = _int(data.get("mtime_ns"), "mtime_ns", minimum=0, optional=True) or 0
    fields = {
        "original_filename": _str(
            data.get("original_filename"), "original_filename", max_length=1024, default=path.rsplit("/", 1)[1]
        ),
        "file_format": _str(data.get("file_format"), "file_format", max_length=16, default=""),
        "is_primary": _bool(data.get("is_primary"), "is_primary", default=default_primary),
        # A format 1 index knows only originals (a RAW beside its JPEG was its one kind of companion).
        "role": data.get("role") if data.get("role") in ImageFile.Role.values else ImageFile.Role.ORIGINAL,
    }
    status = data.get("status") if data.get("status") in ("present", "modified", "missing") else "present"
    existing = ImageFile.objects.filter(file_storage=storage, relative_path=path, checksum=checksum).first()
    if existing is not None:
        report.files_existing += 1
        return
    try:
        on_disk = store.kind(path) == "file"  # never followed: a symbolic link or pipe on the way is unsafe
    except (FileNotFoundError, NotADirectoryError):
        on_disk = False
    if not on_disk:
        status = "missing"
        report.missing_count += 1
        if len(report.missing_files) < MAX_LISTED:
            report.missing_files.append(path)
    elif status == "missing":
        status = "present"
    if (
        status != "missing"
        and ImageFile.objects.filter(file_storage=storage, relative_path=path).exclude(status="missing").exists()
    ):
        report.conflict(where, f"{path} is already known with other bytes; this entry is skipped")
        return
    ImageFile.objects.create(
        photo=photo,
        import_session=session,
        file_storage=storage,
        relative_path=path,
        checksum=checksum,
        file_size=size,
        mtime_ns=mtime_ns,
        status=status,
        last_seen_at=timezone.now() if on_disk else None,
        **fields,
    )
    report.files_restored += 1


def _same_session(existing: ImportSession, meta: dict, storage: FileStorage) -> bool:
    """A row with the index's id is this session (restored before) only if it is on this storage with this title."""
    title = meta.get("title") if isinstance(meta.get("title"), str) else None
    return existing.file_storage_id == storage.pk and (
        title is None or existing.title == title[:300] or (not title and existing.title == "Recovered session")
    )


def _restore_session(
    name: str,
    data: LazyIndex,
    *,
    storage: FileStorage,
    store: drive.Storage,
    report: StorageRecovery,
    claimed_ids: set,
    dry_run: bool,
    reserved_ids: set,
) -> None:
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
                title = (
                    _str(meta.get("title"), "import_session.title", max_length=300, default="Recovered session")
                    or "Recovered session"
                )
                description = _str(meta.get("description"), "import_session.description", default="")
                source_path = _str(meta.get("source_path"), "import_session.source_path", max_length=4096, default="")
                target = _str(
                    meta.get("target_subdirectory"), "import_session.target_subdirectory", max_length=1024, default=""
                )
                imported_at = _datetime(meta.get("imported_at"), "import_session.imported_at")
            except Bad as exc:
                report.problem(name, str(exc))
                return
            author = _author(meta.get("default_author"), name, report)
            keep = existing is None
            session = ImportSession.objects.create(
                pk=index_id if keep else _fresh_session_id(reserved_ids),
                title=title,
                description=description,
                file_storage=storage,
                default_author=author,
                source_path=source_path,
                target_subdirectory=target,
            )
            if imported_at:
                ImportSession.objects.filter(pk=session.pk).update(imported_at=imported_at)
            if not keep:
                renamed_from = index_id
                report.session_id_changes.append({"old_id": index_id, "new_id": session.pk, "index_file": name})
                report.conflict(
                    name, f"session id {index_id} belongs to another storage here; restored as session {session.pk}"
                )
            report.sessions_restored.append(session.pk)
        _restore_mirror_link(name, meta, session=session, report=report)
        try:
            _restore_files(name, data, session=session, storage=storage, store=store, report=report)
        except ValueError as exc:  # the file changed (or became unreadable) since it was checked: the rest is skipped
            report.problem(name, f"corrupt: {str(exc)[:200]}; the entries after it are skipped")
    if renamed_from is not None and not dry_run:
        _rename_session_index(store, name, session)


def _mirror_of(meta: dict) -> tuple[str, int] | None:
    """(storage uuid, session id) of the session a mirror copies (format 2 with issue 17's optional key), or None;
    Bad when the key is there but malformed."""
    value = meta.get("mirror_of")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise Bad("import_session.mirror_of is not an object")
    try:
        storage_uuid = str(uuid_lib.UUID(_str(value.get("storage_uuid"), "mirror_of.storage_uuid", max_length=64)))
    except ValueError:
        raise Bad("import_session.mirror_of.storage_uuid is not a uuid") from None
    return storage_uuid, _int(value.get("session_id"), "mirror_of.session_id", minimum=1, maximum=2**62)


def _link_mirror(session_id: int, storage_uuid: str, origin_id: int) -> bool:
    """Point the session at the one it mirrors, if that session is in the database on that storage."""
    origin = ImportSession.objects.filter(pk=origin_id, file_storage__storage_uuid=storage_uuid).first()
    if origin is None or origin.pk == session_id:
        return False
    ImportSession.objects.filter(pk=session_id, mirror_of__isnull=True).update(mirror_of=origin)
    return ImportSession.objects.filter(pk=session_id, mirror_of=origin).exists()


def _restore_mirror_link(name: str, meta: dict, *, session: ImportSession, report: StorageRecovery) -> None:
    try:
        link = _mirror_of(meta)
    except Bad as exc:
        report.problem(name, str(exc))
        return
    if link is None:
        return
    storage_uuid, origin_id = link
    linked = _link_mirror(session.pk, storage_uuid, origin_id)
    origin = {"storage_uuid": storage_uuid, "session_id": origin_id}
    report.mirrors.append({"session_id": session.pk, "mirror_of": origin, "linked": linked})


def _link_pending_mirrors(storages: list[dict]) -> None:
    """After every storage of a run is restored: link the mirrors whose original was restored after them."""
    for storage_report in storages:
        for mirror in storage_report.get("mirrors") or []:
            if not mirror["linked"]:
                origin = mirror["mirror_of"]
                mirror["linked"] = _link_mirror(mirror["session_id"], origin["storage_uuid"], origin["session_id"])


def _restore_files(
    name: str, data: LazyIndex, *, session, storage, store: drive.Storage, report: StorageRecovery
) -> None:
    """The session's files, read one entry at a time from the index's file, each built and dropped."""
    for key, entry in data.members("files"):
        where = f"{name} files[{str(key)[:40]}]"
        try:
            if not isinstance(key, str) or not HOTHASH.match(key):
                raise Bad("the key is not a hothash")
            if not isinstance(entry, dict):
                raise Bad("the entry is not an object")
            photo = _photo_for(entry, key, store, report, where)
            _restore_file(
                entry,
                photo=photo,
                session=session,
                storage=storage,
                store=store,
                report=report,
                where=where,
                default_primary=True,
            )
            companions = entry.get("companions") or []
            if not isinstance(companions, list):
                raise Bad("companions is not a list")
            for i, companion in enumerate(companions):
                try:
                    _restore_file(
                        companion,
                        photo=photo,
                        session=session,
                        storage=storage,
                        store=store,
                        report=report,
                        where=f"{where} companions[{i}]",
                        default_primary=False,
                    )
                except Bad as exc:
                    report.problem(f"{where} companions[{i}]", str(exc))
        except Bad as exc:
            report.problem(where, str(exc))


def _rename_session_index(store: drive.Storage, name: str, session: ImportSession) -> None:
    """The session got a new id: write its index under the new name and move the old file aside as a backup."""

    session = ImportSession.objects.select_related("file_storage", "default_author").get(pk=session.pk)
    write_session_index(session)
    if store.kind(name) == "file":  # anything else there raises drive.UnsafeLayout, untouched
        # Named so that no later recovery takes it for a backup of session_<old id>; moved whole, never read.
        set_aside(store, name, name=f"renamed-{Path(name).stem}-to-{session.pk}", suffix=".json")


def _reserved_session_ids(folders) -> set[int]:
    """Session ids that the indexes of these folders name (by file name): a renamed session avoids them all."""
    ids: set[int] = set()
    for folder in folders:
        try:
            with drive.Storage(Path(folder)) as store:
                listed = _listed_imports(store)
        except (OSError, drive.UnsafeLayout):
            continue  # reported when the storage itself is recovered
        for name, _kind in listed:
            match = SESSION_FILE.match(name)
            if match:
                ids.add(int(match.group(1)))
    return ids


def _fresh_session_id(reserved: set[int]) -> int:

    highest = ImportSession.objects.aggregate(m=Max("id"))["m"] or 0
    fresh = max(highest, max(reserved, default=0)) + 1
    reserved.add(fresh)
    return fresh


def recover_storage_folder(
    folder: Path,
    *,
    dry_run: bool = False,
    touch_disk: bool = True,
    reserved_ids: set | None = None,
    store: drive.Storage | None = None,
    should_stop=None,
) -> StorageRecovery:
    """Rebuild one storage's rows from its indexes, read only through the storage's descriptor (storages.drive).

    Session indexes are read one at a time and dropped: a first pass checks each (its size before it is read,
    then its whole text) and keeps only its import_session; the second reads the chosen file again and restores
    its files entry by entry. `should_stop()` (a job's cancel check) is called between sessions. Something in
    the storage that is not what it should be raises drive.UnsafeLayout.
    """
    if store is None:
        with drive.Storage(folder) as opened:
            return recover_storage_folder(
                folder,
                dry_run=dry_run,
                touch_disk=touch_disk,
                reserved_ids=reserved_ids,
                store=opened,
                should_stop=should_stop,
            )
    should_stop = should_stop or (lambda: None)
    report = StorageRecovery(path=str(folder))
    backups = Backups(store)
    master, _ = _read_with_backups(store, MASTER_INDEX, report, _check_master, backups)
    storage_uuid = _identity(folder, store, master, report)
    if storage_uuid is None:
        report.outcome = "skipped"
        return report
    report.storage_uuid = str(storage_uuid)
    names = _session_files(store, master, report)
    if master is not None:
        master.close()  # its session list is no longer needed
    sessions = []  # (name, where it was read from, its import_session): the files are read again when restored
    for name in names:
        should_stop()
        data, source = _read_with_backups(store, name, report, _check_session, backups)
        if data is not None:
            sessions.append((name, source, data["import_session"]))
            data.close()
        del data
    first_storage_id = None
    for _, _, meta in sessions:
        candidate = meta.get("file_storage_id")
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
    ids = [meta["id"] for _, _, meta in sessions]
    existing = {}
    for i in range(0, len(ids), 2000):
        existing.update(ImportSession.objects.in_bulk(ids[i : i + 2000]))

    renamed = {
        meta["id"]
        for _, _, meta in sessions
        if (row := existing.get(meta["id"])) is not None and not _same_session(row, meta, storage)
    }
    existing.clear()  # the rows are not needed past this sort
    sessions.sort(key=lambda item: item[2]["id"] in renamed)
    claimed: set[int] = set()
    reserved = reserved_ids if reserved_ids is not None else _reserved_session_ids([folder])
    for name, source, meta in sessions:
        should_stop()
        data, _ = _read_with_backups(store, name, report, _check_session, backups, source=source)
        if data is None:
            continue
        try:
            if data["import_session"].get("id") != meta["id"]:
                report.problem(name, "changed while it was recovered: it names another session now; it is skipped")
                continue
            _restore_session(
                name,
                data,
                storage=storage,
                store=store,
                report=report,
                claimed_ids=claimed,
                dry_run=dry_run or not touch_disk,
                reserved_ids=reserved,
            )
        finally:
            data.close()
        del data
    if report.session_id_changes and not dry_run and touch_disk:
        write_master_index(storage)  # it must name the renamed session indexes, not the old files
    changed = report.storage_created or report.sessions_restored or report.files_restored or report.photos_restored
    report.outcome = "restored" if changed else "unchanged"
    return report


def unsafe_report(folder: Path, problem: drive.UnsafeLayout) -> StorageRecovery:
    """A storage refused because something in it is not what it should be: nothing of it is restored."""
    report = StorageRecovery(path=str(folder), outcome="skipped", reason_code="unsafe_layout")
    report.problems.append({"where": problem.path, "problem": problem.reason, "reason_code": "unsafe_layout"})
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


def recover_from_indexes(
    search_roots, *, dry_run: bool = False, touch_disk: bool = True, folders=None, progress=None, should_stop=None
) -> RecoveryReport:
    """Find the storages under the roots (or take `folders` as given) and rebuild their rows.

    dry_run reports without keeping anything; touch_disk=False (the recovery drill) keeps the rows but
    writes nothing on the drives: no lock file, no renamed index. A storage that is unsafe to touch
    (drive.UnsafeLayout) is reported with the reason code `unsafe_layout` and nothing of it is kept.
    A cancel (should_stop raising) between sessions undoes the storage being recovered, keeps those before it.
    """

    progress = progress or (lambda **kw: None)
    started = time.monotonic()
    report = RecoveryReport(search_roots=[str(r) for r in search_roots], dry_run=dry_run)
    folders = (
        [Path(f) for f in folders]
        if folders is not None
        else find_storage_folders(search_roots, should_stop=should_stop)
    )
    report.found = len(folders)
    reserved = _reserved_session_ids(folders)
    progress(total=len(folders), done=0, force=True)
    try:
        for done, folder in enumerate(folders, start=1):
            if should_stop:
                should_stop()
            progress(current=folder.name)
            storage_report = None
            try:
                with drive.Storage(folder) as store, transaction.atomic():
                    storage_report = _recover_locked(
                        folder,
                        store,
                        dry_run=dry_run,
                        touch_disk=touch_disk,
                        reserved_ids=reserved,
                        should_stop=should_stop,
                    )
                    if dry_run:
                        raise _DryRun()
            except _DryRun:
                pass
            except drive.UnsafeLayout as problem:
                logger.warning("recovery refused %s: %s", folder, problem.reason)
                storage_report = unsafe_report(folder, problem)
            except (FileNotFoundError, NotADirectoryError):
                storage_report = StorageRecovery(path=str(folder), outcome="skipped")
                storage_report.problem(str(folder), "the storage folder is not there (an unplugged drive?)")
            report.storages.append(asdict(storage_report))
            progress(done=done)
        if not dry_run:
            _link_pending_mirrors(report.storages)
    except JobCancelled as cancelled:
        report.duration_s = round(time.monotonic() - started, 3)
        if cancelled.result is None:
            cancelled.result = {**report.as_dict(), "cancelled": True}
        raise
    finally:
        if not dry_run:
            _reset_sequences()
    report.duration_s = round(time.monotonic() - started, 3)
    progress(current=None, force=True)
    return report


def _recover_locked(
    folder: Path,
    store: drive.Storage,
    *,
    dry_run: bool,
    touch_disk: bool = True,
    reserved_ids: set | None = None,
    should_stop=None,
) -> StorageRecovery:
    """Recover one folder holding its storage lock, so no import or scan runs on it meanwhile.

    A read-only drive cannot hold the lock file; recovery only reads it, so it goes ahead without.
    """

    # The whole layout first: a storage with a link, a pipe or a wrong type anywhere ImaLink looks is refused
    # before any index of it is read (unsafe_layout), as every other operation refuses it.
    layout.require_safe_layout(folder)
    target = FileStorage(directory_name=folder.name, base_path=str(folder.parent), display_name=folder.name)
    with ExitStack() as stack:
        if (
            not dry_run and touch_disk and store.kind(".imalink") == "folder"
        ):  # a .imalink that is not a folder is unsafe
            try:
                stack.enter_context(storage_lock(target, wait=60))
            except OSError as exc:
                logger.info("recovering %s without a lock: %s", folder, exc.strerror)
        return recover_storage_folder(
            folder,
            dry_run=dry_run,
            touch_disk=touch_disk,
            reserved_ids=reserved_ids,
            store=store,
            should_stop=should_stop,
        )


def check_storage_folder(raw: str) -> Path:
    """A client's path to one storage folder (for adopt): allowed, and really an ImaLink storage."""

    folder = resolve_client_dir(raw, field="path")
    try:
        fd = os.open(folder, drive.DIR_FLAGS)
    except OSError:
        is_storage = False
    else:
        try:
            is_storage = _is_storage_folder(fd)
        finally:
            os.close(fd)
    if not folder.name.startswith("imalink_") or not is_storage:
        raise PathRejected(
            f"{raw} is not an ImaLink storage folder: "
            "it needs an imalink_* name and .imalink/storage.json or index.json.",
            code="not_a_storage",
            details={"field": "path"},
        )
    return folder


def run_recover_job(job, ctx) -> dict:
    roots = [Path(p) for p in job.params.get("search_roots", [])]
    folders = job.params.get("folders")
    return recover_from_indexes(
        roots,
        dry_run=bool(job.params.get("dry_run")),
        folders=folders,
        progress=ctx.progress,
        should_stop=ctx.check_cancelled,
    ).as_dict()


# --- the recovery page's "find", as a job ------------------------------------------------------------


def describe_storage_folder(folder: Path) -> dict:
    """What a found storage's master index holds, for display only: read through the storage's descriptor,
    its size checked before it is read, its session list walked (the first 50 kept), never trusted further."""
    info = {
        "path": str(folder),
        "problem": None,
        "reason_code": None,
        "display_name": None,
        "sessions": [],
        "total_files": None,
    }
    try:
        with drive.Storage(folder) as store:
            reading = read_lazy_index(store, MASTER_INDEX, max_bytes=DESCRIBE_MAX_INDEX_BYTES)
    except drive.UnsafeLayout as problem:
        info.update(problem=problem.reason, reason_code="unsafe_layout")
        return info
    except OSError as exc:
        info["problem"] = f"unreadable: {exc.strerror}"
        return info
    info["problem"] = reading.problem
    data = reading.data
    if data is not None:
        storage_info = data.get("storage_info") if isinstance(data.get("storage_info"), dict) else {}
        info["display_name"] = str(storage_info.get("display_name") or "")[:200] or None
        total = storage_info.get("total_files")
        info["total_files"] = total if isinstance(total, int) and not isinstance(total, bool) else None
        sessions = []
        try:
            for _, s in data.members("import_sessions"):
                if len(sessions) >= 50:
                    break
                if isinstance(s, dict):
                    count = s.get("file_count")
                    sessions.append(
                        {
                            "title": str(s.get("title", ""))[:200],
                            "file_count": count if isinstance(count, int) and not isinstance(count, bool) else None,
                        }
                    )
        except ValueError as exc:  # the file changed since it was checked
            info["problem"] = f"corrupt: {str(exc)[:200]}"
        finally:
            data.close()
        info["sessions"] = sessions
    return info


def run_find_job(job, ctx) -> dict:
    """Find the storages under the roots and describe each from its master index (the recovery page's find)."""
    started = time.monotonic()
    roots = [Path(p) for p in job.params.get("search_roots", [])]
    ctx.progress(total=None, done=0, current="searching", force=True)
    folders = find_storage_folders(roots, should_stop=ctx.check_cancelled)
    ctx.progress(total=len(folders), done=0, force=True)
    storages = []
    for done, folder in enumerate(folders, start=1):
        ctx.check_cancelled()
        ctx.progress(current=folder.name)
        storages.append(describe_storage_folder(folder))
        ctx.progress(done=done)
    ctx.progress(current=None, force=True)
    return {
        "search_roots": [str(r) for r in roots],
        "found": len(storages),
        "storages": storages,
        "duration_s": round(time.monotonic() - started, 3),
    }
