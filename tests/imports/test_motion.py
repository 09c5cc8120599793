"""A motion photo keeps its embedded video, and can expose it (issue 16): the Samsung motion photo is archived
whole as one photo, and /photos/<hothash>/motion plays the MP4 inside it, where it lies in the original.
"""

import io
import os
import shutil

import av
import pytest

from imports.models import ImportSession, Photo
from imports.motion import embedded_video
from indexing.rewrite import import_folder, storage_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def imported(client, admin_user, allowed_root, corpus, corpus_card):
    base = allowed_root / "drive"
    base.mkdir()
    storage = storage_create(base_path=str(base), display_name="Phone backup")
    card = allowed_root / "card"
    card.mkdir()
    shutil.copy(corpus_card / "motion/samsung-one-ui-6.heic", card / "20240101_120000.heic")
    shutil.copy(corpus / "jpeg/camera/jolla.jpg", card / "still.jpg")
    session = ImportSession.objects.create(title="Phone", file_storage=storage)
    import_folder(session_id=session.pk, source_path=str(card))
    client.force_login(admin_user)
    return client, storage


def stream(response) -> bytes:
    return b"".join(response.streaming_content)


def test_the_embedded_video_is_found_where_the_motion_photo_says(corpus_card):
    fd = os.open(corpus_card / "motion/samsung-one-ui-6.heic", os.O_RDONLY)
    try:
        found = embedded_video(lambda offset, n: os.pread(fd, n, offset), os.fstat(fd).st_size)
    finally:
        os.close(fd)
    assert (found.offset, found.length, found.mime) == (452284, 3226668, "video/mp4")


def test_the_motion_route_plays_the_video_inside_the_photo(imported, corpus_card):
    client, _storage = imported
    photo = Photo.objects.get(files__original_filename="20240101_120000.heic")
    assert photo.media_type == "photo"

    response = client.get(f"/photos/{photo.hothash}/motion")
    assert response.status_code == 200 and response["Content-Type"] == "video/mp4"
    data = stream(response)
    assert data == (corpus_card / "motion/samsung-one-ui-6.heic").read_bytes()[452284 : 452284 + 3226668]
    with av.open(io.BytesIO(data)) as container:
        assert {s.codec_context.name for s in container.streams} == {"hevc", "aac"}
        assert container.duration / av.time_base == pytest.approx(3.1, abs=0.2)

    ranged = client.get(f"/photos/{photo.hothash}/motion", HTTP_RANGE="bytes=0-7")
    assert ranged.status_code == 206 and ranged["Content-Range"] == "bytes 0-7/3226668"
    assert stream(ranged)[4:8] == b"ftyp"


def test_a_photo_without_one_answers_404_and_strangers_are_sent_to_log_in(imported, django_user_model):
    client, _storage = imported
    still = Photo.objects.get(files__original_filename="still.jpg")
    assert client.get(f"/photos/{still.hothash}/motion").status_code == 404
    client.logout()
    motion = Photo.objects.get(files__original_filename="20240101_120000.heic")
    assert client.get(f"/photos/{motion.hothash}/motion").status_code in (302, 403)
