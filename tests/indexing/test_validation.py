"""Validation: a full check finds one flipped byte among many files, a quick one finds what size and mtime show,
both find deleted and stray files, and neither ever changes a file. Real corpus files on tmp_path, real database.
"""

import hashlib
import json
import os
import shutil
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from imalink.errors import StorageUnavailable
from imports.models import ImageFile, ImportSession
from indexing.rewrite import import_folder
from indexing.validation import accept_checksums, validate_storage
from jobs.models import Job
from storages.models import FileStorage
from tests.conftest import assert_error

CAMERA = [
    "20240403_105952.JPG",
    "20240427_234934.JPG",
    "20250112_171126.JPG",
    "DSCN0010.jpg",
    "canon_hdr_NO.jpg",
    "door-knocker.jpg",
    "empty_gps.jpg",
    "img_1771.jpg",
    "jolla.jpg",
    "frozenpond.mpo",
]
VICTIM = "photos/trip/DSCN0010.jpg"


@pytest.fixture
def storage(make_storage):
    return FileStorage.objects.get(storage_uuid=make_storage()["uuid"])


@pytest.fixture
def session(storage, allowed_root, corpus):
    card = allowed_root / "card"
    card.mkdir()
    for name in CAMERA:
        shutil.copy(corpus / "jpeg/camera" / name, card / name)
    session = ImportSession.objects.create(title="Trip", file_storage=storage)
    report = import_folder(session_id=session.pk, source_path=str(card), target_subdirectory="trip")
    assert report.imported == len(CAMERA), report.failures
    return session


def flip_one_byte(path):
    """Bit rot: one byte in the middle changes, and size, mtime and atime stay exactly as they were."""
    st = os.stat(path)
    os.chmod(path, st.st_mode | 0o200)
    with open(path, "r+b") as handle:
        handle.seek(st.st_size // 2)
        byte = handle.read(1)
        handle.seek(st.st_size // 2)
        handle.write(bytes([byte[0] ^ 0x01]))
    os.chmod(path, st.st_mode)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(path).st_mtime_ns == st.st_mtime_ns


def real_checksum(path) -> str:
    import xxhash

    return xxhash.xxh3_128(path.read_bytes()).hexdigest()


def snapshot(root) -> dict:
    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns, p.stat().st_size)
        for p in (root / "photos").rglob("*")
        if p.is_file()
    }


def row(path) -> ImageFile:
    return ImageFile.objects.select_related("photo").get(relative_path=path)


@pytest.mark.django_db
def test_full_finds_one_flipped_byte_among_many_and_quick_cannot(storage, session):
    victim = row(VICTIM)
    flip_one_byte(storage.full_path / VICTIM)

    quick = validate_storage(storage, mode="quick")
    assert quick.corrupted_files == [] and quick.validated_files == len(
        CAMERA
    )  # bit rot is invisible to size and mtime
    assert quick.bytes_read == 0

    full = validate_storage(storage, mode="full")
    assert full.corrupted_files == [
        {
            "file_id": victim.pk,
            "hothash": victim.photo.hothash,
            "path": VICTIM,
            "session_id": session.pk,
            "expected": f"xxh3_128:{victim.checksum}",
            "actual": f"xxh3_128:{real_checksum(storage.full_path / VICTIM)}",
            "reason": "checksum mismatch",
        }
    ]
    assert full.validated_files == len(CAMERA) - 1 and full.files_checked == len(CAMERA)
    assert full.missing_files == full.extra_files == []
    assert full.bytes_read == sum(f.stat().st_size for f in (storage.full_path / "photos").rglob("*") if f.is_file())
    assert full.flagged_files == 1


@pytest.mark.django_db
@pytest.mark.parametrize("mode", ["quick", "full"])
def test_both_modes_find_a_deleted_file_and_a_stray_one_and_ignore_os_junk(storage, session, corpus, mode):
    photos = storage.full_path / "photos"
    gone = row("photos/trip/jolla.jpg")
    os.unlink(photos / "trip/jolla.jpg")
    shutil.copy(corpus / "png/hopper.png", photos / "trip/stray.png")
    (photos / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (photos / "trip/Thumbs.db").write_bytes(b"junk")
    (photos / "trip/._DSCN0010.jpg").write_bytes(b"AppleDouble")

    report = validate_storage(storage, mode=mode)
    assert report.missing_files == [
        {"file_id": gone.pk, "hothash": gone.photo.hothash, "path": "photos/trip/jolla.jpg", "session_id": session.pk}
    ]
    assert report.extra_files == [
        {"path": "photos/trip/stray.png", "file_size": (photos / "trip/stray.png").stat().st_size}
    ]
    assert report.corrupted_files == [] and report.validated_files == len(CAMERA) - 1
    assert row("photos/trip/jolla.jpg").status == "present"  # marking missing is the scan's job, not validation's
    assert not ImageFile.objects.filter(relative_path="photos/trip/stray.png").exists()


@pytest.mark.django_db
def test_validation_never_modifies_a_file(storage, session, corpus):
    photos = storage.full_path / "photos"
    flip_one_byte(storage.full_path / VICTIM)
    os.unlink(photos / "trip/jolla.jpg")
    shutil.copy(corpus / "png/hopper.png", photos / "trip/stray.png")
    with open(photos / "trip/empty_gps.jpg", "ab") as handle:
        handle.write(b"appended")
    before = snapshot(storage.full_path)
    validate_storage(storage, mode="quick")
    validate_storage(storage, mode="full")
    validate_storage(storage, mode="full")
    assert snapshot(storage.full_path) == before


@pytest.mark.django_db
def test_quick_flags_a_size_change_and_only_reports_a_new_mtime(storage, session):
    photos = storage.full_path / "photos"
    with open(photos / "trip/empty_gps.jpg", "ab") as handle:
        handle.write(b"appended")
    touched = photos / "trip/jolla.jpg"
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))

    report = validate_storage(storage, mode="quick")
    reasons = {c["path"]: (c["reason"], c["actual"]) for c in report.corrupted_files}
    assert reasons == {
        "photos/trip/empty_gps.jpg": ("size changed", None),
        "photos/trip/jolla.jpg": ("mtime changed (contents not compared: run a full validation)", None),
    }
    assert row("photos/trip/empty_gps.jpg").status == "modified"
    assert row("photos/trip/jolla.jpg").status == "present"  # only touched, perhaps: not flagged on a guess
    assert [c["path"] for c in validate_storage(storage, mode="full").corrupted_files] == ["photos/trip/empty_gps.jpg"]


@pytest.mark.django_db
def test_a_corrupted_file_stays_flagged_until_its_checksum_is_accepted(storage, session):
    victim = row(VICTIM)
    flip_one_byte(storage.full_path / VICTIM)
    validate_storage(storage, mode="full")
    assert row(VICTIM).status == "modified"

    again = validate_storage(storage, mode="full")
    assert [c["file_id"] for c in again.corrupted_files] == [victim.pk] and again.flagged_files == 0
    assert row(VICTIM).status == "modified"
    quick = validate_storage(storage, mode="quick")
    assert [(c["file_id"], c["reason"].split(" (")[0]) for c in quick.corrupted_files] == [
        (victim.pk, "flagged modified earlier")
    ]

    new = real_checksum(storage.full_path / VICTIM)
    result = accept_checksums([victim.pk])
    assert result == {
        "accepted": [
            {
                "file_id": victim.pk,
                "path": VICTIM,
                "old_checksum": f"xxh3_128:{victim.checksum}",
                "new_checksum": f"xxh3_128:{new}",
            }
        ],
        "refused": [],
    }
    accepted = row(VICTIM)
    st = (storage.full_path / VICTIM).stat()
    assert (accepted.checksum, accepted.status, accepted.file_size, accepted.mtime_ns) == (
        new,
        "present",
        st.st_size,
        st.st_mtime_ns,
    )

    clean = validate_storage(storage, mode="full")
    assert clean.corrupted_files == clean.missing_files == [] and clean.validated_files == len(CAMERA)
    index = json.loads((storage.full_path / f"imports/session_{session.pk}.json").read_text())
    entry = index["files"][victim.photo.hothash]
    assert entry["path"] == VICTIM and entry["checksum"] == f"xxh3_128:{new}" and entry["status"] == "present"


@pytest.mark.django_db
def test_accept_refuses_an_unknown_id_and_a_file_gone_from_disk(storage, session):
    gone = row("photos/trip/jolla.jpg")
    os.unlink(storage.full_path / "photos/trip/jolla.jpg")
    result = accept_checksums([999_999, gone.pk])
    assert result["accepted"] == []
    assert [r["file_id"] for r in result["refused"]] == [gone.pk, 999_999]
    assert "missing on disk" in result["refused"][0]["reason"] and result["refused"][1]["reason"] == "no such file"
    assert row("photos/trip/jolla.jpg").checksum == gone.checksum


@pytest.mark.django_db
def test_accept_on_an_unplugged_storage_is_409_and_changes_nothing(storage, session, allowed_root, api):
    victim = row(VICTIM)
    flip_one_byte(storage.full_path / VICTIM)
    validate_storage(storage, mode="full")
    storage.full_path.rename(allowed_root / "unplugged")
    with pytest.raises(StorageUnavailable):
        accept_checksums([victim.pk])
    assert_error(
        api.post("/api/v1/storage-index/accept-checksum", {"file_ids": [victim.pk]}), 409, "storage_unavailable"
    )
    assert (row(VICTIM).checksum, row(VICTIM).status) == (victim.checksum, "modified")


@pytest.mark.django_db
def test_the_accept_route(storage, session, api):
    victim = row(VICTIM)
    flip_one_byte(storage.full_path / VICTIM)
    response = api.post("/api/v1/storage-index/accept-checksum", {"file_ids": [victim.pk, 0]})
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert [a["file_id"] for a in data["accepted"]] == [victim.pk] and data["refused"] == [
        {"file_id": 0, "reason": "no such file"}
    ]
    assert row(VICTIM).checksum == real_checksum(storage.full_path / VICTIM)
    assert_error(api.post("/api/v1/storage-index/accept-checksum", {"file_ids": []}), 422, "validation_error")
    assert_error(
        api.post("/api/v1/storage-index/accept-checksum", {"file_ids": [1], "force": True}), 422, "validation_error"
    )
    assert_error(
        api.post("/api/v1/storage-index/accept-checksum", {"file_ids": list(range(1, 10_002))}), 422, "validation_error"
    )


def test_the_api_validates_through_a_worker(celery_worker, api, storage, session):
    flip_one_byte(storage.full_path / VICTIM)
    response = api.post(f"/api/v1/storage-index/validate/{storage.storage_uuid}?mode=full")
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert data["mode"] == "full" and data["status"] == "succeeded"
    assert [c["path"] for c in data["corrupted_files"]] == [VICTIM]
    assert data["validated_files"] == len(CAMERA) - 1 and data["bytes_read"] > 0
    assert Job.objects.get(pk=data["job_id"]).kind == "validate"
    quick = api.post(f"/api/v1/storage-index/validate/{storage.storage_uuid}").json()["data"]
    assert quick["mode"] == "quick" and quick["bytes_read"] == 0


@pytest.mark.django_db
def test_a_bogus_mode_is_422_and_an_unplugged_storage_409_without_a_job(storage, session, allowed_root, api):
    error = assert_error(
        api.post(f"/api/v1/storage-index/validate/{storage.storage_uuid}?mode=bogus"), 422, "validation_error"
    )
    assert error["details"]["errors"][0]["loc"][-1] == "mode"
    storage.full_path.rename(allowed_root / "unplugged")
    assert_error(
        api.post(f"/api/v1/storage-index/validate/{storage.storage_uuid}?mode=full"), 409, "storage_unavailable"
    )
    assert not Job.objects.exists()
    with pytest.raises(StorageUnavailable):
        validate_storage(storage, mode="full")


@pytest.mark.django_db
def test_the_openapi_schema_describes_the_routes(api):
    schema = api.get("/api/v1/openapi.json").json()
    assert "/api/v1/storage-index/validate/{storage_uuid}" in schema["paths"]
    assert "/api/v1/storage-index/accept-checksum" in schema["paths"]
    names = set(schema["components"]["schemas"])
    assert {"ValidationOut", "CorruptedFile", "AcceptChecksumIn", "AcceptChecksumOut"} <= names


@pytest.mark.django_db
def test_the_command_prints_a_corrupted_file_and_fails(storage, session):
    flip_one_byte(storage.full_path / VICTIM)
    out = StringIO()
    with pytest.raises(CommandError, match="1 corrupted"):
        call_command("validate_storage", str(storage.storage_uuid), "--full", stdout=out, stderr=StringIO())
    assert f"corrupted: {VICTIM} (expected xxh3_128:" in out.getvalue()
    assert Job.objects.get().status == "succeeded"


@pytest.mark.django_db
def test_the_command_on_a_clean_storage_prints_the_summary(storage, session):
    out = StringIO()
    call_command("validate_storage", str(storage.storage_uuid), "--full", stdout=out, stderr=StringIO())
    assert (
        f"full validation: {len(CAMERA)} validated, 0 missing, 0 corrupted, 0 extra of {len(CAMERA)} checked"
        in out.getvalue()
    )
    out = StringIO()
    call_command("validate_storage", str(storage.storage_uuid), stdout=out, stderr=StringIO())
    assert "quick validation:" in out.getvalue() and "; 0 bytes read" in out.getvalue()


@pytest.mark.django_db
def test_the_mode_comes_from_the_query_or_the_body_and_an_unknown_field_is_422(storage, session, api, test_queue):
    url = f"/api/v1/storage-index/validate/{storage.storage_uuid}?wait=0"

    def mode_of(response):
        assert response.status_code == 202, response.content
        return Job.objects.get(pk=response.json()["data"]["job_id"]).params["mode"]

    assert (
        mode_of(api.post(url, {"mode": "full"})) == "full"
    )  # the body alone: today it is ignored and a quick one runs
    assert mode_of(api.post(url + "&mode=full")) == "full"
    assert mode_of(api.post(url + "&mode=full", {"mode": "full"})) == "full"
    assert mode_of(api.post(url)) == "quick"
    assert mode_of(api.post(url, {})) == "quick"
    jobs = Job.objects.count()
    error = assert_error(api.post(url, {"mode": "full", "deep": True}), 422, "validation_error")
    assert "deep" in json.dumps(error["details"])
    assert_error(api.post(url, {"mode": "bogus"}), 422, "validation_error")
    assert_error(api.post(url + "&mode=quick", {"mode": "full"}), 422, "validation_error")
    assert Job.objects.count() == jobs  # nothing was started for a refused request
