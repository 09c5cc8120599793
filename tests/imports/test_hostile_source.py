"""Issue 13, points 3 and 4: the import source is hostile input, and one list of ignored folder names.

- The source swapped for a symbolic link while the job waits for the storage lock is refused after the lock
  is taken; a folder or file swapped mid-import is never followed.
- A target_subdirectory through an ignored folder name is refused with 400, and the names the import refuses
  are exactly the ones the scan and the source walk skip.
"""

import hashlib
import os
import shutil
import threading
from pathlib import Path, PurePosixPath

import pytest

from imalink.errors import ImalinkError, PathRejected
from imports import sources
from imports.models import ImageFile, ImportSession
from imports.pipeline import validate_target_subdirectory
from indexing import scanner
from indexing.rewrite import import_folder
from jobs.models import Job
from storages import drive, ignored
from storages.locks import storage_lock
from storages.models import FileStorage
from tests.conftest import assert_error

pytestmark = pytest.mark.django_db

OUTSIDE_PHOTO = "jpeg/camera/DSCN0010.jpg"
INSIDE_PHOTO = "jpeg/camera/jolla.jpg"


@pytest.fixture
def session(make_storage):
    storage = FileStorage.objects.get(storage_uuid=make_storage()["uuid"])
    return ImportSession.objects.create(title="Card", file_storage=storage)


@pytest.fixture
def outside(tmp_path, corpus):
    """A folder outside the allowed roots holding a real camera JPEG (and one in a subfolder)."""
    folder = tmp_path / "outside"
    (folder / "deeper").mkdir(parents=True)
    shutil.copy(corpus / OUTSIDE_PHOTO, folder / "SECRET.jpg")
    shutil.copy(corpus / OUTSIDE_PHOTO, folder / "deeper" / "SECRET2.jpg")
    return folder


@pytest.fixture
def card(allowed_root, corpus):
    folder = allowed_root / "card"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(corpus / INSIDE_PHOTO, folder / "a.jpg")
    shutil.copy(corpus / "jpeg/camera/door-knocker.jpg", folder / "sub" / "b.jpg")
    return folder


def digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def photos_of(storage) -> dict[str, str]:
    return digests(storage.full_path / "photos")


def assert_nothing_from(outside: Path, storage) -> None:
    secret = hashlib.sha256((outside / "SECRET.jpg").read_bytes()).hexdigest()
    assert secret not in photos_of(storage).values()
    assert not ImageFile.objects.filter(original_filename__startswith="SECRET").exists()


def swap_for_link(folder: Path, target: Path) -> None:
    shutil.rmtree(folder)
    os.symlink(target, folder)


# --- point 3: the source swapped while the job waits for the lock ---------------------------------------


@pytest.mark.parametrize("to", ["outside", "elsewhere_inside"])
def test_a_source_swapped_for_a_link_while_the_job_waits_for_the_lock_is_refused(
    session, card, outside, allowed_root, corpus, settings, to
):
    settings.IMALINK_LOCK_WAIT = 30
    storage = session.file_storage
    outside_before = digests(outside)
    if to == "outside":
        target = outside
    else:  # inside the allowed roots, but not the folder that was checked
        target = allowed_root / "other"
        target.mkdir()
        shutil.copy(corpus / OUTSIDE_PHOTO, target / "SECRET.jpg")

    held, release, done = threading.Event(), threading.Event(), threading.Event()
    problems = []

    def hold_the_lock():
        try:
            with storage_lock(storage):
                held.set()
                release.wait(30)
        except BaseException as exc:  # reported below, never lost in the thread
            problems.append(exc)
            held.set()
        finally:
            done.set()

    waits = []

    def while_waiting():  # storage_lock calls this while the import waits for the lock
        if not waits:
            waits.append(True)
            swap_for_link(card, target)
            release.set()

    holder = threading.Thread(target=hold_the_lock, daemon=True)
    holder.start()
    assert held.wait(10) and not problems
    outcome = {}
    try:  # the import runs here (the test's database connection); the lock is held by the other thread
        outcome["report"] = import_folder(session_id=session.pk, source_path=str(card), should_stop=while_waiting)
    except ImalinkError as exc:
        outcome["error"] = exc
    finally:
        release.set()
    assert done.wait(10) and not problems
    assert waits, "the import never waited for the lock: the test did not test the window"

    error = outcome.get("error")
    assert isinstance(error, ImalinkError), outcome
    if to == "outside":
        assert isinstance(error, PathRejected) and error.status == 400 and error.code == "path_not_allowed"
    else:
        assert (error.status, error.code) == (409, "unsafe_source")
        assert str(target) in error.message
    assert photos_of(storage) == {}
    assert ImageFile.objects.count() == 0
    assert_nothing_from(target, storage)
    assert digests(outside) == outside_before


def test_the_source_root_swapped_after_the_recheck_is_not_followed(session, card, outside, monkeypatch):
    """Between resolve_client_dir's second look and the open: the O_NOFOLLOW open refuses the link."""
    real_resolve = sources.SourceTree.__init__

    def swap_then_open(self, real):
        swap_for_link(card, outside)
        real_resolve(self, real)

    monkeypatch.setattr(sources.SourceTree, "__init__", swap_then_open)
    with pytest.raises(sources.UnsafeSource) as refused:
        import_folder(session_id=session.pk, source_path=str(card))
    assert refused.value.status == 409 and "symbolic link" in refused.value.message
    assert photos_of(session.file_storage) == {}
    assert_nothing_from(outside, session.file_storage)


# --- point 3: a folder or a file swapped mid-import -------------------------------------------------------


def test_a_subfolder_swapped_between_the_walk_and_the_read_is_not_followed(session, card, outside, monkeypatch):
    walk = sources.SourceTree.walk

    def walk_then_swap(self, **kw):
        found = walk(self, **kw)
        swap_for_link(card / "sub", outside)
        return found

    monkeypatch.setattr(sources.SourceTree, "walk", walk_then_swap)
    (outside / "b.jpg").write_bytes((outside / "SECRET.jpg").read_bytes())  # the name the walk saw in sub/
    outside_before = digests(outside)
    report = import_folder(session_id=session.pk, source_path=str(card))
    assert report.imported == 1
    assert [f["path"] for f in report.failures] == ["sub/b.jpg"]
    assert report.failures[0]["code"] == "unsafe_source"
    assert "symbolic link" in report.failures[0]["reason"]
    assert list(photos_of(session.file_storage)) == ["a.jpg"]
    assert_nothing_from(outside, session.file_storage)
    assert digests(outside) == outside_before


def test_a_file_swapped_for_a_link_between_the_walk_and_the_read_is_not_followed(session, card, outside, monkeypatch):
    walk = sources.SourceTree.walk

    def walk_then_swap(self, **kw):
        found = walk(self, **kw)
        (card / "a.jpg").unlink()
        os.symlink(outside / "SECRET.jpg", card / "a.jpg")
        return found

    monkeypatch.setattr(sources.SourceTree, "walk", walk_then_swap)
    report = import_folder(session_id=session.pk, source_path=str(card))
    assert report.imported == 1
    assert [(f["path"], f["code"]) for f in report.failures] == [("a.jpg", "unsafe_source")]
    assert list(photos_of(session.file_storage)) == ["sub/b.jpg"]
    assert_nothing_from(outside, session.file_storage)


def test_a_subfolder_swapped_during_the_walk_refuses_the_import(session, card, outside, monkeypatch):
    walk_files = drive.walk_files

    def swap_after_the_first_file(dirfd, **kw):
        for i, item in enumerate(walk_files(dirfd, **kw)):
            yield item
            if i == 0:  # a.jpg is listed; sub/ is opened next
                swap_for_link(card / "sub", outside)

    monkeypatch.setattr(drive, "walk_files", swap_after_the_first_file)
    with pytest.raises(sources.UnsafeSource) as refused:
        import_folder(session_id=session.pk, source_path=str(card))
    assert refused.value.status == 409
    assert str(card / "sub") in refused.value.message
    assert photos_of(session.file_storage) == {}
    assert_nothing_from(outside, session.file_storage)


# --- point 4: one list of ignored folder names -------------------------------------------------------------


def snapshot(storage):
    root = storage.full_path
    return (
        sorted(p.relative_to(root).as_posix() for p in root.rglob("*")),
        ImageFile.objects.count(),
        Job.objects.count(),
    )


@pytest.mark.parametrize("target", [".imalink/tmp", "@eaDir", "x/#recycle", "2024/.ImaLink", "$RECYCLE.BIN/a"])
def test_a_target_inside_an_ignored_folder_is_refused_with_400_and_changes_nothing(api, session, card, target):
    before = snapshot(session.file_storage)
    error = assert_error(
        api.post(
            f"/api/v1/import-sessions/{session.pk}/import", {"source_path": str(card), "target_subdirectory": target}
        ),
        400,
        "target_ignored",
    )
    assert error["details"]["field"] == "target_subdirectory"
    assert snapshot(session.file_storage) == before


def _candidates() -> list[str]:
    names = set()
    for name in ignored.IGNORED_DIRS:
        names |= {name, name.upper(), name.title(), name.swapcase()}
        names |= {name + "x", "x" + name, name.strip(".@#$")}  # near misses, which are ordinary folders
    return sorted(names | {"photos", "imports", "tmp", "hotpreviews", "DCIM", "eadir", "recycle"})


def test_the_names_the_import_refuses_are_exactly_the_names_the_scan_and_the_source_walk_skip(
    make_storage, allowed_root, corpus
):
    names = _candidates()
    jpeg = (corpus / INSIDE_PHOTO).read_bytes()

    refused = set()
    for name in names:
        try:
            validate_target_subdirectory(f"2024/{name}/trip")
        except PathRejected as exc:
            assert exc.code == "target_ignored"
            refused.add(name)

    storage = FileStorage.objects.get(storage_uuid=make_storage()["uuid"])
    source = allowed_root / "source"
    for i, name in enumerate(names):
        for base in (storage.full_path / "photos" / "2024", source):
            (base / name).mkdir(parents=True)
            (base / name / f"IMG_{i:03d}.jpg").write_bytes(jpeg)
    seen_by_scan = {path.split("/")[2] for path, _, _ in scanner.walk_photos(storage.full_path)[0]}
    skipped_by_scan = set(names) - seen_by_scan
    with sources.SourceTree(source) as tree:
        files, _ = tree.walk()
    skipped_by_source_walk = set(names) - {f.relative.parts[0] for f in files}

    expected = {name for name in names if name.lower() in ignored.IGNORED_DIRS}
    assert refused == skipped_by_scan == skipped_by_source_walk == expected
    assert expected and len(expected) < len(names)
    # One list, one comparison: the scan and the source walk use the very function the import checks with.
    assert scanner.is_junk_dir is sources.is_junk_dir is ignored.is_ignored_dir
    assert ignored.ignored_part(PurePosixPath("a/@EADIR/b")) == "@EADIR"
