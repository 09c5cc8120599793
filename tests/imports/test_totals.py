"""The running totals of migration imports/0002: whatever changes the file rows (save, bulk_create, a bare UPDATE,
a delete, a SQL shell), the totals say exactly what an aggregate over the rows says. Run on SQLite and on
PostgreSQL (DATABASE_URL).
"""

import random

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models import Count, Q, Sum

from imalink.triggers import installed_triggers
from imports.models import (
    FileTotals,
    ImageFile,
    ImportSession,
    Photo,
    StoragePhoto,
    StorageTotals,
)
from imports.totals import file_totals, photo_count
from storages.models import FileStorage

TRIGGERS = {
    f"imalink_tot_{name}"
    for name in (
        "imagefile_insert",
        "imagefile_delete",
        "imagefile_bucket",
        "imagefile_pair",
        "storagephoto_insert",
        "storagephoto_delete",
    )
}
STATUSES = [ImageFile.Status.PRESENT, ImageFile.Status.MODIFIED, ImageFile.Status.MISSING]


def from_the_rows(storage) -> tuple[dict, dict]:
    """What the totals must say, aggregated over every file row: the oracle."""
    missing = Q(status=ImageFile.Status.MISSING)
    sums = ImageFile.objects.filter(file_storage=storage).aggregate(
        present_files=Count("id", filter=~missing),
        present_bytes=Sum("file_size", filter=~missing),
        missing_files=Count("id", filter=missing),
        photos=Count("photo_id", distinct=True),
    )
    sessions = ImportSession.objects.filter(file_storage=storage).annotate(
        present=Count("image_files", filter=~Q(image_files__status=ImageFile.Status.MISSING)),
        missing=Count("image_files", filter=Q(image_files__status=ImageFile.Status.MISSING)),
    )
    counts = {s.id: (s.present, s.missing) for s in sessions if s.present or s.missing}
    return {name: value or 0 for name, value in sums.items()}, counts


def from_the_totals(storage) -> tuple[dict, dict]:
    totals, sessions = file_totals(storage)
    return {**totals, "photos": photo_count(storage)}, {sid: pair for sid, pair in sessions.items() if pair != (0, 0)}


def new_file(rng, storage, session, photo, n) -> ImageFile:
    return ImageFile(
        photo=photo,
        import_session=session,
        file_storage=storage,
        relative_path=f"photos/{n:05}.jpg",
        original_filename=f"{n:05}.jpg",
        file_format="jpeg",
        file_size=rng.randrange(1, 50_000_000),
        mtime_ns=1_700_000_000_000_000_000,
        checksum=f"{n:032x}",
        status=rng.choice(STATUSES),
    )


def test_the_triggers_are_installed(db):
    assert installed_triggers(connection, "imalink_tot_") == TRIGGERS


@pytest.mark.django_db(transaction=True)
def test_the_totals_match_the_rows_after_every_kind_of_change(make_storage):
    rng = random.Random(20261124)
    storages = [FileStorage.objects.get(storage_uuid=make_storage(name)["uuid"]) for name in ("One", "Two")]
    sessions = [ImportSession.objects.create(title=f"S{n}", file_storage=storages[n % 2]) for n in range(4)]
    photos = [Photo.objects.create(hothash=f"{n:032x}") for n in range(12)]  # few photos: files share them
    counter = iter(range(10**6))

    def place(n_files):
        session = rng.choice(sessions)
        ImageFile.objects.bulk_create(
            [new_file(rng, session.file_storage, session, rng.choice(photos), next(counter)) for _ in range(n_files)]
        )

    def some_files():
        ids = list(ImageFile.objects.values_list("id", flat=True))
        return ImageFile.objects.filter(id__in=rng.sample(ids, min(len(ids), rng.randint(1, 4))))

    def move_to_session(files):
        session = rng.choice(sessions)  # a session of either storage, and its storage with it
        files.update(import_session=session, file_storage=session.file_storage)

    def raw_sql(files):
        ids = list(files.values_list("id", flat=True))
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE imports_imagefile SET status = 'missing', file_size = file_size + 1 "
                f"WHERE id IN ({','.join(map(str, ids))})"
            )

    def one_by_save(files):
        for image_file in files:
            image_file.status = rng.choice(STATUSES)
            image_file.file_size = rng.randrange(1, 1000)
            image_file.save()

    changes = [
        lambda: place(rng.randint(1, 6)),
        lambda: some_files().update(status=rng.choice(STATUSES)),
        lambda: some_files().update(file_size=rng.randrange(1, 1000)),
        lambda: some_files().update(photo=rng.choice(photos)),
        lambda: move_to_session(some_files()),
        lambda: some_files().update(import_session=rng.choice(sessions)),  # even into a session of the other storage
        lambda: raw_sql(some_files()),
        lambda: one_by_save(some_files()),
        lambda: some_files().update(last_seen_at=None),  # counts nothing: changes nothing
        lambda: some_files().delete(),
    ]
    place(20)
    for step in range(150):
        change = rng.choice(changes)
        change()
        for storage in storages:
            assert from_the_totals(storage) == from_the_rows(storage), f"step {step}"
    assert ImageFile.objects.exists()

    ImageFile.objects.all().delete()
    for storage in storages:
        assert from_the_totals(storage) == (
            {"present_files": 0, "present_bytes": 0, "missing_files": 0, "photos": 0},
            {},
        )
    assert not StoragePhoto.objects.exists(), "a pair outlived its last file"


@pytest.mark.django_db(transaction=True)
def test_a_flush_leaves_no_totals_behind(make_storage):
    """SQLite's flush deletes every table in no set order; a removal must never create a totals row."""
    storage = FileStorage.objects.get(storage_uuid=make_storage("Flushed")["uuid"])
    session = ImportSession.objects.create(title="S", file_storage=storage)
    rng = random.Random(1)
    ImageFile.objects.bulk_create(
        [new_file(rng, storage, session, Photo.objects.create(hothash=f"{n:032x}"), n) for n in range(5)]
    )
    assert StorageTotals.objects.get(file_storage=storage).photos == 5

    call_command("flush", interactive=False, verbosity=0)

    assert not FileTotals.objects.exists() and not StoragePhoto.objects.exists() and not StorageTotals.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_migration_counts_the_rows_already_there(make_storage):
    rng = random.Random(2)
    storage = FileStorage.objects.get(storage_uuid=make_storage("Before")["uuid"])
    sessions = [ImportSession.objects.create(title=f"S{n}", file_storage=storage) for n in range(3)]
    photos = [Photo.objects.create(hothash=f"{n:032x}") for n in range(7)]
    ImageFile.objects.bulk_create(
        [new_file(rng, storage, rng.choice(sessions), rng.choice(photos), n) for n in range(40)]
    )
    expected = from_the_rows(storage)
    assert from_the_totals(storage) == expected

    call_command("migrate", "imports", "0001", verbosity=0)  # the totals' tables and triggers are gone
    call_command("migrate", verbosity=0)  # every app: going back undid what depends on imports (jobs, indexing) too

    assert from_the_totals(storage) == expected
