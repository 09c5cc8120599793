"""Checks for paths that come from clients: absolute, normalised, existing, inside IMALINK_ALLOWED_ROOTS.

Containment is decided after every symlink is resolved, so a link that points out of the roots is refused.
"""

import os
from pathlib import Path

from django.conf import settings

from imalink.errors import PathRejected

MAX_PATH_LENGTH = 4096


def allowed_roots() -> list[Path]:
    return [Path(os.path.realpath(root)) for root in settings.IMALINK_ALLOWED_ROOTS]


def is_inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def resolve_client_dir(raw, *, field: str) -> Path:
    """The real, existing folder that `raw` names, or PathRejected with a reason a person can act on."""
    details = {"field": field}
    if not isinstance(raw, str) or not raw:
        raise PathRejected(f"{field} must be a non-empty string.", details=details)
    details["path"] = raw.replace("\x00", "\\x00")
    if "\x00" in raw:
        raise PathRejected(f"{field} contains a NUL byte.", details=details)
    if len(raw) > MAX_PATH_LENGTH:
        raise PathRejected(f"{field} is longer than {MAX_PATH_LENGTH} characters.", details=details)
    if not os.path.isabs(raw):
        raise PathRejected(f"{field} must be an absolute path, like /media/photos.", details=details)
    parts = raw.split("/")
    if ".." in parts or "." in parts:
        raise PathRejected(f"{field} must be normalised: no '.' or '..' parts.", details=details)
    try:
        real = Path(os.path.realpath(raw, strict=True))
    except (OSError, ValueError):
        raise PathRejected(
            f"{field} {raw} does not exist. Is the drive connected?", code="path_not_found", details=details
        ) from None
    roots = allowed_roots()
    if not any(is_inside(real, root) for root in roots):
        via = f" (it resolves to {real} through a symlink)" if str(real) != os.path.normpath(raw) else ""
        details["allowed_roots"] = [str(root) for root in roots]
        raise PathRejected(
            f"{field} {raw} is outside the folders ImaLink may use{via}. Allowed: {', '.join(map(str, roots))}; "
            "set IMALINK_ALLOWED_ROOTS to add one.",
            code="path_not_allowed",
            details=details,
        )
    if not real.is_dir():
        raise PathRejected(f"{field} {raw} is not a folder.", code="not_a_directory", details=details)
    return real
