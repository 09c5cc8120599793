"""indexing.writer on a storage with really imported files: the index formats of DESIGN §4, atomic writes
(also under SIGKILL), backups, skip-if-unchanged, and index_status.
"""

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from imports.checksums import file_checksum
from imports.models import Author, ImageFile, ImportSession, Photo
from indexing.rewrite import import_folder
from indexing.writer import index_status, write_master_index, write_session_index, write_storage_indexes
from storages.layout import FORMAT_VERSION
from storages.models import FileStorage
from tests.conftest import REPO

pytestmark = pytest.mark.django_db

CARD_FILES = [
    "jpeg/camera/DSCN0010.jpg",
    "jpeg/camera/jolla.jpg",
    "raw/pair/canon_eos_6d.dng",
    "raw/pair/canon_eos_6d.JPG",
]
CHECKSUM = re.compile(r"^xxh3_128:[0-9a-f]{32}$")


@pytest.fixture
def storage(make_storage):
    return FileStorage.objects.get(storage_uuid=make_storage("Main")["uuid"])


@pytest.fixture
def card(allowed_root, corpus):
    folder = allowed_root / "card"
    folder.mkdir()
    for relative in CARD_FILES:
        shutil.copy(corpus / relative, folder)
    return folder


@pytest.fixture
def session(storage, card):
    author = Author.objects.create(name="Kari", email="kari@example.org")
    session = ImportSession.objects.create(
        title="Card", description="Memory card from Italy", file_storage=storage, default_author=author
    )
    report = import_folder(session_id=session.pk, source_path=str(card), target_subdirectory="2024/italy")
    assert (report.imported, report.failed) == (4, 0)
    return ImportSession.objects.select_related("file_storage", "default_author").get(pk=session.pk)


def session_index_path(session):
    return session.file_storage.full_path / f"imports/session_{session.pk}.json"


def read_json(path):
    return json.loads(path.read_bytes())


def backups(storage, stem):
    return sorted((storage.full_path / ".imalink/index-backups").glob(f"{stem}.*.json"))


# --- formats ----------------------------------------------------------------------------------------


def test_the_session_index_has_every_field_of_design_4(session, card):
    write_session_index(session)
    storage = session.file_storage
    root = storage.full_path
    index = read_json(session_index_path(session))

    info = index["import_session"]
    assert {
        "id",
        "title",
        "description",
        "imported_at",
        "default_author_id",
        "default_author",
        "file_storage_id",
        "storage_uuid",
        "storage_directory",
        "source_path",
    } <= set(info)
    assert (info["id"], info["title"], info["description"]) == (session.pk, "Card", "Memory card from Italy")
    assert info["default_author_id"] == session.default_author_id and info["default_author"]["name"] == "Kari"
    assert (info["file_storage_id"], info["storage_uuid"], info["storage_directory"]) == (
        storage.pk,
        str(storage.storage_uuid),
        storage.directory_name,
    )
    assert info["source_path"] == str(card)
    assert info["imported_at"]

    photos = Photo.objects.filter(files__import_session=session).distinct()
    assert set(index["files"]) == set(photos.values_list("hothash", flat=True))
    assert len(index["files"]) == 3  # the RAW shares its JPEG's photo
    entry_keys = {
        "filename",
        "path",
        "original_filename",
        "file_size",
        "checksum",
        "mtime_ns",
        "taken_at",
        "created_at",
        "file_format",
        "width",
        "height",
        "has_hotpreview",
        "hotpreview",
        "camera_make",
        "camera_model",
        "gps_latitude",
        "gps_longitude",
        "status",
        "photo",
        "companions",
    }
    companion_keys = {
        "filename",
        "path",
        "original_filename",
        "file_size",
        "checksum",
        "mtime_ns",
        "file_format",
        "status",
    }

    def check_file(entry, keys):
        assert keys <= set(entry), keys - set(entry)
        assert entry["path"].startswith("photos/2024/italy/")
        assert entry["filename"] == entry["path"].removeprefix("photos/")
        on_disk = root / entry["path"]
        assert on_disk.is_file()
        assert CHECKSUM.match(entry["checksum"])
        assert entry["checksum"] == f"xxh3_128:{file_checksum(on_disk)}"
        st = on_disk.stat()
        assert (entry["file_size"], entry["mtime_ns"]) == (st.st_size, st.st_mtime_ns)
        assert entry["status"] == "present"
        assert (card / entry["original_filename"]).read_bytes() == on_disk.read_bytes()

    for hothash, entry in index["files"].items():
        check_file(entry, entry_keys)
        photo = photos.get(hothash=hothash)
        assert (entry["width"], entry["height"]) == (photo.width, photo.height) and entry["width"] > 0
        assert entry["taken_at"]
        assert entry["has_hotpreview"] is True
        assert entry["hotpreview"] == f".imalink/hotpreviews/{hothash[:2]}/{hothash[2:4]}/{hothash}.jpg"
        assert (root / entry["hotpreview"]).read_bytes()[:2] == b"\xff\xd8"
        assert entry["camera_make"]
        assert set(entry["photo"]) >= {"title", "description", "rating", "tags", "author"}
        assert entry["photo"]["author"]["name"] == "Kari"
        for companion in entry["companions"]:
            check_file(companion, companion_keys)

    by_name = {e["original_filename"]: e for e in index["files"].values()}
    assert set(by_name) == {"DSCN0010.jpg", "jolla.jpg", "canon_eos_6d.JPG"}
    nikon = by_name["DSCN0010.jpg"]
    assert (nikon["camera_make"], nikon["camera_model"]) == ("NIKON", "COOLPIX P6000")
    assert nikon["gps_latitude"] == pytest.approx(43.4674, abs=1e-3) and nikon["gps_longitude"] == pytest.approx(
        11.8851, abs=1e-3
    )
    assert nikon["taken_at"].startswith("2008-10-22T16:28:39")
    pair = by_name["canon_eos_6d.JPG"]
    assert pair["file_format"] == "jpeg" and pair["path"] == "photos/2024/italy/canon_eos_6d.JPG"
    assert [c["original_filename"] for c in pair["companions"]] == ["canon_eos_6d.dng"]
    assert (
        pair["companions"][0]["path"] == "photos/2024/italy/canon_eos_6d.dng"
        and pair["companions"][0]["file_format"] == "dng"
    )
    assert by_name["jolla.jpg"]["companions"] == [] and nikon["companions"] == []

    stats = index["statistics"]
    assert {
        "total_files",
        "total_size_bytes",
        "missing_files",
        "index_generated",
        "imalink_version",
        "format_version",
    } <= set(stats)
    sizes = [(root / f.relative_path).stat().st_size for f in ImageFile.objects.filter(import_session=session)]
    assert (stats["total_files"], stats["total_size_bytes"], stats["missing_files"], stats["format_version"]) == (
        4,
        sum(sizes),
        0,
        FORMAT_VERSION,
    )
    assert stats["index_generated"] and stats["imalink_version"]


def test_the_master_index_has_every_field_of_design_4(session):
    storage = session.file_storage
    other = ImportSession.objects.create(title="Empty", file_storage=storage)
    write_master_index(storage)
    index = read_json(storage.full_path / "index.json")

    info = index["storage_info"]
    assert {
        "uuid",
        "directory_name",
        "base_path",
        "full_path",
        "display_name",
        "description",
        "created_at",
        "last_scan",
        "is_accessible",
        "total_files",
        "total_size_mb",
    } <= set(info)
    assert info["uuid"] == str(storage.storage_uuid) and info["directory_name"] == storage.directory_name
    assert info["base_path"] == storage.base_path and info["full_path"] == str(storage.full_path)
    assert info["display_name"] == "Main" and info["created_at"]
    total = sum(
        (storage.full_path / p).stat().st_size for p in ImageFile.objects.values_list("relative_path", flat=True)
    )
    assert info["total_files"] == 4 and info["total_size_mb"] == pytest.approx(total / 2**20, abs=0.001)

    assert [s["id"] for s in index["import_sessions"]] == [session.pk, other.pk]
    first = index["import_sessions"][0]
    assert {"id", "title", "imported_at", "file_count", "index_file"} <= set(first)
    assert (first["title"], first["file_count"], first["index_file"]) == (
        "Card",
        4,
        f"imports/session_{session.pk}.json",
    )
    assert index["import_sessions"][1]["file_count"] == 0
    assert index["format_version"] == FORMAT_VERSION and index["imalink_version"] and index["generated_at"]
    assert index["hash_algorithms"] == {"checksum": "xxh3_128", "hothash": "imalink-hothash-v1"}


def test_the_users_photo_metadata_is_in_the_session_index(session):
    photo = Photo.objects.get(files__original_filename="jolla.jpg")
    photo.title, photo.description, photo.rating, photo.tags = "Harbour", "Evening light", 4, ["sea", "boats"]
    photo.author = Author.objects.create(name="Ola", email="ola@example.org")
    photo.save()
    assert write_session_index(session) is True
    entry = read_json(session_index_path(session))["files"][photo.hothash]
    assert {k: entry["photo"][k] for k in ("title", "description", "rating", "tags")} == {
        "title": "Harbour",
        "description": "Evening light",
        "rating": 4,
        "tags": ["sea", "boats"],
    }
    assert entry["photo"]["author"]["name"] == "Ola" and entry["photo"]["author"]["email"] == "ola@example.org"


def test_the_index_written_by_an_import_is_current(session, card):
    index = read_json(session_index_path(session))
    assert index["import_session"]["source_path"] == str(card)
    assert index["import_session"]["target_subdirectory"] == "2024/italy"
    assert index_status(session.file_storage)["sessions"][0]["status"] == "current"


# --- atomic writes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("exception", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_write_that_fails_at_the_rename_leaves_the_old_index_and_no_temporary_file(session, monkeypatch, exception):
    import storages.drive

    storage = session.file_storage
    target = storage.full_path / "index.json"
    before = target.read_bytes()
    real_replace = os.replace

    def failing_replace(src, dst, *args, **kwargs):
        # The writer renames relative to the storage folder's descriptor (storages.drive).
        if os.fspath(dst) == "index.json":
            raise exception
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(storages.drive.os, "replace", failing_replace)
    storage.display_name = "Renamed"
    storage.save()
    with pytest.raises(type(exception)):
        write_master_index(storage)
    monkeypatch.undo()

    assert target.read_bytes() == before
    assert read_json(target)["storage_info"]["display_name"] == "Main"
    assert [p.name for p in storage.full_path.iterdir() if p.name.endswith(".tmp")] == []
    assert [p.name for p in (storage.full_path / ".imalink/index-backups").iterdir() if p.name.endswith(".tmp")] == []
    # and the next write goes through
    assert write_master_index(storage) is True
    assert read_json(target)["storage_info"]["display_name"] == "Renamed"


KILL_WRITER = """
import json, sys
from pathlib import Path
from storages.drive import Storage

target = Path(sys.argv[1])
payloads = [json.dumps({"version": v, "blob": [str(v) * 100] * 20000}).encode() for v in (1, 2)]
print("ready", flush=True)
i = 0
with Storage(target.parent) as folder:
    while True:
        folder.write_atomic(target.name, payloads[i % 2])
        i += 1
"""


def test_a_writer_killed_at_random_moments_never_leaves_a_torn_file(tmp_path):
    target = tmp_path / "index.json"
    versions = [{"version": v, "blob": [str(v) * 100] * 20000} for v in (1, 2)]
    target.write_bytes(json.dumps(versions[0]).encode())
    assert len(target.read_bytes()) > 2_000_000
    rng = random.Random(20251018)
    kills_mid_write = 0
    for _ in range(20):
        proc = subprocess.Popen([sys.executable, "-c", KILL_WRITER, str(target)], cwd=REPO, stdout=subprocess.PIPE)
        assert proc.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0.005, 0.15))
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL
        assert json.loads(target.read_bytes()) in versions
        strays = list(tmp_path.glob(".index.json.*.tmp"))
        kills_mid_write += bool(strays)
        for stray in strays:
            stray.unlink()
    # The kills did land inside writes (a torn temporary file was left behind), so the check above means something.
    assert kills_mid_write > 0


# --- backups and skip-if-unchanged ------------------------------------------------------------------


def test_changed_writes_keep_the_last_five_copies_of_each_index(session):
    storage = session.file_storage
    master = storage.full_path / "index.json"
    sess = session_index_path(session)

    master_versions = [master.read_bytes()]
    for i in range(7):
        storage.display_name = f"Main v{i}"
        storage.save()
        assert write_master_index(storage) is True
        master_versions.append(master.read_bytes())

    photo = Photo.objects.get(files__original_filename="DSCN0010.jpg")
    session_versions = [sess.read_bytes()]
    for i in range(7):
        photo.title = f"Title {i}"
        photo.save()
        assert write_session_index(session) is True
        session_versions.append(sess.read_bytes())

    kept_master = backups(storage, "index")
    kept_session = backups(storage, f"session_{session.pk}")
    assert len(kept_master) == 5 and len(kept_session) == 5
    # Each backup is a complete earlier version: the five replaced last, oldest first.
    assert [read_json(p) for p in kept_master] == [json.loads(v) for v in master_versions[2:7]]
    assert [read_json(p) for p in kept_session] == [json.loads(v) for v in session_versions[2:7]]
    assert read_json(master)["storage_info"]["display_name"] == "Main v6"


def test_writing_the_same_content_again_changes_nothing(session):
    storage = session.file_storage
    write_storage_indexes(storage)
    backup_dir = storage.full_path / ".imalink/index-backups"
    files = [storage.full_path / "index.json", session_index_path(session)]
    before = [(p.read_bytes(), p.stat().st_mtime_ns) for p in files]
    backups_before = sorted(os.listdir(backup_dir))
    time.sleep(0.02)

    assert write_master_index(storage) is False
    assert write_session_index(session) is False
    assert write_storage_indexes(storage)["written"] == 0
    assert [(p.read_bytes(), p.stat().st_mtime_ns) for p in files] == before
    assert sorted(os.listdir(backup_dir)) == backups_before


# --- index_status -----------------------------------------------------------------------------------


def test_index_status_follows_the_files_and_the_database(session):
    storage = session.file_storage
    write_storage_indexes(storage)
    status = index_status(storage)
    assert status["master_index"]["status"] == "current" and status["master_index_exists"] is True
    assert [(s["session_id"], s["status"], s["exists"], s["readable"], s["current"]) for s in status["sessions"]] == [
        (session.pk, "current", True, True, True)
    ]
    assert status["healthy"] is True

    Photo.objects.filter(files__original_filename="jolla.jpg").update(rating=5)
    status = index_status(storage)
    assert status["sessions"][0]["status"] == "stale" and status["sessions"][0]["current"] is False
    assert status["master_index"]["status"] == "current"
    assert status["healthy"] is False

    session_index_path(session).write_bytes(b'{"import_session": {"id": 1, "fil')
    state = index_status(storage)["sessions"][0]
    assert (state["status"], state["exists"], state["readable"]) == ("corrupt", True, False)
    assert state["problem"].startswith("corrupt")

    session_index_path(session).unlink()
    state = index_status(storage)["sessions"][0]
    assert (state["status"], state["exists"], state["readable"]) == ("missing", False, False)

    write_session_index(session)
    assert index_status(storage)["sessions"][0]["status"] == "current"


def test_index_status_of_the_master_index(session):
    storage = session.file_storage
    write_master_index(storage)
    master = storage.full_path / "index.json"
    assert index_status(storage)["master_index"]["status"] == "current"

    FileStorage.objects.filter(pk=storage.pk).update(description="Now with a description")
    storage.refresh_from_db()
    assert index_status(storage)["master_index"]["status"] == "stale"

    master.write_bytes(b"\x00\xffnot json")
    status = index_status(storage)
    assert (status["master_index"]["status"], status["master_index_exists"]) == ("corrupt", True)

    master.write_bytes(b"[1, 2, 3]")
    assert index_status(storage)["master_index"]["status"] == "corrupt"

    master.unlink()
    status = index_status(storage)
    assert (status["master_index"]["status"], status["master_index_exists"]) == ("missing", False)
    assert status["healthy"] is False


def test_regenerating_recreates_a_deleted_imports_folder(session):
    storage = session.file_storage
    shutil.rmtree(storage.full_path / "imports")
    write_storage_indexes(storage)
    assert read_json(session_index_path(session))["import_session"]["id"] == session.pk


# --- the rule (indexing.writer's docstring): a file its record describes is answered from the record; ---
# --- only any other file is read and compared with a fresh build, and the verdict recorded. ----------------
# Outside a test transaction too, as in production (commits, and other connections' triggers).


def no_build(*args):
    raise AssertionError("an index was built")


@pytest.mark.django_db(transaction=True)
def test_index_status_of_an_unchanged_storage_builds_no_index(session, monkeypatch, django_assert_max_num_queries):
    storage = session.file_storage
    write_storage_indexes(storage)

    monkeypatch.setattr("indexing.writer.build_session_index", no_build)
    monkeypatch.setattr("indexing.writer.build_master_index", no_build)
    with django_assert_max_num_queries(3):  # the sessions, their revisions, the records
        status = index_status(storage)
    assert status["healthy"] is True
    assert [s["status"] for s in status["sessions"]] == ["current"] and status["master_index"]["status"] == "current"
    assert (
        status["sessions"][0]["generated_at"] == read_json(session_index_path(session))["statistics"]["index_generated"]
    )


@pytest.mark.django_db(transaction=True)
def test_index_status_goes_stale_when_the_database_changes_without_building_anything(session, monkeypatch):
    storage = session.file_storage
    write_storage_indexes(storage)
    assert index_status(storage)["healthy"] is True

    Photo.objects.filter(files__original_filename="jolla.jpg").update(rating=5)  # a bare UPDATE: no signal, no save()
    with monkeypatch.context() as patched:
        # The moved revision alone says stale: nothing is read or built, as while an import commits file after file.
        patched.setattr("indexing.writer.build_session_index", no_build)
        patched.setattr("indexing.writer.build_master_index", no_build)
        status = index_status(storage)
    state = status["sessions"][0]
    assert (state["status"], state["exists"], state["readable"], state["current"]) == ("stale", True, True, False)
    assert status["master_index"]["status"] == "current"

    write_session_index(session)
    assert index_status(storage)["healthy"] is True


@pytest.mark.django_db(transaction=True)
def test_rows_put_back_are_stale_until_written_and_the_write_leaves_the_file_alone(session, monkeypatch):
    storage = session.file_storage
    write_storage_indexes(storage)
    path = session_index_path(session)
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    Photo.objects.filter(files__original_filename="jolla.jpg").update(rating=5)
    Photo.objects.filter(files__original_filename="jolla.jpg").update(rating=0)  # back as the index says
    with monkeypatch.context() as patched:
        patched.setattr("indexing.writer.build_session_index", no_build)
        assert index_status(storage)["sessions"][0]["status"] == "stale"  # the revision moved: no comparison

    assert write_session_index(session) is False  # the same content: not rewritten, but recorded at this revision
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    monkeypatch.setattr("indexing.writer.build_session_index", no_build)
    assert index_status(storage)["sessions"][0]["status"] == "current"


@pytest.mark.django_db(transaction=True)
def test_a_change_committed_during_a_write_leaves_the_index_stale(session, monkeypatch):
    """The revision is read before the build: a commit while it runs cannot be mistaken for part of it."""
    from indexing import writer

    storage = session.file_storage
    build = writer.build_session_index

    def build_then_change(session):
        built = build(session)
        Photo.objects.filter(files__original_filename="jolla.jpg").update(rating=3)  # commits at once (autocommit)
        return built

    monkeypatch.setattr("indexing.writer.build_session_index", build_then_change)
    write_session_index(session)
    monkeypatch.undo()
    assert index_status(storage)["sessions"][0]["status"] == "stale"  # whether or not the build saw the change
    write_session_index(session)
    assert index_status(storage)["sessions"][0]["status"] == "current"


@pytest.mark.django_db(transaction=True)
def test_the_master_index_is_compared_with_the_callers_storage_object(session, monkeypatch):
    """The basis: what the caller's object says, saved or not (storage_migrate asks before it saves a new path)."""
    storage = session.file_storage
    write_storage_indexes(storage)
    storage.display_name = "Not saved yet"
    monkeypatch.setattr("indexing.writer.build_master_index", no_build)
    assert index_status(storage)["master_index"]["status"] == "stale"
    storage.display_name = "Main"
    assert index_status(storage)["master_index"]["status"] == "current"


@pytest.mark.django_db(transaction=True)
def test_an_index_restored_under_imalink_is_judged_by_its_content_once(session, monkeypatch, tmp_path):
    """A file its record does not describe (a restore: a new inode) is read and compared with a fresh build once; the
    verdict, current or stale, is recorded, so the next call builds nothing."""
    storage = session.file_storage
    write_storage_indexes(storage)
    path = session_index_path(session)
    old = tmp_path / "old.json"
    shutil.copy2(path, old)

    def restore():
        copy = path.with_name("restored.tmp")
        shutil.copy2(old, copy)
        os.replace(copy, path)  # as a restore does: the same bytes under a new inode

    restore()
    assert index_status(storage)["sessions"][0]["status"] == "current"  # compared by content, and recorded
    with monkeypatch.context() as patched:
        patched.setattr("indexing.writer.build_session_index", no_build)
        assert index_status(storage)["sessions"][0]["status"] == "current"

    Photo.objects.filter(files__original_filename="jolla.jpg").update(title="Harbour")
    write_session_index(session)
    restore()  # an older copy, which no longer says what the database says
    assert index_status(storage)["sessions"][0]["status"] == "stale"  # compared by content, and recorded
    with monkeypatch.context() as patched:
        patched.setattr("indexing.writer.build_session_index", no_build)
        state = index_status(storage)["sessions"][0]
        assert (state["status"], state["readable"]) == ("stale", True)
    assert write_session_index(session) is True  # the write compares content, so it puts the true index back
    assert index_status(storage)["sessions"][0]["status"] == "current"


@pytest.mark.django_db(transaction=True)
def test_index_status_goes_stale_when_the_file_changes(session):
    storage = session.file_storage
    write_storage_indexes(storage)
    path = session_index_path(session)
    original = path.read_bytes()
    assert index_status(storage)["sessions"][0]["status"] == "current"

    edited = read_json(path)
    edited["import_session"]["title"] = "Edited by hand"
    path.write_text(json.dumps(edited))  # in place: same inode, so size and mtime must tell
    assert index_status(storage)["sessions"][0]["status"] == "stale"

    path.write_bytes(original)
    assert index_status(storage)["sessions"][0]["status"] == "current"
    path.unlink()
    assert index_status(storage)["sessions"][0]["status"] == "missing"


@pytest.mark.django_db(transaction=True)
def test_a_same_size_edit_by_hand_is_seen_by_its_mtime_and_a_hidden_one_by_a_rewrite(session):
    storage = session.file_storage
    write_storage_indexes(storage)
    path = session_index_path(session)
    original = path.read_bytes()
    before = path.stat()
    assert index_status(storage)["sessions"][0]["status"] == "current"

    edited = original.replace(b'"Card"', b'"Cart"')
    assert len(edited) == len(original) and edited != original
    with open(path, "r+b") as handle:  # in place: the same inode and size, only the mtime tells
        handle.write(edited)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))
    assert index_status(storage)["sessions"][0]["status"] == "stale"

    # With the mtime put back too, an lstat cannot tell (as rsync's quick check cannot): the known limit.
    path.write_bytes(original)
    assert index_status(storage)["sessions"][0]["status"] == "current"  # and recorded as it now stats
    recorded = path.stat()
    with open(path, "r+b") as handle:
        handle.write(edited)
    os.utime(path, ns=(recorded.st_atime_ns, recorded.st_mtime_ns))
    assert index_status(storage)["sessions"][0]["status"] == "current"
    # Regeneration compares content, so it rewrites the file, and the record follows the new one.
    assert write_session_index(session) is True
    assert path.read_bytes() != edited
    assert index_status(storage)["sessions"][0]["status"] == "current"
