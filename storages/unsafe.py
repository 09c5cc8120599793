"""Recording on a storage's row that something on its drive made it unsafe to touch (issue 13).

A walk, a read or a copy that meets what ImaLink did not put there (a symbolic link, a named pipe, a socket,
a device, a folder where a file belongs or the reverse) raises storages.drive.UnsafeLayout. Before the error
goes on to the job or the API (409 storage_unavailable, reason_code unsafe_layout), the storage is recorded
as unavailable with that reason, so that every other operation refuses it too until the entry is moved aside.
"""

from django.utils import timezone


def mark_unsafe(storage, exc) -> None:
    """Record on the storage's row that it is unavailable, with the UnsafeLayout's reason."""
    now = timezone.now()
    type(storage).objects.filter(pk=storage.pk).update(
        is_accessible=False, accessibility_reason=exc.reason, accessibility_checked_at=now
    )
    storage.is_accessible, storage.accessibility_reason, storage.accessibility_checked_at = False, exc.reason, now
