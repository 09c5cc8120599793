"""Path attacks on every route that takes a path, and names on disk that are not valid UTF-8.

Each attack must get a 4xx in the error shape and leave the disk and the database as they were.
"""

import os
import shutil

import pytest

from imports.models import ImageFile, ImportSession, Photo
from indexing.rewrite import import_folder
from indexing.scanner import scan_storage
from jobs.models import Job
from storages.models import FileStorage
from tests.conftest import assert_error

pytestmark = pytest.mark.django_db

JPEG = "jpeg/camera/DSCN0010.jpg"


@pytest.fixture(autouse=True)
def _no_waiting(settings):
    # An attack that slipped through would queue a job: answer 202 at once instead of waiting for a worker.
    settings.IMALINK_SYNC_WAIT = 0


@pytest.fixture
def outside(tmp_path):
    folder = tmp_path / "outside"
    (folder / "sub").mkdir(parents=True)
    return folder


@pytest.fixture
def attacks(allowed_root, outside) -> dict[str, str]:
    """Client paths that must all be refused."""
    (allowed_root / "escape").symlink_to(outside)
    (allowed_root / "link").symlink_to(outside)
    (allowed_root / "inside").mkdir()
    return {
        "dotdot": f"{allowed_root}/../outside",
        "dotdot_inside": f"{allowed_root}/inside/../inside",
        "etc": "/etc",
        "root": "/",
        "relative": "inside",
        "symlink_out": f"{allowed_root}/escape",
        "symlinked_parent": f"{allowed_root}/link/sub",
        "nul": f"{allowed_root}/inside\x00/etc",
        "very_long": f"{allowed_root}/" + "a" * 5000,
        "long_component": f"{allowed_root}/" + "é" * 150,  # 300 bytes in one name
        "empty": "",
        "lone_surrogate": f"{allowed_root}/inside/\ud800",
    }


def _disk(tmp_path) -> set[str]:
    found = set()
    for folder, dirs, files in os.walk(tmp_path):
        for name in dirs + files:
            found.add(os.path.join(folder, name))
    return found


def _rows() -> tuple:
    return (
        FileStorage.objects.count(),
        ImportSession.objects.count(),
        ImageFile.objects.count(),
        Photo.objects.count(),
        Job.objects.count(),
    )


def _assert_refused_and_untouched(tmp_path, send, attacks):
    disk, rows = _disk(tmp_path), _rows()
    for name, raw in attacks.items():
        response = send(raw)
        assert 400 <= response.status_code < 500, (name, response.status_code, response.content)
        assert_error(response, response.status_code)
        assert _disk(tmp_path) == disk, name
        assert _rows() == rows, name


@pytest.fixture
def storage(make_storage):
    return make_storage()


@pytest.fixture
def session(api, storage):
    response = api.post("/api/v1/import-sessions/create", {"title": "Attack", "file_storage_uuid": storage["uuid"]})
    assert response.status_code == 200, response.content
    return response.json()["data"]


@pytest.fixture
def card(allowed_root, corpus):
    folder = allowed_root / "card"
    folder.mkdir()
    shutil.copy(corpus / JPEG, folder / "IMG_001.jpg")
    return folder


def test_create_storage_refuses_every_attack(api, attacks, tmp_path):
    _assert_refused_and_untouched(
        tmp_path, lambda raw: api.post("/api/v1/file-storage/create", {"base_path": raw, "display_name": "x"}), attacks
    )


def test_import_refuses_every_source_path_attack(api, session, attacks, tmp_path):
    url = f"/api/v1/import-sessions/{session['id']}/import"
    _assert_refused_and_untouched(tmp_path, lambda raw: api.post(url, {"source_path": raw}), attacks)


def test_import_refuses_every_target_subdirectory_attack(api, session, card, tmp_path):
    url = f"/api/v1/import-sessions/{session['id']}/import"
    targets = {
        "dotdot": "../../outside",
        "inner_dotdot": "a/../../b",
        "absolute": "/etc",
        "root": "/",
        "nul": "a\x00b",
        "backslash": "..\\..\\x",
        "very_long": "a" * 5000,
        "dot": "./x",
        "lone_surrogate": "a/\ud800",
    }
    _assert_refused_and_untouched(
        tmp_path, lambda raw: api.post(url, {"source_path": str(card), "target_subdirectory": raw}), targets
    )


def test_import_refuses_a_target_subdirectory_part_longer_than_255_bytes(api, session, card, tmp_path):
    url = f"/api/v1/import-sessions/{session['id']}/import"
    _assert_refused_and_untouched(
        tmp_path, lambda raw: api.post(url, {"source_path": str(card), "target_subdirectory": raw}), {"long": "é" * 150}
    )


def test_recovery_refuses_every_search_root_attack(api, attacks, tmp_path):
    _assert_refused_and_untouched(
        tmp_path, lambda raw: api.post("/api/v1/storage-index/recover", {"search_roots": [raw]}), attacks
    )


def test_adopt_refuses_every_attack(api, attacks, tmp_path):
    _assert_refused_and_untouched(tmp_path, lambda raw: api.post("/api/v1/file-storage/adopt", {"path": raw}), attacks)


def test_moving_a_storage_refuses_every_attack(api, storage, attacks, tmp_path):
    url = f"/api/v1/file-storage/{storage['uuid']}"
    _assert_refused_and_untouched(tmp_path, lambda raw: api.put(url, {"base_path": raw}), attacks)
    assert FileStorage.objects.get(storage_uuid=storage["uuid"]).base_path == storage["base_path"]


# --- names on disk that are not valid UTF-8 ---------------------------------------------------------


def _write_bad_name(folder, corpus, name: bytes = b"bad\xff\xfe.jpg") -> None:
    fd = os.open(os.fsencode(str(folder)) + b"/" + name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write((corpus / JPEG).read_bytes())


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def test_an_import_records_undecodable_names_as_failed_and_imports_the_rest(session, card, corpus):
    _write_bad_name(card, corpus)
    (card / "deeper").mkdir()
    _write_bad_name(card / "deeper", corpus, b"\xc3(odd.jpg")
    report = import_folder(session_id=session["id"], source_path=str(card))
    assert report.imported == 1 and report.failed == 2, report
    reason = "the file name is not valid UTF-8; rename it to import it"
    assert sorted(report.failures, key=lambda f: f["path"]) == [
        {"path": "bad\ufffd\ufffd.jpg", "code": "bad_name", "reason": reason},
        {"path": "deeper/\ufffd(odd.jpg", "code": "bad_name", "reason": reason},
    ]
    assert ImageFile.objects.count() == 1
    assert all(_is_text(p) for p in ImageFile.objects.values_list("relative_path", flat=True))
    # The report is what a job keeps as its result: it must be storable as JSON text in this database.
    job = Job.objects.create(kind="import", result=report.as_dict())
    job.refresh_from_db()
    assert job.result["failures"][0]["code"] == "bad_name"


def test_a_scan_reports_undecodable_names_and_carries_on(storage, session, card, corpus):
    import_folder(session_id=session["id"], source_path=str(card))
    model = FileStorage.objects.get(storage_uuid=storage["uuid"])
    _write_bad_name(model.full_path / "photos", corpus)
    report = scan_storage(model)
    assert any("\ufffd" in s["path"] and "UTF-8" in s["reason"] for s in report.skipped), report.skipped
    assert all(_is_text(s["path"]) for s in report.skipped)
    assert ImageFile.objects.count() == 1
    assert all(_is_text(p) for p in ImageFile.objects.values_list("relative_path", flat=True))
