"""The pages of a card's import (issue 16): the session page's play badges, source files with their fates and the
"safe to format" verdict; the video's page with its player; and the original's route with byte ranges, which
never follows a link or waits on a pipe in the storage and answers an unplugged drive with a page saying so.

The card is built from both corpora: ../shared/corpus-card (the MP4, an XMP sidecar) and ../shared/corpus (a JPEG).
"""

import os
import re
import shutil
import time
from html import unescape

import pytest
from django.test import Client

from imports.models import ImageFile, ImportSession, Photo
from imports.views import RangeNotSatisfiable, duration_label, parse_byte_range
from indexing.rewrite import import_folder, storage_create
from jobs.models import Job
from jobs.services import job_run


@pytest.fixture
def logged_in(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def drive(allowed_root):
    path = allowed_root / "drive"
    path.mkdir()
    return path


@pytest.fixture
def storage(db, drive):
    return storage_create(base_path=str(drive), display_name="Main drive")


@pytest.fixture
def card(allowed_root, corpus, corpus_card):
    """A camera's card: a video, a photo with its XMP sidecar, and a note that is neither."""
    folder = allowed_root / "card"
    folder.mkdir()
    shutil.copy(corpus_card / "video/quicktime.mp4", folder / "MVI_0001.MP4")
    shutil.copy(corpus / "jpeg/camera/DSCN0010.jpg", folder / "DSCN0010.jpg")
    shutil.copy(corpus_card / "sidecar/exiv2_iso_array.xmp", folder / "DSCN0010.xmp")
    (folder / "notes.txt").write_text("batteries: 2 spare")
    return folder


@pytest.fixture
def session(storage, card):
    session = ImportSession.objects.create(title="Hike", file_storage=storage)
    report = import_folder(session_id=session.pk, source_path=str(card))
    assert (report.imported, report.companions, report.skipped) == (3, 1, 1)
    session.refresh_from_db()
    return session


@pytest.fixture
def video(session):
    return Photo.objects.get(media_type="video")


def original_url(photo):
    return f"/photos/{photo.hothash}/original"


def video_file(video) -> ImageFile:
    return video.files.get(role="original")


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def source_rows(html: str) -> dict[str, tuple[str, str]]:
    """The source files table: path -> (fate, the rest of the row as text)."""
    section = html[html.index('id="source-files"') :]
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", section, re.S):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        if len(cells) != 4:
            continue
        path = unescape(re.sub(r"<[^>]+>", "", cells[0])).strip()
        fate = re.search(r'class="badge \w+">(\w+)<', cells[1]).group(1)
        text = unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", cells[1] + cells[2]))).strip()
        rows[path] = (fate, text)
    return rows


# --- the session page ----------------------------------------------------------------------------------


def test_the_session_page_shows_the_play_badge_and_every_source_file(logged_in, session, video):
    html = logged_in.get(f"/sessions/{session.pk}/").content.decode()
    assert f'href="/photos/{video.hothash}/"' in html
    assert '<span class="play" role="img" aria-label="Video, 0:05">▶ 0:05</span>' in html
    assert html.count('class="play"') == 1  # the photo has none

    rows = source_rows(html)
    assert set(rows) == {"MVI_0001.MP4", "DSCN0010.jpg", "DSCN0010.xmp", "notes.txt"}
    assert rows["MVI_0001.MP4"][0] == "archived" and "photos/MVI_0001.MP4" in rows["MVI_0001.MP4"][1]
    assert rows["DSCN0010.jpg"][0] == "archived"
    assert rows["DSCN0010.xmp"] == ("companion", "companion sidecar photos/DSCN0010.xmp")
    fate, text = rows["notes.txt"]
    assert fate == "skipped" and text.startswith("skipped not_image ") and "left in the source" in text
    # An archived file links to its item.
    assert f'<a href="/photos/{video.hothash}/"><code>photos/MVI_0001.MP4</code></a>' in html
    assert "all (4)" in html and "archived (2)" in html and "companion (1)" in html and "skipped (1)" in html
    assert "failed (" not in html  # a fate no file met is not offered


def test_the_source_files_filter_by_fate_and_page_without_losing_the_thumbnails_page(logged_in, session, monkeypatch):
    only_skipped = source_rows(logged_in.get(f"/sessions/{session.pk}/?fate=skipped").content.decode())
    assert list(only_skipped) == ["notes.txt"]
    assert len(source_rows(logged_in.get(f"/sessions/{session.pk}/?fate=nonsense").content.decode())) == 4
    empty = logged_in.get(f"/sessions/{session.pk}/?fate=failed").content.decode()
    assert source_rows(empty) == {} and "No source file met this fate." in empty

    monkeypatch.setattr("imports.views.SOURCE_FILES_PER_PAGE", 1)
    monkeypatch.setattr("imports.views.THUMBS_PER_PAGE", 1)
    first = logged_in.get(f"/sessions/{session.pk}/?fate=archived").content.decode()
    assert list(source_rows(first)) == ["DSCN0010.jpg"]
    assert 'href="?fate=archived&amp;files_page=2#source-files" rel="next"' in first
    second = logged_in.get(f"/sessions/{session.pk}/?fate=archived&files_page=2").content.decode()
    assert list(source_rows(second)) == ["MVI_0001.MP4"]
    # The thumbnails' pager keeps the list's filter and page, and the list's pager keeps the thumbnails' page.
    assert 'href="?fate=archived&amp;files_page=2&amp;page=2" rel="next"' in second
    both = logged_in.get(f"/sessions/{session.pk}/?fate=archived&files_page=2&page=2").content.decode()
    assert 'href="?fate=archived&amp;page=2&amp;files_page=1#source-files" rel="prev"' in both
    assert "Page 2 of 2" in both


# --- the verify button ---------------------------------------------------------------------------------


def test_the_verify_button_starts_the_job_and_the_verdict_shows(logged_in, session, card):
    page = logged_in.get(f"/sessions/{session.pk}/").content.decode()
    assert "Not verified yet." in page
    assert f'action="/sessions/{session.pk}/verify-source/"' in page and "Verify source (safe to format?)" in page

    response = logged_in.post(f"/sessions/{session.pk}/verify-source/")
    assert response.status_code == 302 and response["Location"] == f"/sessions/{session.pk}/#verify"
    job = Job.objects.get()
    assert (job.kind, job.status, job.session) == ("verify_source", "queued", session)
    assert job.storage == session.file_storage
    running = logged_in.get(f"/sessions/{session.pk}/").content.decode()
    assert f'data-job-id="{job.pk}" data-status="queued" data-reload-when-done' in running
    assert "Not verified yet." in running

    assert job_run(job.pk).status == "succeeded"
    verdict = logged_in.get(f"/sessions/{session.pk}/").content.decode()
    assert "data-job-id" not in verdict
    assert '<span class="badge bad">Not safe to format</span> 1 file of the source folder is not' in verdict
    assert "<dt>Checked</dt><dd>4 files in" in verdict and "<dt>In the storage</dt><dd>3</dd>" in verdict
    assert re.search(r"<td><code>notes\.txt</code></td><td><code>not_archived</code> no file with these bytes", verdict)

    # The note is taken off the card: now every file of it is in the storage.
    (card / "notes.txt").unlink()
    logged_in.post(f"/sessions/{session.pk}/verify-source/")
    assert job_run(Job.objects.filter(status="queued").get().pk).status == "succeeded"
    safe = logged_in.get(f"/sessions/{session.pk}/").content.decode()
    assert '<span class="badge ok">Safe to format</span>' in safe
    assert "<dt>Checked</dt><dd>3 files in" in safe and "Files that are not safe" not in safe


def test_a_failed_verification_says_why(logged_in, session, card):
    logged_in.post(f"/sessions/{session.pk}/verify-source/")
    shutil.rmtree(card)  # the card is gone by the time the worker runs
    assert job_run(Job.objects.get().pk).status == "failed"
    html = logged_in.get(f"/sessions/{session.pk}/").content.decode()
    assert '<span class="badge bad">No verdict</span>' in html and "failed: " in html


def test_verifying_with_the_drive_unplugged_is_refused_and_starts_nothing(logged_in, session, drive, allowed_root):
    drive.rename(allowed_root / "unplugged")
    page = logged_in.get(f"/sessions/{session.pk}/").content.decode()
    assert 'disabled aria-describedby="verify-why"' in page
    response = logged_in.post(f"/sessions/{session.pk}/verify-source/", follow=True)
    assert b"The source cannot be verified now." in response.content and b"unavailable" in response.content
    assert not Job.objects.exists()


def test_verifying_needs_the_csrf_token_and_a_known_session(admin_user, session, logged_in):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(admin_user)
    assert strict.post(f"/sessions/{session.pk}/verify-source/").status_code == 403
    assert logged_in.post("/sessions/999/verify-source/").status_code == 404
    assert logged_in.get(f"/sessions/{session.pk}/verify-source/").status_code == 405
    assert not Job.objects.exists()


# --- the item pages ------------------------------------------------------------------------------------


def test_the_video_page_plays_the_original(logged_in, video):
    html = logged_in.get(f"/photos/{video.hothash}/").content.decode()
    assert "<title>Video" in html and "Untitled video" in html
    tag = re.search(r"<video [^>]*>", html).group(0)
    assert 'controls preload="metadata"' in tag
    assert f'src="{original_url(video)}"' in tag
    assert f'poster="/photos/{video.hothash}/hotpreview.jpg"' in tag
    assert "<dt>Duration</dt><dd>0:05 (5.0 s)</dd>" in html
    assert "<dt>Codec</dt><dd><code>mpeg4</code></dd>" in html
    assert "190 × 240 px" in html
    assert "style=" not in html and "<script>" not in html  # nothing inline for the policy to refuse

    src = re.search(r'src="([^"]+)"', tag).group(1)
    response = logged_in.get(src)
    assert response.status_code == 200
    assert response["Content-Type"] == "video/mp4" and response["Accept-Ranges"] == "bytes"
    data = (video_file(video).file_storage.full_path / video_file(video).relative_path).read_bytes()
    assert response["Content-Length"] == str(len(data)) and body(response) == data
    assert response["Content-Disposition"] == 'inline; filename="MVI_0001.MP4"'
    assert response["Cache-Control"] == "private, no-cache"


def test_the_photo_page_lists_its_sidecar_with_its_role(logged_in, session):
    photo = Photo.objects.get(media_type="photo")
    html = logged_in.get(f"/photos/{photo.hothash}/").content.decode()
    assert "<video" not in html and f'src="/photos/{photo.hothash}/preview.jpg"' in html
    rows = {
        re.search(r"<code>([^<]+)</code>", row).group(1): re.findall(r"<td>([^<]*)</td>", row)
        for row in re.findall(r"<tr>(.*?)</tr>", html, re.S)
        if "<code>photos/" in row
    }
    assert rows["photos/DSCN0010.jpg"][0] == "original" and rows["photos/DSCN0010.xmp"][0] == "sidecar"
    original = logged_in.get(original_url(photo))
    assert (original.status_code, original["Content-Type"]) == (200, "image/jpeg")
    assert body(original)[:3] == b"\xff\xd8\xff"


def test_the_video_page_with_the_drive_unplugged_shows_the_poster_and_why(logged_in, video, drive, allowed_root):
    drive.rename(allowed_root / "unplugged")
    html = logged_in.get(f"/photos/{video.hothash}/").content.decode()
    assert "<video" not in html
    assert f'<img src="/photos/{video.hothash}/hotpreview.jpg"' in html
    assert "unavailable" in html and "The video plays here once its drive is connected." in html


# --- the original's route ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header, cut",
    [
        ("bytes=100-199", slice(100, 200)),
        ("bytes=-50", slice(-50, None)),
        ("bytes=1000-", slice(1000, None)),
        ("bytes=0-0", slice(0, 1)),
        ("bytes=245000-999999999", slice(245000, None)),  # cut at the end of the file
    ],
)
def test_a_range_is_answered_with_exactly_its_bytes(logged_in, video, header, cut):
    data = (video_file(video).file_storage.full_path / video_file(video).relative_path).read_bytes()
    expected = data[cut]
    first = len(data) - len(expected) if cut.start is None or cut.start < 0 else cut.start
    response = logged_in.get(original_url(video), headers={"Range": header})
    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes {first}-{first + len(expected) - 1}/{len(data)}"
    assert response["Content-Length"] == str(len(expected))
    assert response["Content-Type"] == "video/mp4" and response["Accept-Ranges"] == "bytes"
    assert body(response) == expected


def test_a_range_past_the_end_is_416(logged_in, video):
    size = video_file(video).file_size
    response = logged_in.get(original_url(video), headers={"Range": "bytes=999999999-"})
    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{size}" and response["Accept-Ranges"] == "bytes"


@pytest.mark.parametrize("header", ["bytes=0-9,20-29", "bytes=5-3", "items=0-9", "bytes=abc"])
def test_several_ranges_or_a_malformed_one_get_the_whole_file(logged_in, video, header):
    response = logged_in.get(original_url(video), headers={"Range": header})
    assert response.status_code == 200 and "Content-Range" not in response
    assert len(body(response)) == video_file(video).file_size


def test_if_range_and_conditional_requests_name_the_version_on_the_drive(logged_in, video):
    url = original_url(video)
    etag = logged_in.get(url)["ETag"]
    same = logged_in.get(url, headers={"Range": "bytes=0-9", "If-Range": etag})
    assert same.status_code == 206 and len(body(same)) == 10
    other = logged_in.get(url, headers={"Range": "bytes=0-9", "If-Range": '"another-version"'})
    assert other.status_code == 200 and len(body(other)) == video_file(video).file_size
    stale_416 = logged_in.get(url, headers={"Range": "bytes=999999999-", "If-Range": '"another-version"'})
    assert stale_416.status_code == 200  # the Range is void, so it cannot be unsatisfiable
    cached = logged_in.get(url, headers={"If-None-Match": etag})
    assert cached.status_code == 304 and cached["ETag"] == etag

    # The file changes on the drive: its ETag changes with it, and an If-Range naming the old one gets it all.
    path = video_file(video).file_storage.full_path / video_file(video).relative_path
    os.utime(path, ns=(time.time_ns(), time.time_ns() - 10**9))
    assert logged_in.get(url)["ETag"] != etag
    assert logged_in.get(url, headers={"Range": "bytes=0-9", "If-Range": etag}).status_code == 200


def test_an_anonymous_or_non_staff_request_is_refused(client, video, django_user_model):
    response = client.get(original_url(video), headers={"Range": "bytes=0-99"})
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    client.force_login(django_user_model.objects.create_user("guest", password="guest-password-1"))
    assert client.get(original_url(video)).status_code == 403


def test_an_unknown_item_is_404(logged_in, session):
    assert logged_in.get("/photos/video:" + "0" * 32 + "/original").status_code == 404


def test_an_unplugged_drive_answers_a_page_saying_so(logged_in, video, drive, allowed_root):
    drive.rename(allowed_root / "unplugged")
    response = logged_in.get(original_url(video), headers={"Range": "bytes=0-99"})
    assert response.status_code == 409
    html = response.content.decode()
    assert "<h1>The original cannot be opened now</h1>" in html
    assert "Storage &#x27;Main drive&#x27; is unavailable" in html and "Connect the drive" in html
    assert f'href="/photos/{video.hothash}/"' in html


def test_a_link_in_place_of_the_video_is_not_followed(logged_in, video, allowed_root):
    secret = allowed_root / "secret.bin"
    secret.write_bytes(b"SECRET-BYTES" * 100)
    path = video_file(video).file_storage.full_path / video_file(video).relative_path
    path.unlink()
    path.symlink_to(secret)
    response = logged_in.get(original_url(video))
    assert response.status_code == 409
    assert b"SECRET-BYTES" not in response.content and b"a symbolic link, not a file" in response.content


def test_a_pipe_in_place_of_the_video_is_never_waited_on(logged_in, video):
    path = video_file(video).file_storage.full_path / video_file(video).relative_path
    path.unlink()
    os.mkfifo(path)
    started = time.monotonic()
    response = logged_in.get(original_url(video))
    assert response.status_code == 409 and b"a named pipe, not a file" in response.content
    assert time.monotonic() - started < 10


def test_a_file_gone_from_the_drive_is_404_with_the_reason(logged_in, video):
    (video_file(video).file_storage.full_path / video_file(video).relative_path).unlink()
    response = logged_in.get(original_url(video))
    assert response.status_code == 404 and b"is not on the drive: it was moved or deleted" in response.content


def test_an_item_whose_every_original_is_missing_is_404(logged_in, video):
    video.files.update(status="missing")
    assert logged_in.get(original_url(video)).status_code == 404
    page = logged_in.get(f"/photos/{video.hothash}/").content.decode()
    assert "<video" not in page and "every one is missing" in page


def test_the_video_is_streamed_in_chunks_and_its_descriptor_closed_when_dropped_half_read(
    logged_in, video, monkeypatch
):
    monkeypatch.setattr("imports.views.ORIGINAL_CHUNK", 1000)
    path = str(video_file(video).file_storage.full_path / video_file(video).relative_path)

    def open_on_the_video():
        found = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                found += [fd] if os.readlink(f"/proc/self/fd/{fd}") == path else []
            except OSError:
                pass  # the listing's own descriptor, gone already
        return found

    response = logged_in.get(original_url(video), headers={"Range": "bytes=500-"})
    assert response.status_code == 206 and len(open_on_the_video()) == 1
    chunks = iter(response.streaming_content)
    assert [len(next(chunks)), len(next(chunks))] == [1000, 1000]
    response.close()  # the client went away
    assert open_on_the_video() == []


# --- the parts, without a database ---------------------------------------------------------------------


@pytest.mark.database_independent
@pytest.mark.parametrize(
    "header, size, expected",
    [
        (None, 1000, None),
        ("", 1000, None),
        ("bytes=0-0", 1000, (0, 0)),
        ("bytes=0-999", 1000, (0, 999)),
        ("bytes=0-5000", 1000, (0, 999)),
        ("bytes=500-", 1000, (500, 999)),
        ("bytes=999-", 1000, (999, 999)),
        ("bytes=-1", 1000, (999, 999)),
        ("bytes=-1000", 1000, (0, 999)),
        ("bytes=-5000", 1000, (0, 999)),
        ("BYTES=1-2", 1000, (1, 2)),
        ("bytes= 1-2 ", 1000, (1, 2)),
        ("bytes=-3", 2, (0, 1)),
        # Ignored, so the whole file is sent: malformed, another unit, several ranges, too long.
        ("bytes=5-3", 1000, None),
        ("bytes=-", 1000, None),
        ("bytes=", 1000, None),
        ("bytes", 1000, None),
        ("bytes=abc", 1000, None),
        ("bytes=1-2-3", 1000, None),
        ("bytes=+1-2", 1000, None),
        ("bytes=1.5-2", 1000, None),
        ("bytes=１-2", 1000, None),  # a full-width digit is no digit here
        ("bytes=²-3", 1000, None),
        ("items=0-1", 1000, None),
        ("bytes 0-1", 1000, None),
        ("bytes=0-1,5-6", 1000, None),
        ("bytes=0-1, 5-6", 1000, None),
        ("bytes=0-1,", 1000, None),
        ("bytes=0-" + "9" * 300, 1000, None),
    ],
)
def test_parse_byte_range(header, size, expected):
    assert parse_byte_range(header, size) == expected


@pytest.mark.database_independent
@pytest.mark.parametrize(
    "header, size",
    [("bytes=1000-", 1000), ("bytes=1000-2000", 1000), ("bytes=-0", 1000), ("bytes=0-", 0), ("bytes=-5", 0)],
)
def test_parse_byte_range_unsatisfiable(header, size):
    with pytest.raises(RangeNotSatisfiable):
        parse_byte_range(header, size)


@pytest.mark.database_independent
@pytest.mark.parametrize(
    "seconds, label",
    [
        (None, None),
        (float("nan"), None),
        (-1, None),
        (0, "0:00"),
        (5.0, "0:05"),
        (4.6, "0:05"),
        (59.6, "1:00"),
        (600, "10:00"),
        (3600, "1:00:00"),
        (3725.2, "1:02:05"),
    ],
)
def test_duration_label(seconds, label):
    assert duration_label(seconds) == label
