"""The one safe way to touch a storage on a drive: descriptor-relative, no-follow primitives.

A drive is hostile input, ImaLink's own folders on it included. Every path ImaLink opens, creates, lists,
renames or deletes inside a storage goes through this module. A path is walked one component at a time from
the storage folder's own descriptor, each component opened with O_NOFOLLOW, so the path that was checked and
the object that is used are the same. A file that is read is opened with O_NONBLOCK and checked with fstat
before a byte is read, so a named pipe never blocks.

What is not what it should be (a symbolic link, a named pipe, a socket, a device, a folder where a file
belongs or a file where a folder belongs) raises UnsafeLayout: the storage is unavailable with the reason
code `unsafe_layout`, and nothing is read, written or deleted through it.
"""

import errno
import os
import secrets
import stat
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from imalink.errors import StorageUnavailable

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
WRITE_NEW_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_NOATIME = getattr(os, "O_NOATIME", 0)


def describe_entry(mode: int) -> str:
    """What a directory entry is, in words, from its lstat mode."""
    for test, words in (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"),
        (stat.S_ISREG, "a file"),
    ):
        if test(mode):
            return words
    return "not a file"


class UnsafeLayout(StorageUnavailable):
    """Something in a storage is not what ImaLink put there: it could lead a read, write or delete off the drive."""

    def __init__(self, path, found: str, expected: str):
        self.path, self.found, self.expected = str(path), found, expected
        super().__init__(
            f"{path} is {found}, not {expected}: ImaLink never reads, writes or deletes through it, and the storage is "
            "unavailable until it is moved aside.",
            details={"reason_code": "unsafe_layout", "path": str(path), "found": found, "expected": expected},
        )

    @property
    def reason(self) -> str:
        return self.message


def unsafe_entry(path, mode: int | None, expected: str) -> UnsafeLayout:
    return UnsafeLayout(path, describe_entry(mode) if mode is not None else "not usable", expected)


def _lmode(dirfd: int, name: str) -> int | None:
    try:
        return os.stat(name, dir_fd=dirfd, follow_symlinks=False).st_mode
    except OSError:
        return None


def parts_of(relative) -> tuple[str, ...]:
    """The components of a storage-relative path; an absolute path or a '..' is a bug, never a request."""
    parts = PurePosixPath(relative).parts
    if parts and (parts[0] == "/" or ".." in parts):
        raise ValueError(f"{relative!r} is not a path inside a storage")
    return tuple(p for p in parts if p != ".")


def open_root(root: Path) -> int:
    """A descriptor on the storage folder itself. FileNotFoundError when it is not there (an unplugged drive).

    The base path above it was checked when it was given (storages.paths); the storage folder is ImaLink's own
    and must be a real folder, not a symbolic link.
    """
    try:
        return os.open(root, DIR_FLAGS)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            try:
                mode = os.lstat(root).st_mode
            except OSError:
                mode = None
            raise unsafe_entry(root, mode, "a folder") from None
        raise


def open_dir(dirfd: int, relative, *, create: bool = False, shown: Path | str = "") -> int:
    """A new descriptor on dirfd/relative, walked one component at a time, none of them followed.

    With create, missing folders are made one level at a time below dirfd (never dirfd itself, so a storage
    whose drive has gone is never re-created on an empty mount point). Close the result.
    """
    shown = Path(shown)
    fd = os.dup(dirfd)
    try:
        for part in parts_of(relative):
            shown = shown / part
            if create:
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass
            try:
                nxt = os.open(part, DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise unsafe_entry(shown, _lmode(fd, part), "a folder") from None
                raise
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextmanager
def opened_dir(dirfd: int, relative, *, create: bool = False, shown: Path | str = ""):
    fd = open_dir(dirfd, relative, create=create, shown=shown)
    try:
        yield fd
    finally:
        os.close(fd)


class Storage:
    """An open storage folder: every path below it is reached from its descriptor, never by name from `/`.

    Use as a context manager: `with Storage(root) as drive: drive.read_bytes(".imalink/storage.json", ...)`.
    Paths are storage-relative POSIX paths; `shown()` turns one back into the full path for messages.
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        self.fd = open_root(self.root)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def shown(self, relative="") -> Path:
        return self.root.joinpath(*parts_of(relative)) if relative else self.root

    def _split(self, relative) -> tuple[tuple[str, ...], str]:
        parts = parts_of(relative)
        if not parts:
            raise ValueError("a file path inside the storage is needed")
        return parts[:-1], parts[-1]

    @contextmanager
    def folder(self, relative="", *, create: bool = False):
        """A descriptor on a folder of the storage (created level by level with create)."""
        with opened_dir(self.fd, relative, create=create, shown=self.root) as fd:
            yield fd

    @contextmanager
    def parent_of(self, relative, *, create: bool = False):
        """(descriptor on the folder holding relative, its last name)."""
        folder, name = self._split(relative)
        with opened_dir(self.fd, PurePosixPath(*folder) if folder else "", create=create, shown=self.root) as fd:
            yield fd, name

    @contextmanager
    def path_to(self, relative, *, create_folders: bool = False):
        """A path that reaches `relative` through the descriptor of the folder holding it (/proc/self/fd/N/name),
        for code that takes paths: the folders on the way were walked without following, and no name above them
        is looked up again. Only the last name is; open it with O_NOFOLLOW (and O_NONBLOCK to read)."""
        with self.parent_of(relative, create=create_folders) as (fd, name):
            yield Path(f"/proc/self/fd/{fd}") / name

    def lstat(self, relative) -> os.stat_result:
        """lstat of an entry; the folders on the way must be real folders. FileNotFoundError when absent."""
        with self.parent_of(relative) as (fd, name):
            return os.stat(name, dir_fd=fd, follow_symlinks=False)

    def plain_file_stats(self, relatives) -> dict[str, os.stat_result | None]:
        """lstat of many entries, each folder on their way opened once: by relative path, the stat of a plain file,
        or None for anything else (absent, not a plain file, or below something that is not a real folder)."""
        by_folder: dict[tuple[str, ...], list[tuple[str, str]]] = {}
        for relative in relatives:
            folder, name = self._split(relative)
            by_folder.setdefault(folder, []).append((relative, name))
        stats: dict[str, os.stat_result | None] = {}
        for folder, entries in by_folder.items():
            try:
                fd = open_dir(self.fd, PurePosixPath(*folder) if folder else "", shown=self.root)
            except (OSError, UnsafeLayout):
                stats.update((relative, None) for relative, _ in entries)
                continue
            try:
                for relative, name in entries:
                    try:
                        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                    except OSError:
                        st = None
                    stats[relative] = st if st is not None and stat.S_ISREG(st.st_mode) else None
            finally:
                os.close(fd)
        return stats

    def kind(self, relative) -> str | None:
        """'file', 'folder' or None (absent); anything else raises UnsafeLayout."""
        try:
            mode = self.lstat(relative).st_mode
        except FileNotFoundError:
            return None
        if stat.S_ISREG(mode):
            return "file"
        if stat.S_ISDIR(mode):
            return "folder"
        raise unsafe_entry(self.shown(relative), mode, "a file or a folder")

    def open_read(self, relative, *, noatime: bool = False) -> tuple[int, os.stat_result]:
        """(descriptor, fstat) of a plain file, opened without following or blocking. Close the descriptor."""
        with self.parent_of(relative) as (dirfd, name):
            return open_file_at(dirfd, name, shown=self.shown(relative), noatime=noatime)

    def read_bytes(self, relative, *, limit: int) -> bytes:
        """The bytes of a plain file of at most `limit` bytes; FileTooLarge past that."""
        fd, st = self.open_read(relative)
        with os.fdopen(fd, "rb") as handle:
            if st.st_size > limit:
                raise FileTooLarge(self.shown(relative), st.st_size, limit)
            raw = handle.read(limit + 1)
        if len(raw) > limit:
            raise FileTooLarge(self.shown(relative), len(raw), limit)
        return raw

    def write_atomic(self, relative, data: bytes, *, mode: int = 0o644, create_folders: bool = False) -> None:
        """Write a file whole: a new temporary file beside it, fsync, rename over it, fsync the folder.

        What stands in its place must be a plain file or nothing; anything else raises UnsafeLayout, untouched.
        """
        with self.parent_of(relative, create=create_folders) as (dirfd, name):
            write_atomic_at(dirfd, name, data, mode=mode, shown=self.shown(relative))

    def write_new(self, relative, data: bytes, *, mode: int = 0o644) -> None:
        """Write a file that must not exist yet: written whole and fsynced under a temporary name, then linked to
        its name, which fails rather than replace (FileExistsError) whatever appeared there in between."""
        with self.parent_of(relative) as (dirfd, name):
            write_new_at(dirfd, name, data, mode=mode)

    def listdir(self, relative="") -> list[tuple[str, str]]:
        """(name, kind) of each entry of a folder, never followed: kind is 'file', 'folder', or what else it is
        in words ('a symbolic link', 'a named pipe', ...). Only entries that are neither are stat'ed."""
        found = []
        with self.folder(relative) as fd, os.scandir(fd) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    found.append((entry.name, "folder"))
                elif entry.is_file(follow_symlinks=False):
                    found.append((entry.name, "file"))
                else:
                    found.append((entry.name, describe_entry(_lmode(fd, entry.name) or 0)))
        return found

    def unlink(self, relative) -> None:
        """Remove a plain file that ImaLink owns (never one under photos/). A non-file raises UnsafeLayout."""
        with self.parent_of(relative) as (dirfd, name):
            mode = _lmode(dirfd, name)
            if mode is None:
                raise FileNotFoundError(errno.ENOENT, "not found", str(self.shown(relative)))
            if not stat.S_ISREG(mode):
                raise unsafe_entry(self.shown(relative), mode, "a file")
            os.unlink(name, dir_fd=dirfd)

    def rename(self, source, target, *, create_folders: bool = False) -> None:
        """Rename one entry of the storage to another name in it; the entry itself is moved, never followed."""
        with (
            self.parent_of(source) as (src_fd, src_name),
            self.parent_of(target, create=create_folders) as (dst_fd, dst_name),
        ):
            os.rename(src_name, dst_name, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
            os.fsync(dst_fd)


class FileTooLarge(ValueError):
    def __init__(self, path, size: int, limit: int):
        super().__init__(f"{path} is {size:,} bytes, over the limit of {limit:,}")
        self.size, self.limit = size, limit


def open_file_at(dirfd: int, name: str, *, shown, noatime: bool = False) -> tuple[int, os.stat_result]:
    """(descriptor, fstat) of the plain file `name` in dirfd: never followed, never blocked on."""
    flags = READ_FLAGS | (_NOATIME if noatime else 0)
    try:
        fd = os.open(name, flags, dir_fd=dirfd)
    except PermissionError:
        if not (noatime and _NOATIME):
            raise
        fd = os.open(name, READ_FLAGS, dir_fd=dirfd)  # O_NOATIME is for the file's owner (or root) alone
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise unsafe_entry(shown, _lmode(dirfd, name), "a file") from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise unsafe_entry(shown, st.st_mode, "a file")
    return fd, st


def fsync_dir(folder: Path) -> None:
    """fsync a folder by name (one ImaLink made itself, like a new storage folder's parent)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_temp(dirfd: int, name: str, data: bytes, mode: int) -> str:
    """A new temporary file beside `name` holding data, fsynced (removed again if that fails). Its name."""
    tmp = f".{name[:200]}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, WRITE_NEW_FLAGS, 0o600, dir_fd=dirfd)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dirfd)
        except FileNotFoundError:
            pass
        raise
    return tmp


def write_atomic_at(dirfd: int, name: str, data: bytes, *, mode: int = 0o644, shown="") -> None:
    """The atomic write of `name` in the folder dirfd: temp file, fsync, rename, fsync the folder."""
    current = _lmode(dirfd, name)
    if current is not None and not stat.S_ISREG(current):
        raise unsafe_entry(shown or name, current, "a file")
    tmp = _write_temp(dirfd, name, data, mode)
    try:
        os.replace(tmp, name, src_dir_fd=dirfd, dst_dir_fd=dirfd)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dirfd)
        except FileNotFoundError:
            pass
        raise
    os.fsync(dirfd)


def write_new_at(dirfd: int, name: str, data: bytes, *, mode: int = 0o644) -> None:
    """Create `name` in the folder dirfd with these bytes, never over anything: FileExistsError if it is taken."""
    tmp = _write_temp(dirfd, name, data, mode)
    try:
        try:
            os.link(tmp, name, src_dir_fd=dirfd, dst_dir_fd=dirfd, follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            # no hard links (FAT, exFAT): the caller holds the storage lock, so check-then-rename is its alone
            if _lmode(dirfd, name) is not None:
                raise FileExistsError(errno.EEXIST, "exists", name) from None
            os.rename(tmp, name, src_dir_fd=dirfd, dst_dir_fd=dirfd)
    finally:
        try:
            os.unlink(tmp, dir_fd=dirfd)
        except FileNotFoundError:
            pass
    os.fsync(dirfd)


def walk_files(
    dirfd: int,
    *,
    skip_dir=None,
    shown: Path | str = "",
    strict: bool = True,
    on_error=None,
    ordered: bool = True,
    named: str = "",
):
    """Yield (relative path, lstat) of every plain file below dirfd, nothing followed; the path is a str like
    "a/b/c.jpg". With ordered, each folder's entries come in name order, its files before its subfolders'
    (a stable order for an import); without, in the order the folder lists them, which spares a sort per
    folder and keeps a scan of 100,000 files close to a bare os.scandir walk (benchmarks/scan_benchmark.py).

    Each folder is opened from its parent's descriptor with O_NOFOLLOW, so a folder swapped for a symbolic
    link while the walk runs is refused, not walked. With strict, a symbolic link, named pipe, socket
    or device below dirfd raises UnsafeLayout; without it those are yielded too, for the caller to report.
    `skip_dir(name)` names folders not to enter. `on_error(relative, OSError)` hears of a folder or entry that
    cannot be read (it vanished, or no permission); without it the error is raised. With `named`, every path
    starts with that folder name (dirfd being that folder, and `shown` the folder holding it).
    """
    is_reg = stat.S_ISREG

    def listed(fd: int, rel: str):
        """(files as (path, lstat), subfolder names) of the open folder fd, or None when it cannot be listed."""
        prefix = rel + "/" if rel else ""
        try:
            with os.scandir(fd) as listing:
                entries = sorted(listing, key=lambda e: e.name) if ordered else list(listing)
        except OSError as exc:
            if on_error is None:
                raise
            on_error(rel, exc)
            return [], []
        files, subfolders = [], []
        for entry in entries:  # DirEntry.stat works relative to fd, which stays open until its subfolders are done
            name = entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    if skip_dir is None or not skip_dir(name):
                        subfolders.append(name)
                    continue
                st = entry.stat(follow_symlinks=False)
            except OSError as exc:
                if on_error is None:
                    raise
                on_error(prefix + name, exc)
                continue
            if strict and not is_reg(st.st_mode):
                raise unsafe_entry(os.path.join(shown, prefix + name), st.st_mode, "a file or a folder")
            files.append((prefix + name, st))
        return files, subfolders

    # Depth first; each folder is opened relative to its parent's descriptor (one openat, O_NOFOLLOW), and a
    # folder's descriptor stays open while its subfolders are walked: at most one per level is open.
    top = os.dup(dirfd)
    stack = []
    try:
        files, subfolders = listed(top, named)
        stack.append((top, named, iter(subfolders)))
        yield from files
        while stack:
            fd, rel, pending = stack[-1]
            name = next(pending, None)
            if name is None:
                os.close(fd)
                stack.pop()
                continue
            child_rel = f"{rel}/{name}" if rel else name
            try:
                child = os.open(name, DIR_FLAGS, dir_fd=fd)  # one component: the parent's descriptor, no follow
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise unsafe_entry(os.path.join(shown, child_rel), _lmode(fd, name), "a folder") from None
                if on_error is None:
                    raise
                on_error(child_rel, exc)
                continue
            stack.append((child, child_rel, iter(())))  # closed by the loop even if listing raises
            files, subfolders = listed(child, child_rel)
            stack[-1] = (child, child_rel, iter(subfolders))
            yield from files
    finally:
        for fd, _, _ in stack:
            os.close(fd)
