"""The real thing over HTTP: `manage.py serve` (what `make run` starts) and the seed's own curl commands.

The curl blocks are read from the seed document itself. Only the host, the example drive paths, the example
ids and the Authorization header are changed, so the test proves the seed's contract as the user wrote it.
"""

import os
import re
import signal
import urllib.request

import pytest

from tests.conftest import http_status, require
from tests.seed import SEED, run_seed_block, seed_bash_block


@pytest.fixture
def server(imalink_server, have_curl):
    require(SEED.exists(), f"the seed document at {SEED}")
    return imalink_server


@pytest.mark.django_db(transaction=True, reset_sequences=True)
def test_the_seed_workflows_1_and_4_run_as_written_against_the_real_server(server, allowed_root, tmp_path):
    from django.contrib.auth import get_user_model

    from imalink.models import ApiToken
    from imports.models import Author

    # First start: the admin user exists with a printed, privately kept password.
    password_file = tmp_path / "var" / "admin_password"
    password = password_file.read_text().strip()
    assert f"Password: {password}" in server.output()
    assert oct(password_file.stat().st_mode & 0o777) == "0o600"
    assert "Broker: Redis at" in server.output()
    token = ApiToken.issue(user=get_user_model().objects.get(username="admin"))[1]

    # The admin login page and the API docs are served.
    assert http_status(f"{server.url}/admin/login/") == 200
    assert http_status(f"{server.url}/api/v1/docs") == 200

    drives = {
        name: allowed_root / name.strip("/")
        for name in ("/external/photos", "/home/photos", "/backup/photos", "/nas/archive")
    }
    for folder in drives.values():
        folder.mkdir(parents=True)
    paths = {f'"{name}"': f'"{folder}"' for name, folder in drives.items()}

    # Workflow 1, step 1: create a storage.
    (created,) = run_seed_block(
        seed_bash_block("Workflow 1", "Step 1"), url=server.url, token=token, substitutions=paths
    )
    assert created["success"] is True, created
    storage = created["data"]
    assert re.fullmatch(r"imalink_\d{8}_\d{6}_[0-9a-f]{8}", storage["directory_name"])
    assert (drives["/external/photos"] / storage["directory_name"] / ".imalink" / "storage.json").exists()

    # Step 2: it is accessible and writable, with space figures.
    (access,) = run_seed_block(
        seed_bash_block("Workflow 1", "Step 2"), url=server.url, token=token, substitutions={"{uuid}": storage["uuid"]}
    )
    assert access["data"]["is_accessible"] is True and access["data"]["is_writable"] is True
    assert access["data"]["free_space_gb"] > 0

    # Step 3: an import session on it, with the seed's author id 1 and the real storage id.
    assert Author.objects.create(name="Family").pk == 1
    (session,) = run_seed_block(
        seed_bash_block("Workflow 1", "Step 3"),
        url=server.url,
        token=token,
        substitutions={'"file_storage_id": 5': f'"file_storage_id": {storage["id"]}'},
    )
    assert session["success"] is True and session["data"]["images_count"] == 0
    assert session["data"]["title"] == "Italy Vacation 2024" and session["data"]["default_author_id"] == 1

    # Workflow 4, step 1: three more storages (the seed sends no Content-Type header).
    more = run_seed_block(seed_bash_block("Workflow 4", "Step 1"), url=server.url, token=token, substitutions=paths)
    assert [r["data"]["display_name"] for r in more] == ["Main SSD", "Backup Drive", "NAS Archive"]

    # Step 3: list them all, then statistics for each.
    uuids = " ".join(s["data"]["uuid"] for s in [created, *more])
    listing, *stats = run_seed_block(
        seed_bash_block("Workflow 4", "Step 3"),
        url=server.url,
        token=token,
        substitutions={"in storage_uuids;": f"in {uuids};"},
    )
    assert len(listing["data"]["storages"]) == 4
    assert {s["storage_uuid"] for s in listing["data"]["storages"]} == set(uuids.split())
    assert len(stats) == 4 and all(s["success"] and s["data"]["statistics"]["total_files"] == 0 for s in stats)
    assert stats[0]["data"]["import_sessions"][0]["title"] == "Italy Vacation 2024"

    # Anonymous calls are refused.
    assert http_status(f"{server.url}/api/v1/file-storage/") == 401

    # Ctrl-C stops web, worker and beat cleanly, and a second start prints no new password.
    os.killpg(server.proc.pid, signal.SIGINT)
    assert server.proc.wait(30) == 0
    assert (
        "web stopped" in server.output() and "worker stopped" in server.output() and "beat stopped" in server.output()
    )
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{server.url}/admin/login/", timeout=2)
    server.start()
    assert "Password:" not in server.output()
    assert password_file.read_text().strip() == password
