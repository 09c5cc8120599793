"""GET /api/v1/file-storage/{uuid}/statistics: exact figures from the rows, in a fixed number of queries."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from imports.models import ImageFile, ImportSession, Photo
from storages.models import FileStorage

pytestmark = pytest.mark.django_db

MB = 1024 * 1024
# Authentication plus the statistics' own aggregates; it must not depend on how many rows there are.
MAX_QUERIES = 8


def statistics(api, storage):
    response = api.get(f"/api/v1/file-storage/{storage['storage_uuid']}/statistics")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["success"] is True
    return body["data"]


def add_files(storage_row, session, count, *, size=1000, status=ImageFile.Status.PRESENT, prefix="f", photo=None):
    files = []
    for n in range(count):
        owner = photo or Photo.objects.create(hothash=f"{prefix}-{session.pk}-{n}-{status}".ljust(32, "0"))
        files.append(
            ImageFile(
                photo=owner,
                import_session=session,
                file_storage=storage_row,
                relative_path=f"photos/{prefix}/{session.pk}/{status}/IMG_{n:04}.jpg",
                original_filename=f"IMG_{n:04}.jpg",
                file_format="jpeg",
                file_size=size,
                mtime_ns=1_700_000_000_000_000_000,
                checksum=f"{session.pk:08x}{n:08x}".ljust(32, "a"),
                status=status,
            )
        )
    ImageFile.objects.bulk_create(files)
    return files


def test_it_counts_nothing_for_an_empty_storage(api, make_storage):
    storage = make_storage("Empty")

    data = statistics(api, storage)

    assert data["storage_uuid"] == storage["storage_uuid"]
    assert data["statistics"] == {
        "total_files": 0,
        "total_size_mb": 0,
        "total_size_bytes": 0,
        "photos": 0,
        "videos": 0,
        "missing_files": 0,
        "photos_only_here": 0,
    }
    assert data["import_sessions"] == []


def test_it_counts_files_sizes_photos_and_sessions(api, make_storage):
    storage = make_storage("Counted")
    row = FileStorage.objects.get(storage_uuid=storage["storage_uuid"])
    italy = ImportSession.objects.create(title="Italy 2024", file_storage=row)
    norway = ImportSession.objects.create(title="Norway 2023", file_storage=row)
    add_files(row, italy, 3, size=2 * MB)
    add_files(row, italy, 2, size=5 * MB, status=ImageFile.Status.MISSING)
    add_files(row, norway, 1, size=MB // 2, status=ImageFile.Status.MODIFIED)
    raw_pair = Photo.objects.create(hothash="raw-and-jpeg".ljust(32, "0"))
    add_files(row, norway, 2, size=MB, prefix="pair", photo=raw_pair)

    data = statistics(api, storage)

    expected_bytes = 3 * 2 * MB + MB // 2 + 2 * MB
    assert data["statistics"] == {
        "total_files": 6,
        "total_size_bytes": expected_bytes,
        "total_size_mb": round(expected_bytes / MB, 3),
        "photos": 3 + 2 + 1 + 1,
        "videos": 0,
        "missing_files": 2,
        "photos_only_here": 4,  # the three present photos and the pair; a missing or modified file is no copy
    }
    sessions = {s["id"]: s for s in data["import_sessions"]}
    assert set(sessions) == {italy.pk, norway.pk}
    assert (sessions[italy.pk]["title"], sessions[italy.pk]["images_count"]) == ("Italy 2024", 5)
    assert (sessions[norway.pk]["title"], sessions[norway.pk]["images_count"]) == ("Norway 2023", 3)
    assert all(s["imported_at"] for s in data["import_sessions"])


def test_it_counts_only_its_own_storage(api, allowed_root, make_storage):
    mine, theirs = make_storage("Mine"), make_storage("Theirs")
    other = FileStorage.objects.get(storage_uuid=theirs["storage_uuid"])
    add_files(other, ImportSession.objects.create(title="Not mine", file_storage=other), 4)

    data = statistics(api, mine)

    assert data["statistics"]["total_files"] == 0
    assert data["statistics"]["photos"] == 0
    assert data["import_sessions"] == []
    assert statistics(api, theirs)["statistics"]["total_files"] == 4


def test_it_answers_in_a_fixed_number_of_queries(api, make_storage, django_assert_max_num_queries):
    small, large = make_storage("Small"), make_storage("Large")
    small_row = FileStorage.objects.get(storage_uuid=small["storage_uuid"])
    add_files(small_row, ImportSession.objects.create(title="One", file_storage=small_row), 1)
    large_row = FileStorage.objects.get(storage_uuid=large["storage_uuid"])
    for n in range(3):
        session = ImportSession.objects.create(title=f"Session {n}", file_storage=large_row)
        add_files(large_row, session, 50)

    with CaptureQueriesContext(connection) as small_queries:
        small_data = statistics(api, small)
    with django_assert_max_num_queries(MAX_QUERIES):
        with CaptureQueriesContext(connection) as large_queries:
            large_data = statistics(api, large)

    assert small_data["statistics"]["total_files"] == 1
    assert large_data["statistics"]["total_files"] == 150
    assert [s["images_count"] for s in large_data["import_sessions"]] == [50, 50, 50]
    assert len(large_queries) == len(small_queries), [q["sql"][:80] for q in large_queries.captured_queries]


@pytest.mark.django_db(transaction=True)
def test_figures_change_as_soon_as_a_file_row_does_even_by_a_bare_update(api, make_storage):
    storage = make_storage("Changing")
    row = FileStorage.objects.get(storage_uuid=storage["storage_uuid"])
    session = ImportSession.objects.create(title="One", file_storage=row)
    add_files(row, session, 3)
    assert statistics(api, storage)["statistics"]["missing_files"] == 0

    ImageFile.objects.filter(file_storage=row).update(status=ImageFile.Status.MISSING)  # no save(), no signal
    figures = statistics(api, storage)["statistics"]
    assert (figures["total_files"], figures["missing_files"], figures["total_size_bytes"]) == (0, 3, 0)
    ImportSession.objects.filter(pk=session.pk).update(title="Renamed")
    assert statistics(api, storage)["import_sessions"][0]["title"] == "Renamed"
