"""A drive is hostile input, ImaLink's own folders on it included (issue 13).

The matrix: for every place of a storage's layout (where), every wrong thing put there (what), every operation
ImaLink runs on a storage (run) must:
- leave every file outside the storage as it was (its checksum before and after), and add nothing outside;
- answer within a few seconds, never hang on a named pipe;
- report the storage unavailable with the reason code `unsafe_layout`;
- mark no row missing.

One test per (where, what); each runs every operation in turn and names the one that broke the rule.
"""

import hashlib
import os
import shutil
import time
from pathlib import Path

import pytest
from django.core.management import call_command

from imalink.errors import ImalinkError
from imports.models import ImageFile, ImportSession, Photo
from indexing.health import run_health_check
from indexing.recovery import recover_from_indexes
from indexing.rewrite import import_folder
from indexing.scanner import scan_storage
from indexing.validation import validate_storage
from indexing.writer import write_storage_indexes
from storages.models import FileStorage
from storages.services import storage_check_accessibility, storage_create

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120), pytest.mark.one_database]

SECRET = b"root:$6$a-password-hash-that-must-never-be-truncated:19000:0:99999:7:::\n"
HANG_S = 10  # a guard against a hang, not a speed target: every operation here takes well under a second
TARGET = "2024"

WHERES = {
    "storage folder": "",
    ".imalink": ".imalink",
    "lock": ".imalink/lock",
    "storage.json": ".imalink/storage.json",
    "tmp": ".imalink/tmp",
    "hotpreviews": ".imalink/hotpreviews",
    "hotpreview fan-out": "FANOUT",
    "index-backups": ".imalink/index-backups",
    "imports": "imports",
    "index.json": "index.json",
    "photos": "photos",
    "photos subfolder": f"photos/{TARGET}",
}
WHATS = ["symlink to an outside file", "symlink to an outside folder", "named pipe", "wrong type"]


def tree_digest(folder: Path) -> dict[str, str]:
    """Every entry under folder, never followed: files by checksum, links by target, the rest by kind."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            key = str(path.relative_to(folder))
            if path.is_symlink():
                found[key] = "link:" + os.readlink(path)
            elif path.is_fifo():
                found[key] = "fifo"
            elif path.is_file():
                found[key] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                found[key] = "dir"
    return found


@pytest.fixture
def hostile(allowed_root, corpus, tmp_path):
    """A storage with one import into photos/2024 and its indexes, plus an outside folder and a second card."""
    base = allowed_root / "drive"
    base.mkdir()
    storage = storage_create(base_path=str(base), display_name="Drive")
    card = allowed_root / "card"
    card.mkdir()
    for name in ("jpeg/camera/DSCN0010.jpg", "jpeg/camera/jolla.jpg", "png/hopper.png"):
        shutil.copy(corpus / name, card)
    session = ImportSession.objects.create(title="Card", file_storage=storage)
    import_folder(session_id=session.pk, source_path=str(card), target_subdirectory=TARGET)
    write_storage_indexes(storage)
    second = allowed_root / "card2"
    second.mkdir()
    shutil.copy(corpus / "jpeg/camera/door-knocker.jpg", second)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "shadow").write_bytes(SECRET)
    storage.refresh_from_db()
    return storage, session, second, outside, tmp_path / "aside"


def plant(root: Path, relative: str, what: str, outside: Path, aside: Path) -> Path:
    """Put `what` where `relative` belongs in the storage. The outside targets are copies of what was there,
    so that a follow would find the right marker, the right indexes, the right photos: the worst case."""
    if relative == "FANOUT":
        relative = str(sorted((root / ".imalink/hotpreviews").iterdir())[0].relative_to(root))
    path = root / relative if relative else root
    is_dir = path.is_dir()
    copy = outside / (relative.replace("/", "_") or "storage")
    if is_dir:
        shutil.copytree(path, copy, symlinks=True)
    elif path.exists():
        shutil.copy(path, copy)
        if copy.stat().st_size == 0:
            copy.write_bytes(SECRET)
    aside.mkdir(exist_ok=True)
    if path.exists():
        path.rename(aside / f"original-{len(list(aside.iterdir()))}")
    if what == "symlink to an outside file":
        path.symlink_to(copy if copy.is_file() else outside / "shadow")
    elif what == "symlink to an outside folder":
        path.symlink_to(copy if copy.is_dir() else outside, target_is_directory=True)
    elif what == "named pipe":
        os.mkfifo(path)
    elif what == "wrong type":
        if is_dir:
            path.write_bytes(b"a plain file where a folder belongs\n")
        else:
            path.mkdir()
            (path / "keep.txt").write_text("a folder where a file belongs")
    return path


def is_unsafe(exc: BaseException) -> bool:
    return isinstance(exc, ImalinkError) and exc.details.get("reason_code") == "unsafe_layout"


def refused(action):
    """The operation must refuse the storage with unsafe_layout."""
    try:
        action()
    except ImalinkError as exc:
        assert is_unsafe(exc), f"refused, but not as unsafe_layout: {exc.code} {exc.message} {exc.details}"
        return
    raise AssertionError("it went ahead on an unsafe storage")


def run_accessibility(ctx):
    report = storage_check_accessibility(ctx.storage)
    assert not report.is_accessible and report.reason_code == "unsafe_layout", report


def run_import(ctx):
    session = ImportSession.objects.create(title="Second card", file_storage=ctx.storage)
    refused(lambda: import_folder(session_id=session.pk, source_path=str(ctx.second)))


def run_scan(ctx):
    refused(lambda: scan_storage(ctx.storage))


def run_scan_adopt(ctx):
    refused(lambda: scan_storage(ctx.storage, adopt_new=True))


def run_quick_validation(ctx):
    refused(lambda: validate_storage(ctx.storage, mode="quick"))


def run_full_validation(ctx):
    refused(lambda: validate_storage(ctx.storage, mode="full"))


def run_index_generation(ctx):
    refused(lambda: write_storage_indexes(ctx.storage))


def run_health(ctx):
    report = run_health_check()
    (row,) = [r for r in report.storages if r["uuid"] == str(ctx.storage.storage_uuid)]
    assert not row["accessible"] and "never reads, writes or deletes through it" in row["reason"], row


def run_storage_page(ctx):
    page = ctx.client.get(f"/storages/{ctx.storage.storage_uuid}/")
    assert page.status_code == 200
    assert "never reads, writes or deletes through it" in page.content.decode(), "the storage page does not say why"


def run_session_page(ctx):
    assert ctx.client.get(f"/sessions/{ctx.session.pk}/").status_code == 200


def run_overview_page(ctx):
    assert ctx.client.get("/").status_code == 200


def _storage_outcome(report, root: Path):
    found = [s for s in report.storages if Path(s["path"]) == root]
    return found[0] if found else None


def run_recovery(ctx):
    call_command("flush", interactive=False, verbosity=0)
    report = recover_from_indexes([str(ctx.storage.full_path.parent)])
    found = _storage_outcome(report, ctx.storage.full_path)
    # A storage folder that is itself a link or a pipe is not even found: nothing is read through it.
    if found is not None:
        assert "unsafe_layout" in repr(found), found
        assert not ImageFile.objects.exists(), "rows were restored from an unsafe storage"


def run_adopt(ctx):
    call_command("flush", interactive=False, verbosity=0)
    try:
        report = recover_from_indexes([], folders=[ctx.storage.full_path])
    except ImalinkError as exc:
        assert is_unsafe(exc) or exc.code in ("not_a_storage", "path_rejected", "not_a_directory"), (
            exc.code,
            exc.message,
        )
        return
    found = _storage_outcome(report, ctx.storage.full_path)
    assert found is not None and "unsafe_layout" in repr(found), report
    assert not ImageFile.objects.exists(), "rows were restored from an unsafe storage"


# In order: the reads and refusals first, the two that start from a lost database last.
RUNS = [
    run_accessibility,
    run_import,
    run_scan,
    run_scan_adopt,
    run_quick_validation,
    run_full_validation,
    run_index_generation,
    run_health,
    run_storage_page,
    run_session_page,
    run_overview_page,
    run_recovery,
    run_adopt,
]


class Ctx:
    def __init__(self, storage, session, second, client):
        self.storage, self.session, self.second, self.client = storage, session, second, client


@pytest.mark.parametrize("what", WHATS)
@pytest.mark.parametrize("where", list(WHERES))
def test_a_hostile_entry_in_the_layout_is_never_followed_never_hangs_and_makes_the_storage_unsafe(
    hostile, where, what, admin_client
):
    storage, session, second, outside, aside = hostile
    root = storage.full_path
    if where == "storage folder" and what == "symlink to an outside folder":
        pass  # the copy of the whole storage outside, with its right marker, is the worst case
    plant(root, WHERES[where], what, outside, aside)
    before = tree_digest(outside)
    secret_previews = {p.read_bytes() for p in outside.rglob("*.jpg") if p.is_file()}
    ctx = Ctx(storage, session, second, admin_client)
    for run in RUNS:
        started = time.monotonic()
        try:
            run(ctx)
        except AssertionError as failure:
            raise AssertionError(f"{run.__name__}: {failure}") from None
        took = time.monotonic() - started
        assert took < HANG_S, f"{run.__name__} took {took:.1f} s"
        assert tree_digest(outside) == before, f"{run.__name__} changed or added a file outside the storage"
        if run not in (run_recovery, run_adopt):
            assert not ImageFile.objects.filter(status=ImageFile.Status.MISSING).exists(), (
                f"{run.__name__} marked a row missing"
            )
            stored = FileStorage.objects.get(pk=storage.pk)
            assert stored.is_accessible is False, f"after {run.__name__} the storage is not shown unavailable"
        else:
            leaked = [p.hothash for p in Photo.objects.all() if p.hotpreview and bytes(p.hotpreview) in secret_previews]
            assert not leaked, f"{run.__name__} served a preview read from outside the storage"


@pytest.mark.parametrize("what", ["symlink to an outside folder", "named pipe", "wrong type"])
def test_create_never_follows_a_storage_folder_swapped_right_after_it_was_made(
    allowed_root, tmp_path, monkeypatch, what
):
    """The sub-folders and the marker are made from the new folder's descriptor: what is put in its place
    between the mkdir and the next step is refused, and nothing is made through it."""
    import storages.layout

    outside = tmp_path / "outside"
    outside.mkdir()
    real_mkdir = os.mkdir

    def mkdir_then_swap(path, *args, **kwargs):
        real_mkdir(path, *args, **kwargs)
        if kwargs.get("dir_fd") is None and Path(path).name.startswith("imalink_"):
            os.rmdir(path)
            if what == "symlink to an outside folder":
                os.symlink(outside, path)
            elif what == "named pipe":
                os.mkfifo(path)
            else:
                Path(path).write_bytes(b"not a folder")

    monkeypatch.setattr(storages.layout.os, "mkdir", mkdir_then_swap)
    with pytest.raises(ImalinkError) as raised:
        storage_create(base_path=str(allowed_root), display_name="Raced")
    monkeypatch.undo()
    assert is_unsafe(raised.value), (raised.value.code, raised.value.message)
    assert list(outside.iterdir()) == [], "a storage was made through the swapped folder"
    assert not FileStorage.objects.exists()


def test_a_file_swapped_for_a_link_between_the_scan_walk_and_its_adoption_is_never_read(hostile, corpus, monkeypatch):
    """scan ?adopt_new reads each new file through the storage's descriptor: a file under photos/ replaced by a
    link to an image off the drive after the walk saw it is refused as unsafe, and nothing of it is adopted."""
    import imports.pipeline

    storage, _session, _second, outside, _aside = hostile
    new = storage.full_path / "photos" / TARGET / "new.jpg"
    shutil.copy(corpus / "jpeg/camera/door-knocker.jpg", new)
    shutil.copy(corpus / "jpeg/camera/canon_hdr_NO.jpg", outside / "outside.jpg")
    real_adopt = imports.pipeline._Worker.adopt

    def swap_then_adopt(self, src, checksum):
        if src.relative.name == "new.jpg" and not new.is_symlink():
            new.unlink()
            new.symlink_to(outside / "outside.jpg")
        return real_adopt(self, src, checksum)

    monkeypatch.setattr(imports.pipeline._Worker, "adopt", swap_then_adopt)
    before = tree_digest(outside)
    with pytest.raises(ImalinkError) as raised:
        scan_storage(storage, adopt_new=True)
    assert is_unsafe(raised.value), raised.value.message
    assert ImageFile.objects.filter(file_storage=storage).count() == 3, "a file read through the link was adopted"
    assert not FileStorage.objects.get(pk=storage.pk).is_accessible
    assert tree_digest(outside) == before


def test_the_photo_preview_never_renders_a_file_off_the_drive_that_a_link_points_to(hostile, corpus, admin_client):
    """The ~1024 px preview is rendered from the primary file through the storage's descriptor: when that file
    is now a link to an image off the drive, the stored hotpreview stands in and the outside image is never read."""
    storage, _session, _second, outside, _aside = hostile
    image_file = (
        ImageFile.objects.filter(file_storage=storage, relative_path__endswith="DSCN0010.jpg")
        .select_related("photo")
        .get()
    )
    served = admin_client.get(f"/photos/{image_file.photo.hothash}/preview.jpg")
    assert served.status_code == 200 and served.content != bytes(image_file.photo.hotpreview), "rendered from the file"
    path = storage.full_path / image_file.relative_path
    path.unlink()
    shutil.copy(corpus / "jpeg/camera/canon_hdr_NO.jpg", outside / "other.jpg")
    path.symlink_to(outside / "other.jpg")

    served = admin_client.get(f"/photos/{image_file.photo.hothash}/preview.jpg")
    assert served.status_code == 200
    assert served.content == bytes(image_file.photo.hotpreview), (
        "a preview was rendered from the image the link points to"
    )
