"""Walking an import source: which files to take, which to ignore, and which belong together.

A RAW and a JPEG with the same basename in the same folder are one photo (DESIGN §2).
"""

import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

JUNK_NAMES = frozenset({".ds_store", "thumbs.db", "desktop.ini", "ehthumbs.db", ".picasa.ini", "picasa.ini", ".localized"})
JUNK_DIRS = frozenset({"@eadir", ".appledouble", ".spotlight-v100", ".trashes", ".fseventsd", "$recycle.bin", ".imalink", "#recycle"})
JPEG_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe"})


def is_junk(name: str) -> bool:
    """Operating-system litter that is never a photo: .DS_Store, Thumbs.db, AppleDouble `._*` files."""
    lower = name.lower()
    return lower in JUNK_NAMES or name.startswith("._")


def is_junk_dir(name: str) -> bool:
    return name.lower() in JUNK_DIRS


@dataclass
class SourceFile:
    path: Path  # absolute
    relative: PurePosixPath  # relative to the source root
    size: int
    mtime_ns: int


@dataclass
class Unit:
    """Files that become one photo: a lone file, or a JPEG (primary) with its RAW companions."""

    files: list[SourceFile] = field(default_factory=list)


@dataclass
class Skipped:
    relative: str
    code: str
    reason: str


def walk_source(root: Path, *, recursive: bool = True) -> tuple[list[SourceFile], list[Skipped]]:
    """Every regular file under root, in a stable order; symlinks are not followed (they may point anywhere)."""
    found: list[SourceFile] = []
    skipped: list[Skipped] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            skipped.append(Skipped(_shown(str(folder.relative_to(root))), "unreadable", f"folder cannot be read: {exc.strerror}"))
            continue
        subfolders = []
        for entry in entries:
            try:
                if entry.is_symlink():
                    skipped.append(Skipped(_rel(root, entry.path), "symlink", "symbolic links are not followed"))
                    continue
                if entry.is_dir(follow_symlinks=False):
                    if recursive and not is_junk_dir(entry.name):
                        subfolders.append(Path(entry.path))
                    continue
                if not entry.is_file(follow_symlinks=False) or is_junk(entry.name):
                    continue
                if not _is_utf8(entry.path):
                    # The database and the indexes hold text; a surrogate-escaped name cannot be stored.
                    skipped.append(Skipped(_rel(root, entry.path), "bad_name", "the file name is not valid UTF-8; rename it to import it"))
                    continue
                st = entry.stat(follow_symlinks=False)
            except OSError as exc:
                skipped.append(Skipped(_rel(root, entry.path), "unreadable", f"cannot be read: {exc.strerror}"))
                continue
            found.append(SourceFile(Path(entry.path), PurePosixPath(_rel(root, entry.path)), st.st_size, st.st_mtime_ns))
        stack.extend(reversed(subfolders))
    return found, skipped


def _rel(root: Path, path: str) -> str:
    """The path relative to root, as text that is always valid UTF-8 (undecodable bytes shown as U+FFFD)."""
    return _shown(Path(path).relative_to(root).as_posix())


def _is_utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _shown(path: str) -> str:
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def group_units(files: list[SourceFile], raw_extensions: frozenset[str]) -> list[Unit]:
    """Pair each JPEG with the RAW files of the same basename in the same folder."""
    by_key: dict[tuple[str, str], list[SourceFile]] = {}
    order: list[tuple[str, str]] = []
    for f in files:
        key = (str(f.relative.parent), f.relative.stem.lower())
        if key not in by_key:
            by_key[key] = []
            order.append(key)
        by_key[key].append(f)
    units: list[Unit] = []
    for key in order:
        group = by_key[key]
        jpegs = [f for f in group if f.relative.suffix.lower() in JPEG_EXTENSIONS]
        raws = [f for f in group if f.relative.suffix.lower() in raw_extensions]
        others = [f for f in group if f not in jpegs and f not in raws]
        if jpegs and raws:
            units.append(Unit([jpegs[0], *raws]))
            units.extend(Unit([f]) for f in jpegs[1:])
        else:
            units.extend(Unit([f]) for f in jpegs + raws)
        units.extend(Unit([f]) for f in others)
    return units
