"""Videos play on their pages in a real browser: headless Chromium loads the item pages of imported videos from the
live server (`manage.py serve`), the <video> element reads each original through the ranged file route, and the
Content-Security-Policy refuses nothing. Screenshots under test-output/.

Debian's Chromium has no decoder for the corpus MP4's MPEG-4 Part 2 video: it reads the file's metadata (its
duration), but draws no frame. So a VP9 WebM, which it does decode, is made here with PyAV for the playing and
seeking part.
"""

import shutil
from pathlib import Path

import av
from PIL import Image, ImageDraw

from imports.models import ImageFile, ImportSession
from indexing.rewrite import import_folder, storage_create
from tests.browser.test_csp import Watch
from tests.browser.test_flows import log_in

# Resolves with the element's duration once its metadata is in, or rejects with the media error the browser gives.
DURATION = """
async () => {
  const video = document.querySelector("video");
  if (video.readyState >= 1) return video.duration;
  return await new Promise((resolve, reject) => {
    video.addEventListener("loadedmetadata", () => resolve(video.duration));
    video.addEventListener("error", () => reject(new Error(`media error ${video.error.code}: ${video.error.message}`)));
    setTimeout(() => reject(new Error(`no loadedmetadata after 30 s (readyState ${video.readyState})`)), 30000);
  });
}
"""
# Plays (muted, as autoplay rules ask) until frames are drawn, then seeks near the end.
PLAY_AND_SEEK = """
async () => {
  const video = document.querySelector("video");
  video.muted = true;
  await video.play();
  const deadline = Date.now() + 20000;
  while (video.getVideoPlaybackQuality().totalVideoFrames < 5 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
  }
  video.pause();
  const seeked = new Promise((resolve) => video.addEventListener("seeked", resolve, { once: true }));
  video.currentTime = video.duration - 0.5;
  await seeked;
  return {
    width: video.videoWidth,
    height: video.videoHeight,
    frames: video.getVideoPlaybackQuality().totalVideoFrames,
    time: video.currentTime,
    error: video.error && video.error.message,
  };
}
"""


def vp9_webm(path: Path, *, seconds: int = 3, fps: int = 25, size=(160, 120)) -> Path:
    """A small VP9 WebM of a square crossing a gradient, so no frame is blank (the poster search skips those)."""
    with av.open(str(path), "w", format="webm") as out:
        stream = out.add_stream("libvpx-vp9", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for n in range(seconds * fps):
            image = Image.linear_gradient("L").resize(size).convert("RGB")
            x = n * (size[0] - 30) // (seconds * fps)
            ImageDraw.Draw(image).rectangle((x, 40, x + 30, 70), fill=(200, 40, 40))
            for packet in stream.encode(av.VideoFrame.from_image(image)):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def test_videos_play_on_their_pages(imalink_server, browser_page, allowed_root, corpus_card, tmp_path):
    page, url = browser_page, imalink_server.url
    drive = allowed_root / "drive"
    drive.mkdir()
    storage = storage_create(base_path=str(drive), display_name="Drive")
    card = allowed_root / "card"
    card.mkdir()
    shutil.copy(corpus_card / "video/quicktime.mp4", card / "MVI_0001.MP4")
    vp9_webm(card / "clip.webm")
    session = ImportSession.objects.create(title="Card", file_storage=storage)
    assert import_folder(session_id=session.pk, source_path=str(card)).imported == 2
    mp4 = ImageFile.objects.get(original_filename="MVI_0001.MP4").photo
    webm = ImageFile.objects.get(original_filename="clip.webm").photo
    assert (webm.media_type, webm.codec) == ("video", "vp9")

    watch = Watch(page)
    log_in(page, url, (tmp_path / "var" / "admin_password").read_text().strip())
    watch.visit(f"{url}/sessions/{session.pk}/", "session")
    assert sorted(page.locator(".thumbs .play").all_inner_texts()) == ["▶ 0:03", "▶ 0:05"]

    ranges = []
    page.on("request", lambda r: ranges.append(r.headers.get("range")) if r.url.endswith("/original") else None)

    # The MP4: its metadata is read through the file route.
    watch.visit(f"{url}/photos/{mp4.hothash}/", "mp4")
    assert abs(page.evaluate(DURATION) - 5.0) < 0.1
    assert any(r and r.startswith("bytes=") for r in ranges), ranges  # the element asked for a range
    watch.check("mp4-metadata")

    # The WebM: it plays, frames are drawn, and a seek lands where it was sent.
    watch.visit(f"{url}/photos/{webm.hothash}/", "webm")
    assert abs(page.evaluate(DURATION) - 3.0) < 0.1
    played = page.evaluate(PLAY_AND_SEEK)
    assert (played["width"], played["height"], played["error"]) == (160, 120, None), played
    assert played["frames"] >= 5 and abs(played["time"] - 2.5) < 0.1, played
    watch.check("webm-played")
