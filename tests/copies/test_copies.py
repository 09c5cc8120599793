"""Copies, counted (issue 17 point 2): a photo's copies are the storages holding a present file with its primary
file's checksum. Real storages on tmp_path, the same card imported into each; run on SQLite and PostgreSQL.
"""

import random
import shutil
from pathlib import Path

import pytest
from django.db import connection
from django.db.models import Max, Q
from django.utils import timezone

from imalink.triggers import installed_triggers
from imports import counting
from imports.models import ImageFile, ImportSession, Photo
from indexing.rewrite import import_folder, storage_create
from storages.models import FileStorage
from storages.services import storage_check_accessibility

CARD = ("jpeg/camera/DSCN0010.jpg", "jpeg/camera/jolla.jpg")


def new_storage(allowed_root: Path, name: str) -> FileStorage:
    base = allowed_root / name.lower().replace(" ", "-")
    base.mkdir()
    return storage_create(base_path=str(base), display_name=name)


def make_card(allowed_root: Path, corpus: Path, names=CARD, folder="card") -> Path:
    card = allowed_root / folder
    card.mkdir(exist_ok=True)
    for name in names:
        shutil.copy(corpus / name, card)
    return card


def import_card(storage: FileStorage, card: Path, title="Card") -> ImportSession:
    session = ImportSession.objects.create(title=title, file_storage=storage)
    report = import_folder(session_id=session.pk, source_path=str(card))
    assert report.imported >= 1 and not report.failures, report.failures
    return session


def unplug(storage: FileStorage) -> Path:
    """Take the drive away (its folder renamed) and record it, as the accessibility check does."""
    away = Path(storage.base_path).with_name(Path(storage.base_path).name + "-unplugged")
    Path(storage.base_path).rename(away)
    storage_check_accessibility(storage)
    return away


def plug_back(storage: FileStorage, away: Path) -> None:
    away.rename(storage.base_path)
    storage_check_accessibility(storage)


def copies_of(api, hothash: str) -> dict:
    response = api.get(f"/api/v1/photos/{hothash}")
    assert response.status_code == 200, response.content
    return response.json()["data"]["copies"]


def listed(api, query: str) -> set[str]:
    response = api.get(f"/api/v1/photos/?{query}")
    assert response.status_code == 200, response.content
    return {p["hothash"] for p in response.json()["data"]["photos"]}


@pytest.mark.django_db(transaction=True)
def test_the_copies_count_before_and_after_a_second_storage_gets_the_photo(api, allowed_root, corpus):
    main, backup = new_storage(allowed_root, "Main SSD"), new_storage(allowed_root, "Backup Drive")
    card = make_card(allowed_root, corpus)
    import_card(main, card)
    hothashes = set(Photo.objects.values_list("hothash", flat=True))
    assert len(hothashes) == 2
    some = sorted(hothashes)[0]

    before = copies_of(api, some)
    assert before["count"] == 1 and before["available"] == 1
    assert [s["storage_uuid"] for s in before["storages"]] == [str(main.storage_uuid)]
    assert before["storages"][0]["display_name"] == "Main SSD"
    assert before["storages"][0]["verified_at"] is not None  # the import's verified copy
    assert listed(api, "copies_lt=2") == hothashes
    assert listed(api, f"copies_lt=2&storage_uuid={main.storage_uuid}") == hothashes
    stats = api.get(f"/api/v1/file-storage/{main.storage_uuid}/statistics").json()["data"]["statistics"]
    assert stats["photos_only_here"] == 2

    import_card(backup, card)

    after = copies_of(api, some)
    assert after["count"] == 2 and after["available"] == 2
    assert {s["storage_uuid"] for s in after["storages"]} == {str(main.storage_uuid), str(backup.storage_uuid)}
    assert listed(api, "copies_lt=2") == set()
    assert listed(api, "copies_lt=3") == hothashes
    for storage in (main, backup):
        stats = api.get(f"/api/v1/file-storage/{storage.storage_uuid}/statistics").json()["data"]["statistics"]
        assert stats["photos_only_here"] == 0


@pytest.mark.django_db(transaction=True)
def test_an_unplugged_storages_copy_counts_and_shows_available_false(api, allowed_root, corpus):
    main, backup = new_storage(allowed_root, "Main"), new_storage(allowed_root, "Backup")
    card = make_card(allowed_root, corpus)
    import_card(main, card)
    import_card(backup, card)
    hothash = Photo.objects.order_by("id").first().hothash

    away = unplug(backup)
    copies = copies_of(api, hothash)
    assert copies["count"] == 2 and copies["available"] == 1
    by_uuid = {s["storage_uuid"]: s for s in copies["storages"]}
    assert by_uuid[str(backup.storage_uuid)]["available"] is False
    assert by_uuid[str(main.storage_uuid)]["available"] is True

    plug_back(backup, away)
    assert copies_of(api, hothash)["available"] == 2


@pytest.mark.django_db(transaction=True)
def test_missing_and_modified_files_are_no_copies(api, allowed_root, corpus):
    main, backup = new_storage(allowed_root, "Main"), new_storage(allowed_root, "Backup")
    card = make_card(allowed_root, corpus)
    import_card(main, card)
    import_card(backup, card)
    photo = Photo.objects.order_by("id").first()
    ImageFile.objects.filter(photo=photo, file_storage=backup).update(status=ImageFile.Status.MISSING)
    assert copies_of(api, photo.hothash)["count"] == 1
    assert photo.hothash in listed(api, "copies_lt=2")
    assert counting.photos_only_here(main) == 1
    ImageFile.objects.filter(photo=photo, file_storage=main).update(status=ImageFile.Status.MODIFIED)
    assert copies_of(api, photo.hothash)["count"] == 0
    assert photo.hothash in listed(api, "copies_lt=1")
    assert counting.photos_only_here(main) == 0


def test_the_copy_triggers_are_installed(db):
    assert installed_triggers(connection, "imalink_copies_") == {
        "imalink_copies_imagefile_insert",
        "imalink_copies_imagefile_delete",
        "imalink_copies_imagefile_update",
    }


def copies_from_the_rows() -> dict[int, tuple]:
    """The oracle: each photo's (copies, storage of the only copy, storage of the only verified copy), aggregated
    from the file rows."""
    answer = {}
    for photo in Photo.objects.all():
        checksum = counting.reference_checksum(photo)
        copies = ImageFile.objects.filter(photo=photo, checksum=checksum, status=ImageFile.Status.PRESENT)
        holders = set(copies.values_list("file_storage_id", flat=True))
        verified = set(copies.filter(verified_at__isnull=False).values_list("file_storage_id", flat=True))
        answer[photo.pk] = (
            len(holders),
            next(iter(holders)) if len(holders) == 1 else None,
            next(iter(verified)) if len(verified) == 1 else None,
        )
    return answer


def copies_from_the_triggers() -> dict[int, tuple]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, copies_count, copies_sole_storage_id, copies_verified_sole_storage_id FROM imports_photo"
        )
        return {pk: tuple(rest) for pk, *rest in cursor.fetchall()}


@pytest.mark.django_db(transaction=True)
def test_the_kept_count_matches_the_rows_after_every_kind_of_change(allowed_root):
    rng = random.Random(20261204)
    storages = [new_storage(allowed_root, name) for name in ("One", "Two", "Three")]
    sessions = [ImportSession.objects.create(title=f"S{n}", file_storage=storages[n % 3]) for n in range(6)]
    photos = [Photo.objects.create(hothash=f"{n:032x}") for n in range(8)]
    counter = iter(range(10**6))
    statuses = [ImageFile.Status.PRESENT] * 3 + [ImageFile.Status.MISSING, ImageFile.Status.MODIFIED]

    def place(n_files):
        rows = []
        for _ in range(n_files):
            session, photo, n = rng.choice(sessions), rng.choice(photos), next(counter)
            rows.append(
                ImageFile(
                    photo=photo,
                    import_session=session,
                    file_storage=session.file_storage,
                    relative_path=f"photos/{n:05}.jpg",
                    original_filename=f"{n:05}.jpg",
                    file_format="jpeg",
                    file_size=100,
                    mtime_ns=1,
                    checksum=f"{photo.pk % 3:032x}" if rng.random() < 0.8 else f"{n:032x}",  # copies, mostly
                    is_primary=rng.random() < 0.4,
                    role=ImageFile.Role.ORIGINAL if rng.random() < 0.9 else ImageFile.Role.SIDECAR,
                    status=rng.choice(statuses),
                    verified_at=timezone.now() if rng.random() < 0.5 else None,
                )
            )
        ImageFile.objects.bulk_create(rows)

    def some_files():
        ids = list(ImageFile.objects.values_list("id", flat=True))
        return ImageFile.objects.filter(id__in=rng.sample(ids, min(len(ids), rng.randint(1, 4))))

    def move_to_session(files):
        session = rng.choice(sessions)
        files.update(import_session=session, file_storage=session.file_storage)

    def one_by_save(files):
        for image_file in files:
            image_file.status = rng.choice(statuses)
            image_file.save()

    changes = [
        lambda: place(rng.randint(1, 5)),
        lambda: some_files().update(status=rng.choice(statuses)),
        lambda: some_files().update(is_primary=rng.random() < 0.5),
        lambda: some_files().update(photo=rng.choice(photos)),
        lambda: some_files().update(checksum=f"{rng.randrange(3):032x}"),
        lambda: move_to_session(some_files()),
        lambda: one_by_save(some_files()),
        lambda: some_files().update(verified_at=None),
        lambda: some_files().update(verified_at=timezone.now()),
        lambda: some_files().update(last_seen_at=timezone.now()),  # counts nothing
        lambda: some_files().delete(),
    ]
    place(25)
    for step in range(120):
        rng.choice(changes)()
        assert copies_from_the_triggers() == copies_from_the_rows(), f"step {step}"
    ImageFile.objects.all().delete()
    assert set(copies_from_the_triggers().values()) == {(0, None, None)}


@pytest.mark.django_db(transaction=True)
def test_verified_at_per_storage_is_the_latest_of_its_files(api, allowed_root, corpus):
    main = new_storage(allowed_root, "Main")
    import_card(main, make_card(allowed_root, corpus))
    photo = Photo.objects.order_by("id").first()
    expected = ImageFile.objects.filter(photo=photo, file_storage=main).aggregate(v=Max("verified_at"))["v"]
    shown = copies_of(api, photo.hothash)["storages"][0]["verified_at"]
    assert shown is not None and shown.startswith(expected.isoformat()[:19])
    ImageFile.objects.filter(photo=photo).update(verified_at=None)
    assert copies_of(api, photo.hothash)["storages"][0]["verified_at"] is None
    assert not ImageFile.objects.filter(~Q(status=ImageFile.Status.PRESENT)).exists()


# --- the copy policy (issue 17 point 3) -------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_storage_shows_its_role_and_put_changes_it(api, make_storage):
    storage = make_storage("Backup Drive")
    assert storage["role"] == "primary"

    response = api.put(f"/api/v1/file-storage/{storage['uuid']}", {"role": "backup"})
    assert response.status_code == 200, response.content
    assert response.json()["data"]["role"] == "backup"
    assert api.get(f"/api/v1/file-storage/{storage['uuid']}").json()["data"]["role"] == "backup"
    assert FileStorage.objects.get(storage_uuid=storage["uuid"]).role == FileStorage.Role.BACKUP


@pytest.mark.django_db(transaction=True)
def test_a_bad_role_is_422_and_changes_nothing(api, make_storage):
    storage = make_storage("Main")
    response = api.put(f"/api/v1/file-storage/{storage['uuid']}", {"role": "mirror", "display_name": "Renamed"})
    assert response.status_code == 422, response.content
    row = FileStorage.objects.get(storage_uuid=storage["uuid"])
    assert (row.role, row.display_name) == ("primary", "Main")


@pytest.mark.django_db(transaction=True)
def test_a_refused_migration_leaves_the_role_as_it_was(api, make_storage, allowed_root):
    storage = make_storage("Main")
    elsewhere = allowed_root / "elsewhere"
    elsewhere.mkdir()
    response = api.put(f"/api/v1/file-storage/{storage['uuid']}", {"role": "archive", "base_path": str(elsewhere)})
    assert response.status_code == 400, response.content
    assert FileStorage.objects.get(storage_uuid=storage["uuid"]).role == "primary"


@pytest.mark.django_db(transaction=True)
def test_the_health_check_reports_photos_below_the_policy_per_storage_with_a_link(api, allowed_root, corpus, settings):
    from indexing.health import run_health_check

    settings.IMALINK_MIN_COPIES = None  # the default: 2 once a second storage exists
    main, backup = new_storage(allowed_root, "Main SSD"), new_storage(allowed_root, "Backup Drive")
    card = make_card(allowed_root, corpus)
    import_card(main, card)
    import_card(backup, make_card(allowed_root, corpus, names=CARD[:1], folder="half"), title="Half")

    report = run_health_check()
    issues = {i["key"]: i for i in report.issues}
    few = issues[f"few_copies:{main.storage_uuid}"]
    assert few["storage_uuid"] == str(main.storage_uuid) and "1 photos" in few["message"]
    assert few["link"] == f"/api/v1/photos/?copies_lt=2&storage_uuid={main.storage_uuid}"
    assert f"few_copies:{backup.storage_uuid}" not in issues  # its one photo is on Main too
    rows = {r["uuid"]: r for r in report.storages}
    assert rows[str(main.storage_uuid)]["photos_below_min_copies"] == 1
    assert rows[str(main.storage_uuid)]["photos_only_here"] == 1
    assert rows[str(backup.storage_uuid)]["photos_below_min_copies"] == 0
    assert (counting.under_protected_on(main, 2), counting.under_protected_on(backup, 2)) == (1, 0)  # one storage's
    # The link lists exactly the photo the issue counts.
    only_on_main = Photo.objects.exclude(files__file_storage=backup).get()
    assert listed(api, few["link"].split("?", 1)[1]) == {only_on_main.hothash}
    # The health API hands the link on with the issue.
    answered = {i["key"]: i for i in api.get("/api/v1/health/reports/latest").json()["data"]["issues"]}
    assert answered[f"few_copies:{main.storage_uuid}"]["link"] == few["link"]

    settings.IMALINK_MIN_COPIES = 1
    assert not [i for i in run_health_check().issues if i["key"].startswith("few_copies")]


@pytest.mark.django_db(transaction=True)
def test_a_full_validation_sets_verified_at_and_a_quick_one_does_not(allowed_root, corpus):
    from indexing.validation import validate_storage

    main = new_storage(allowed_root, "Main")
    import_card(main, make_card(allowed_root, corpus))
    ImageFile.objects.update(verified_at=None)

    validate_storage(main, mode="quick")
    assert not ImageFile.objects.filter(verified_at__isnull=False).exists()

    corrupted = ImageFile.objects.order_by("id").first()
    path = main.full_path / corrupted.relative_path
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    report = validate_storage(main, mode="full")
    assert len(report.corrupted_files) == 1
    verified = set(ImageFile.objects.filter(verified_at__isnull=False).values_list("id", flat=True))
    assert verified == set(ImageFile.objects.exclude(pk=corrupted.pk).values_list("id", flat=True)) != set()


@pytest.mark.django_db(transaction=True)
def test_the_under_protected_list_puts_the_fewest_copies_first_and_needs_no_sort(api, allowed_root, corpus):
    main, backup = new_storage(allowed_root, "Main"), new_storage(allowed_root, "Backup")
    card = make_card(allowed_root, corpus)
    import_card(main, card)
    import_card(backup, card)
    first, second = Photo.objects.order_by("id")
    ImageFile.objects.filter(photo=second).update(status=ImageFile.Status.MISSING)  # no copy left anywhere
    ImageFile.objects.filter(photo=first, file_storage=backup).update(status=ImageFile.Status.MISSING)  # one copy
    response = api.get("/api/v1/photos/?copies_lt=2")
    assert [p["hothash"] for p in response.json()["data"]["photos"]] == [second.hothash, first.hothash]

    query = counting.fewest_copies_first(counting.with_fewer_copies(Photo.objects.all(), 2))[:100]  # a page
    sql, params = query.query.sql_with_params()
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
            plan = " ".join(str(row[-1]) for row in cursor.fetchall())
            assert "photo_copies_count_id" in plan and "TEMP B-TREE" not in plan, plan
        else:
            # Two rows: make the planner show what it can use on a big table, an ordered index scan.
            cursor.execute("SET enable_seqscan = off; SET enable_bitmapscan = off")
            try:
                cursor.execute(f"EXPLAIN {sql}", params)
                plan = " ".join(row[0] for row in cursor.fetchall())
            finally:
                cursor.execute("RESET enable_seqscan; RESET enable_bitmapscan")
            assert "photo_copies_count_id" in plan and "Sort" not in plan, plan
