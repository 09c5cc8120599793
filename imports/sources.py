"""Walking an import source: which files to take, which to ignore, and which belong together.

A RAW and a JPEG with the same basename in the same folder are one photo (DESIGN §2). Companions join the item
of the same basename in the same folder (docs/MEDIA.md): XMP sidecars (`IMG_1.xmp`, `IMG_1.CR2.xmp`), Apple's
`.AAE`, Canon's and GoPro's `.THM` and `.LRV`, and a live photo's `.MOV` beside its HEIC or JPEG.

The source is outside every storage, but it is hostile input too: a folder swapped for a symbolic link after
it was checked must never lead the import off the allowed roots. So it is opened once, as a descriptor, from
`/` one component at a time with O_NOFOLLOW (SourceTree), walked from that descriptor with the no-follow
primitives of storages.drive, and every file is read through a descriptor opened relative to its own folder
(SourceFile.reading). Nothing below the source root is ever looked up by its full path again.
"""

import itertools
import os
import shutil
import stat
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from imalink.errors import ImalinkError
from storages import drive
from storages.ignored import IGNORED_DIRS as JUNK_DIRS  # noqa: F401  (the one list; re-exported for old callers)
from storages.ignored import is_ignored_dir as is_junk_dir

JUNK_NAMES = frozenset(
    {".ds_store", "thumbs.db", "desktop.ini", "ehthumbs.db", ".picasa.ini", "picasa.ini", ".localized"}
)
JPEG_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe"})
# A companion's role by its extension (imports.models.ImageFile.Role); a live photo's motion is matched apart.
COMPANION_ROLES = {".xmp": "sidecar", ".aae": "edit", ".thm": "thumbnail", ".lrv": "proxy"}
LIVE_STILL_EXTENSIONS = frozenset({".heic", ".heif", ".jpg", ".jpeg"})
LIVE_MOTION_EXTENSIONS = frozenset({".mov"})
# Opening /proc/self/fd/N reopens the very file object descriptor N holds: no name is looked up.
FD_FOLDER = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"


class UnsafeSource(ImalinkError):
    """The import source changed after it was checked (a folder swapped for a symbolic link): not followed."""

    status = 409
    code = "unsafe_source"


def is_junk(name: str) -> bool:
    """Operating-system litter that is never a photo: .DS_Store, Thumbs.db, AppleDouble `._*` files."""
    lower = name.lower()
    return lower in JUNK_NAMES or name.startswith("._")


def unsafe_reason(problem: drive.UnsafeLayout) -> str:
    return (
        f"{problem.path} is {problem.found}, not {problem.expected}: the source changed while it was imported, "
        "and ImaLink does not follow it"
    )


@dataclass
class OpenedSource:
    """A source file opened without following: its descriptor, its fstat, and paths that reach that very file.

    `path` is /proc/self/fd/N; `typed_path` is a private link to it that ends in the file's own suffix, for
    readers that go by extension (media inspection, LibRaw). Neither looks up a name in the source.
    """

    fd: int
    stat: os.stat_result
    path: Path
    typed_path: Path


@dataclass
class SourceFile:
    path: Path  # absolute, for names and messages; read it only through reading()
    relative: PurePosixPath  # relative to the source root
    size: int
    mtime_ns: int
    tree: "SourceTree | None" = field(default=None, repr=False, compare=False)

    @contextmanager
    def reading(self):
        """The file opened from the source root's descriptor, nothing followed (an OpenedSource).

        Raises drive.UnsafeLayout when a folder on the way or the file itself is no longer what the walk saw
        (a symbolic link, a named pipe, ...), OSError when it cannot be opened.
        """
        if self.tree is not None:
            with self.tree.reading(self.relative) as opened:
                yield opened
            return
        with (
            SourceTree(Path(os.path.realpath(self.path.parent))) as tree,
            tree.reading(PurePosixPath(self.path.name)) as opened,
        ):
            yield opened


class SourceTree:
    """An import source folder, opened once as a descriptor; everything below it is reached from that descriptor.

    `real` must be a real path (no symbolic link in it, as resolve_client_dir returns): it is opened from `/`
    one component at a time with O_NOFOLLOW, so a component swapped for a link since it was resolved raises
    UnsafeSource, and the descriptor is on the folder that was checked. Close it (or use it as a context manager).
    """

    def __init__(self, real: Path):
        self.root = Path(real)
        top = os.open("/", drive.DIR_FLAGS)
        try:
            self.fd = drive.open_dir(top, self.root.relative_to("/"), shown="/")
        except drive.UnsafeLayout as problem:
            raise UnsafeSource(
                f"The source {self.root} changed after it was checked: {problem.path} is now {problem.found}, not "
                "a folder. ImaLink does not follow it; nothing was imported.",
                details={
                    "field": "source_path",
                    "path": str(self.root),
                    "reason_code": "unsafe_source",
                    "unsafe_path": problem.path,
                },
            ) from None
        finally:
            os.close(top)
        self._links: str | None = None
        self._links_lock = threading.Lock()
        self._names = itertools.count()

    @classmethod
    def on_storage(cls, storage: drive.Storage) -> "SourceTree":
        """The tree of an open storage (for files a scan adopts where they lie): reached from its descriptor,
        so a folder or file under photos/ swapped for a link since the walk raises drive.UnsafeLayout."""
        tree = cls.__new__(cls)
        tree.root, tree.fd = storage.root, os.dup(storage.fd)
        tree._links, tree._links_lock, tree._names = None, threading.Lock(), itertools.count()
        return tree

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self._links is not None:
            shutil.rmtree(self._links, ignore_errors=True)  # links only; rmtree never follows them
            self._links = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def open_file(self, relative: PurePosixPath) -> tuple[int, os.stat_result]:
        """(descriptor, fstat) of a plain file below the root: its folder walked from the root's descriptor and
        the file opened in it, nothing followed, never blocked on. Close the descriptor."""
        relative = PurePosixPath(relative)
        shown = self.root / relative
        if relative.parent.parts:
            with drive.opened_dir(self.fd, relative.parent, shown=self.root) as folder:
                return drive.open_file_at(folder, relative.name, shown=shown)
        return drive.open_file_at(self.fd, relative.name, shown=shown)

    @contextmanager
    def reading(self, relative: PurePosixPath):
        """An OpenedSource for a file below the root; its descriptor and link are gone after the block."""
        fd, st = self.open_file(relative)
        link = None
        try:
            path = Path(FD_FOLDER, str(fd))
            folder = self._link_folder()
            link = f"{next(self._names)}{_suffix(relative)}"
            os.symlink(str(path), os.path.join(folder, link))
            yield OpenedSource(fd, st, path, Path(folder, link))
        finally:
            if link is not None:
                try:
                    os.unlink(os.path.join(self._links or "", link))
                except OSError:
                    pass
            os.close(fd)

    def _link_folder(self) -> str:
        """A private folder (mode 0700, made by mkdtemp) for the typed links; nobody else can put a name in it."""
        with self._links_lock:
            if self._links is None:
                self._links = tempfile.mkdtemp(prefix="imalink-source-")
            return self._links

    def walk(self, *, recursive: bool = True) -> tuple[list["SourceFile"], list["Skipped"]]:
        """Every regular file below the root, in a stable order; symbolic links are reported, never followed.

        Folders are opened relative to their parent's descriptor with O_NOFOLLOW: a folder swapped for a link
        while the walk runs raises UnsafeSource, and nothing of it is walked.
        """
        found: list[SourceFile] = []
        skipped: list[Skipped] = []

        def on_error(relative: str, exc: OSError) -> None:
            skipped.append(Skipped(_shown(relative), "unreadable", f"cannot be read: {exc.strerror}"))

        skip_dir = is_junk_dir if recursive else (lambda name: True)
        try:
            for text, st in drive.walk_files(
                self.fd, skip_dir=skip_dir, shown=self.root, strict=False, on_error=on_error
            ):
                relative = PurePosixPath(text)
                if stat.S_ISLNK(st.st_mode):
                    skipped.append(Skipped(_shown(text), "symlink", "symbolic links are not followed"))
                    continue
                if not stat.S_ISREG(st.st_mode):
                    # A named pipe, socket or device is never a photo, and is never opened: the report says so.
                    kind = special_kind(st.st_mode)
                    skipped.append(Skipped(_shown(text), "special_file", f"{kind} is not a file; it was not opened"))
                    continue
                if is_junk(relative.name):
                    continue
                if not _is_utf8(text):
                    # The database and the indexes hold text; a surrogate-escaped name cannot be stored.
                    skipped.append(
                        Skipped(_shown(text), "bad_name", "the file name is not valid UTF-8; rename it to import it")
                    )
                    continue
                found.append(SourceFile(self.root / relative, relative, st.st_size, st.st_mtime_ns, tree=self))
        except drive.UnsafeLayout as problem:
            raise UnsafeSource(
                f"The source {self.root} changed while it was walked: {problem.path} is now {problem.found}, not "
                f"{problem.expected}. ImaLink does not follow it; nothing was imported.",
                details={
                    "field": "source_path",
                    "path": str(self.root),
                    "reason_code": "unsafe_source",
                    "unsafe_path": problem.path,
                },
            ) from None
        return found, skipped


def special_kind(mode: int) -> str:
    """What a file that is not a regular file is, in words for the report."""
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    return "a special file"


def _suffix(relative: PurePosixPath) -> str:
    suffix = relative.suffix
    return suffix if len(suffix.encode("utf-8", "surrogateescape")) <= 200 else ""


@dataclass
class Unit:
    """Files that become one item: its originals (a lone file, or a JPEG, primary, with its RAW files) and the
    companions that travel with it, each with its role."""

    files: list[SourceFile] = field(default_factory=list)
    companions: list[tuple[SourceFile, str]] = field(default_factory=list)


@dataclass
class Skipped:
    relative: str
    code: str
    reason: str


def _is_utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _shown(path: str) -> str:
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def group_units(files: list[SourceFile], raw_extensions: frozenset[str]) -> list[Unit]:
    """Pair each JPEG with the RAW files of the same basename in the same folder, and give each item its
    companions. A companion whose item is not there (a lone `.xmp`, a `.THM` without its video) is a unit of
    its own, with no originals: the import reports it, it does not guess."""
    by_folder: dict[str, list[SourceFile]] = {}
    for f in files:
        by_folder.setdefault(str(f.relative.parent), []).append(f)
    units: list[Unit] = []
    for folder_files in by_folder.values():
        units.extend(_folder_units(folder_files, raw_extensions))
    return units


def _folder_units(files: list[SourceFile], raw_extensions: frozenset[str]) -> list[Unit]:
    stills = {f.relative.stem.lower() for f in files if f.relative.suffix.lower() in LIVE_STILL_EXTENSIONS}
    companions, originals = [], []
    for f in files:
        suffix = f.relative.suffix.lower()
        if suffix in COMPANION_ROLES:
            companions.append((f, COMPANION_ROLES[suffix]))
        elif suffix in LIVE_MOTION_EXTENSIONS and f.relative.stem.lower() in stills:
            companions.append((f, "motion"))
        else:
            originals.append(f)

    by_stem: dict[str, list[SourceFile]] = {}
    for f in originals:
        by_stem.setdefault(f.relative.stem.lower(), []).append(f)
    units: list[Unit] = []
    for group in by_stem.values():
        jpegs = [f for f in group if f.relative.suffix.lower() in JPEG_EXTENSIONS]
        raws = [f for f in group if f.relative.suffix.lower() in raw_extensions]
        others = [f for f in group if f not in jpegs and f not in raws]
        if jpegs and raws:
            units.append(Unit([jpegs[0], *raws]))
            units.extend(Unit([f]) for f in jpegs[1:])
        else:
            units.extend(Unit([f]) for f in jpegs + raws)
        units.extend(Unit([f]) for f in others)

    by_name = {f.relative.name.lower(): unit for unit in units for f in unit.files}
    by_item_stem: dict[str, Unit] = {}
    for unit in units:  # the first unit of a stem takes its companions: the JPEG+RAW pair before a lone HEIC
        by_item_stem.setdefault(unit.files[0].relative.stem.lower(), unit)
    for f, role in companions:
        unit = _companion_item(f, role, by_name, by_item_stem)
        if unit is None:
            units.append(Unit([], [(f, role)]))
        else:
            unit.companions.append((f, role))
    return units


def _companion_item(f: SourceFile, role: str, by_name: dict, by_item_stem: dict) -> "Unit | None":
    stem = f.relative.stem.lower()
    if role == "sidecar" and stem in by_name:  # IMG_1.CR2.xmp belongs to IMG_1.CR2 itself
        return by_name[stem]
    if role == "proxy" and stem.startswith("gl"):
        # GoPro names a clip's proxy GL010001.LRV beside GX010001.MP4 (GH on older cameras).
        for prefix in ("gx", "gh"):
            if prefix + stem[2:] in by_item_stem:
                return by_item_stem[prefix + stem[2:]]
    return by_item_stem.get(stem)
