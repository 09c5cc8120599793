"""`manage.py index_storage UUID`: writes the indexes through the same job as the API, and refuses clearly."""

import json
import shutil
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from imports.models import ImportSession
from indexing.rewrite import import_folder
from jobs.models import Job
from storages.models import FileStorage

pytestmark = pytest.mark.django_db


@pytest.fixture
def storage(make_storage):
    return FileStorage.objects.get(storage_uuid=make_storage("Main")["uuid"])


@pytest.fixture
def session(storage, allowed_root, corpus):
    card = allowed_root / "card"
    card.mkdir()
    shutil.copy(corpus / "jpeg/camera/DSCN0010.jpg", card)
    shutil.copy(corpus / "jpeg/camera/jolla.jpg", card)
    session = ImportSession.objects.create(title="Card", file_storage=storage)
    import_folder(session_id=session.pk, source_path=str(card))
    return session


def run(*args):
    out, err = StringIO(), StringIO()
    call_command("index_storage", *args, stdout=out, stderr=err)
    return out.getvalue()


def test_it_writes_every_index_and_says_how_many(storage, session):
    empty = ImportSession.objects.create(title="Empty", file_storage=storage)
    root = storage.full_path
    (root / "index.json").unlink()
    (root / f"imports/session_{session.pk}.json").unlink()

    out = run(str(storage.storage_uuid))
    assert "Wrote 3 of 3 index files" in out
    master = json.loads((root / "index.json").read_bytes())
    assert [s["id"] for s in master["import_sessions"]] == [session.pk, empty.pk]
    assert len(json.loads((root / f"imports/session_{session.pk}.json").read_bytes())["files"]) == 2
    assert json.loads((root / f"imports/session_{empty.pk}.json").read_bytes())["files"] == {}
    job = Job.objects.get(kind="index_storage")
    assert job.status == "succeeded" and job.result["written"] == 3

    assert "Wrote 0 of 3 index files" in run(str(storage.storage_uuid))


def test_an_unknown_uuid_is_a_command_error(storage):
    with pytest.raises(CommandError, match="No storage with uuid"):
        run("3f2b8c1e-0000-4000-8000-000000000000")
    with pytest.raises(CommandError, match="not a uuid"):
        run("nonsense")
    assert Job.objects.count() == 0


def test_an_unplugged_storage_is_a_command_error_naming_the_reason(storage, session, allowed_root):
    storage.full_path.rename(allowed_root / "elsewhere")
    with pytest.raises(CommandError, match="unavailable") as raised:
        run(str(storage.storage_uuid))
    assert storage.directory_name in str(raised.value) and "not in it" in str(raised.value)
    assert not storage.full_path.exists()
    assert Job.objects.count() == 0
