"""The one list of folder names ImaLink never walks into: operating-system and NAS litter, and its own `.imalink`.

The import's source walk, the scan and the validation of photos/ skip these folders, and the import refuses a
`target_subdirectory` that passes through one. One list, compared one way (case-insensitively), so nothing
ImaLink places can lie where its own scan does not look. Storages is the lowest app: every other one imports
this downward.
"""

from pathlib import PurePosixPath

IGNORED_DIRS = frozenset(
    {
        "@eadir",  # Synology thumbnails
        "#recycle",  # Synology recycle bin
        "$recycle.bin",  # Windows recycle bin
        ".appledouble",
        ".spotlight-v100",
        ".trashes",
        ".fseventsd",
        ".imalink",  # ImaLink's own
    }
)


def is_ignored_dir(name: str) -> bool:
    """Whether a folder of this name is skipped by every walk (case-insensitive, as on the filesystems NASes use)."""
    return name.lower() in IGNORED_DIRS


def ignored_part(relative) -> str | None:
    """The first component of a relative path that is an ignored folder name, or None."""
    return next((part for part in PurePosixPath(relative).parts if is_ignored_dir(part)), None)
