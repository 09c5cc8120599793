"""Import benchmark: ImaLink's import of N distinct 12-megapixel JPEGs, and of M short MP4s, against bare baselines.

The photo baseline does the same work in plain Python (read, xxh3-128, draft decode, 200 px thumbnail, JPEG encode,
fsync'ed copy and a read-back) with a multiprocessing pool of the same size, with no Django and no Celery. The video
baseline does a video's share of it the same way (read, xxh3-128, PyAV's open with FFmpeg's usual probe, the first
keyframe decoded, scaled to 800 px, a 200 px poster, JPEG encode, fsync'ed copy and a read-back); the lean video
baseline, shown beside it but not the target's, does the least any video import can (a probe that decodes nothing,
one keyframe decoded on one thread, one scale straight to 200 px). Beside each, a plain read of the same bytes
(1 MiB chunks, one process). ImaLink is measured in-process (import_folder) and end to end (HTTP API -> Redis -> a
real Celery worker). Every run reads its sources warm, as they are left by their making, a sync and a read.
The videos (seconds of moving noise, 1080p30 H.264 by PyAV's libx264, else MPEG-4 Part 2, with a fixed seed) are
made once, untimed, and kept in var/bench/ as the JPEGs are. Prints a table and writes the figures to
benchmarks/results/import.json (--only-videos replaces the video figures there and keeps the photo ones).

    .venv/bin/python benchmarks/import_benchmark.py [--files 500] [--videos 40] [--processes 2] [--rounds 1]
        [--only-videos]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("IMALINK_CORPUS", REPO.parent / "shared" / "corpus"))
BASE_PHOTO = CORPUS / "jpeg/camera/20240427_234934.JPG"  # Sony phone, 4032x3024 (12.2 MP)
RESULTS = REPO / "benchmarks" / "results"


def _make_one(args):
    index, folder = args
    from PIL import Image, ImageDraw

    with Image.open(BASE_PHOTO) as base:
        exif = base.info.get("exif")
        image = base.convert("RGB")
    draw = ImageDraw.Draw(image)
    x, y = (index * 97) % (image.width - 200), (index * 61) % (image.height - 200)
    draw.rectangle((x, y, x + 180, y + 180), fill=((index * 37) % 256, (index * 11) % 256, (index * 73) % 256))
    image.save(folder / f"DSC_{index:05d}.JPG", quality=90, exif=exif or b"")
    return index


def make_source(count: int, processes: int) -> Path:
    """N distinct 12 MP camera JPEGs (different pixels, so different checksums and hothashes), cached."""
    folder = REPO / "var" / "bench" / f"import-source-{count}"
    done = folder.with_name(folder.name + ".complete")
    if done.exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    with Pool(processes) as pool:
        for _ in pool.imap_unordered(_make_one, [(i, folder) for i in range(count)]):
            pass
    done.touch()
    return folder


VIDEO_SIZE = (1920, 1080)
VIDEO_FPS = 30
VIDEO_SECONDS = 2
VIDEO_BITRATE = 16_000_000  # a phone's 1080p30; about 5 MB a clip
VIDEO_SEED = 16_000


def _make_video(args):
    """One MP4 of moving noise over colour blobs (its own seed, so its own bytes), slid across the frame.

    The blobs matter: fine noise alone averages to flat grey at the poster search's 32x32 blank probe, so every
    clip would be taken for blank and searched frame by frame, which no camera's clip is.
    """
    index, folder, codec = args
    import random

    import av
    from PIL import Image

    rng = random.Random(VIDEO_SEED + index)
    width, height = VIDEO_SIZE
    pad = 64
    size = (width + 2 * pad, height + 2 * pad)
    blobs = Image.frombytes("RGB", (16, 9), rng.randbytes(16 * 9 * 3)).resize(size, Image.BICUBIC)
    small = (size[0] // 4, size[1] // 4)
    noise = Image.frombytes("RGB", small, rng.randbytes(small[0] * small[1] * 3)).resize(size, Image.BILINEAR)
    field = Image.blend(blobs, noise, 0.35)
    with av.open(str(folder / f"VID_{index:05d}.MP4"), "w", format="mp4") as out:
        stream = out.add_stream(codec, rate=VIDEO_FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.bit_rate = VIDEO_BITRATE
        stream.codec_context.gop_size = VIDEO_FPS  # a keyframe a second, as cameras write
        if codec == "libx264":
            stream.options = {"preset": "ultrafast", "x264-params": "nal-hrd=cbr", "maxrate": str(VIDEO_BITRATE)}
            stream.options["bufsize"] = str(VIDEO_BITRATE)
        for n in range(VIDEO_FPS * VIDEO_SECONDS):
            dx, dy = (3 * n) % (2 * pad), (2 * n) % (2 * pad)
            frame = av.VideoFrame.from_image(field.crop((dx, dy, dx + width, dy + height)))
            out.mux(stream.encode(frame.reformat(format="yuv420p")))
        out.mux(stream.encode())
    return index


def make_videos(count: int, processes: int) -> tuple[Path, str]:
    """M distinct MP4s of a few MB (made once, untimed, and cached as the JPEGs are): their folder and codec."""
    import av

    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    folder = REPO / "var" / "bench" / f"video-source-{count}-{codec}"
    done = folder.with_name(folder.name + ".complete")
    if done.exists():
        return folder, codec
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    with Pool(processes) as pool:
        for _ in pool.imap_unordered(_make_video, [(i, folder, codec) for i in range(count)]):
            pass
    done.touch()
    return folder, codec


def run_plain_read(source: Path, suffix: str) -> dict:
    """Every source file read once in 1 MiB chunks and nothing else, in this process (as the validation
    benchmark's plain read): a pool's start-up would be most of the time of reading 200 MB from the page cache."""
    files = sorted(p for p in source.iterdir() if p.suffix == suffix)
    total = 0
    started = time.perf_counter()
    for path in files:
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                total += len(chunk)
    return {"files": len(files), "seconds": time.perf_counter() - started, "bytes": total}


def _copy_and_read_back(source, dest_dir, digest) -> None:
    """The baselines' fsync'ed copy and read-back, the same for photos and videos."""
    import xxhash

    dest = Path(dest_dir) / Path(source).name
    with open(source, "rb") as src, open(dest, "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    check = xxhash.xxh3_128()
    with open(dest, "rb") as handle:
        while chunk := handle.read(1 << 20):
            check.update(chunk)
    assert check.hexdigest() == digest.hexdigest()


def _video_baseline_one(args):
    source, dest_dir = args
    from io import BytesIO

    import av
    import xxhash

    digest = xxhash.xxh3_128()
    with open(source, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    with av.open(source) as container:
        stream = container.streams.video[0]
        stream.codec_context.skip_frame = "NONKEY"
        frame = next(container.decode(stream))
        scale = min(1.0, 800 / max(frame.width, frame.height))
        image = frame.reformat(
            width=round(frame.width * scale), height=round(frame.height * scale), format="rgb24", interpolation="AREA"
        ).to_image()
        image.thumbnail((200, 200))
        image.save(BytesIO(), "JPEG", quality=85)
    _copy_and_read_back(source, dest_dir, digest)
    return os.path.getsize(source)


def _video_lean_baseline_one(args):
    """The least work any video import can do: as _video_baseline_one, but FFmpeg's probe decodes nothing (a
    decoder whitelist naming none), the keyframe is decoded on one thread, and swscale scales it straight to the
    200 px poster."""
    source, dest_dir = args
    from io import BytesIO

    import av
    import xxhash

    digest = xxhash.xxh3_128()
    with open(source, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    with av.open(source, container_options={"codec_whitelist": "none"}) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        stream.codec_context.skip_frame = "NONKEY"
        frame = next(container.decode(stream))
        scale = min(1.0, 200 / max(frame.width, frame.height))
        image = frame.reformat(
            width=round(frame.width * scale), height=round(frame.height * scale), format="rgb24", interpolation="AREA"
        ).to_image()
        image.save(BytesIO(), "JPEG", quality=85)
    _copy_and_read_back(source, dest_dir, digest)
    return os.path.getsize(source)


def _baseline_one(args):
    source, dest_dir = args
    import xxhash
    from PIL import Image

    digest = xxhash.xxh3_128()
    with open(source, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    with Image.open(source) as image:
        image.draft("RGB", (200, 200))
        image = image.convert("RGB")
        image.thumbnail((200, 200))
        xxhash.xxh3_128(image.tobytes()).hexdigest()
        from io import BytesIO

        image.save(BytesIO(), "JPEG", quality=85)
    _copy_and_read_back(source, dest_dir, digest)
    return os.path.getsize(source)


def run_baseline(source: Path, processes: int, dest: Path, *, suffix: str = ".JPG", one=_baseline_one) -> dict:
    """Each source file through `one` (the plain-Python work for a photo, or for a video) with a pool."""
    dest.mkdir()
    files = sorted(p for p in source.iterdir() if p.suffix == suffix)
    started = time.perf_counter()
    with Pool(processes) as pool:
        total = sum(pool.imap_unordered(one, [(str(f), str(dest)) for f in files], chunksize=4))
    elapsed = time.perf_counter() - started
    return {"files": len(files), "seconds": elapsed, "bytes": total}


def peak_rss_mb(pids) -> float:
    peak = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak += int(line.split()[1])
        except OSError:
            pass
    return peak / 1024


def reset_peak_rss(pid: int) -> None:
    """Start a process's VmHWM again from its present RSS (Linux clear_refs 5), so a peak is one run's own."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def django_setup(scratch: Path):
    os.environ.update(
        IMALINK_VAR_DIR=str(scratch / "var"),
        IMALINK_ALLOWED_ROOTS=f"{REPO / 'var' / 'bench'}:{scratch}",
        DJANGO_SETTINGS_MODULE="imalink.settings",
        LOG_LEVEL="WARNING",
    )
    os.environ.pop("DATABASE_URL", None)
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def new_session(scratch: Path, name: str):
    from imports.models import ImportSession
    from indexing.rewrite import storage_create

    base = scratch / name
    base.mkdir()
    storage = storage_create(base_path=str(base), display_name=name)
    return ImportSession.objects.create(title=name, file_storage=storage)


def run_in_process(source: Path, threads: int, scratch: Path, name: str) -> dict:
    from indexing.rewrite import import_folder

    session = new_session(scratch, name)
    reset_peak_rss(os.getpid())
    started = time.perf_counter()
    report = import_folder(session_id=session.pk, source_path=str(source), threads=threads)
    elapsed = time.perf_counter() - started
    assert report.imported == report.total and report.failed == 0, report.failures[:3]
    return {
        "files": report.imported,
        "seconds": elapsed,
        "bytes": report.bytes_copied,
        "peak_rss_mb": peak_rss_mb([os.getpid()]),
    }


def run_end_to_end(source: Path, processes: int, scratch: Path, name: str) -> dict | None:
    """POST the import through the API and let a real Celery worker (concurrency N) do it; a fresh worker per run."""
    import redis
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client

    from imalink.models import ApiToken
    from jobs.models import Job

    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except Exception:
        print(f"(no Redis at {url}: the end-to-end row is skipped)")
        return None
    queue = f"imalink-bench-{os.getpid()}"
    settings.CELERY_TASK_DEFAULT_QUEUE = queue
    env = {
        **os.environ,
        "IMALINK_INSTANCE": settings.IMALINK_INSTANCE,
        "IMALINK_CELERY_QUEUE": queue,
        "CELERY_BROKER_URL": url,
        "IMALINK_IMPORT_THREADS": str(processes),
        # The worker lowers itself and its session's scheduling group to IMALINK_WORKER_NICE (10) so that it
        # yields to the web server. Here it would yield to whatever else the machine runs, which the baselines
        # (at this process's priority) do not: the row would measure the neighbours, not the import.
        "IMALINK_WORKER_NICE": str(os.nice(0)),
    }
    log_path = scratch / f"worker-{name}.log"
    log = open(log_path, "wb")
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "imalink",
            "worker",
            "-Q",
            queue,
            "-c",
            str(processes),
            "-l",
            "INFO",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while b"ready." not in log_path.read_bytes():
            assert time.monotonic() < deadline and worker.poll() is None, "worker did not start"
            time.sleep(0.2)
        user = get_user_model().objects.filter(username="bench").first()
        user = user or get_user_model().objects.create_superuser("bench", "", "bench-password-123")
        token = ApiToken.issue(user=user)[1]
        session = new_session(scratch, name)
        client = Client(headers={"Authorization": f"Bearer {token}"}, SERVER_NAME="localhost")
        started = time.perf_counter()
        response = client.post(
            f"/api/v1/import-sessions/{session.pk}/import?wait=0",
            {"source_path": str(source)},
            content_type="application/json",
        )
        job_id = response.json()["data"]["job_id"]
        while not (job := Job.objects.get(pk=job_id)).is_finished:
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        assert job.status == "succeeded", job.errors
        pids = [worker.pid] + [
            int(p)
            for p in subprocess.run(["pgrep", "-P", str(worker.pid)], capture_output=True, text=True).stdout.split()
        ]
        peak = max(peak_rss_mb([p]) for p in pids)
        return {
            "files": job.result["imported"],
            "seconds": elapsed,
            "bytes": job.result["bytes_copied"],
            "peak_rss_mb": peak,
        }
    finally:
        os.killpg(worker.pid, 15)
        worker.wait(30)


TARGET_PERCENT = 70  # of the bare baseline of the same files, for photos and for videos
TARGET_FILES_PER_S_END_TO_END = 25  # photos, through the API and a worker


def median_round(found: list[dict]) -> dict:
    """The round of median time (of an even number, the slower of the middle two), with every round's files/s."""
    chosen = sorted(found, key=lambda r: r["seconds"])[len(found) // 2]
    if len(found) == 1:
        return chosen
    return {**chosen, "rounds_files_per_s": [r["files"] / r["seconds"] for r in found]}


PHOTO_ROWS = ("baseline (plain Python, pool)", "plain read of the JPEGs")
VIDEO_ROWS = (
    "video baseline (plain Python, pool)",
    "plain read of the MP4s",
    "video baseline, lean (one decode, one scale)",
)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--videos", type=int, default=40, help="MP4s of about 5 MB each (0: no video rows)")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every row this many times, interleaved, and report each row's median round (default 1)",
    )
    parser.add_argument(
        "--only-videos",
        action="store_true",
        help="run the video rows alone (no JPEGs); the photo figures in results/import.json are kept",
    )
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.only_videos and not args.videos:
        parser.error("--only-videos needs --videos above 0")
    photos = not args.only_videos

    if photos:
        print(f"Preparing {args.files} distinct 12 MP JPEGs from {BASE_PHOTO.name} ...", flush=True)
        source = make_source(args.files, args.processes)
    videos, codec = None, None
    if args.videos:
        print(f"Preparing {args.videos} MP4s ({VIDEO_SECONDS} s of 1080p{VIDEO_FPS} moving noise) ...", flush=True)
        videos, codec = make_videos(args.videos, args.processes)
    samples = {}  # name: each round's figures, and for an ImaLink run the names of what it is put beside
    with tempfile.TemporaryDirectory(dir=REPO / "var" / "bench") as tmp:
        scratch = Path(tmp)
        subprocess.run(["sync"])
        for n in range(args.rounds):  # each round runs every row once, so a busy spell falls on all of them
            if n:
                print(f"Round {n + 1} of {args.rounds} ...", flush=True)
            if photos:
                samples.setdefault(PHOTO_ROWS[0], []).append(
                    run_baseline(source, args.processes, scratch / f"baseline-{n}")
                )
                samples.setdefault(PHOTO_ROWS[1], []).append(run_plain_read(source, ".JPG"))
            if args.videos:
                run_plain_read(videos, ".MP4")  # warm, as the JPEGs are by the photo rows before
                samples.setdefault(VIDEO_ROWS[0], []).append(
                    run_baseline(
                        videos, args.processes, scratch / f"video-baseline-{n}", suffix=".MP4", one=_video_baseline_one
                    )
                )
                samples.setdefault(VIDEO_ROWS[1], []).append(run_plain_read(videos, ".MP4"))
                samples.setdefault(VIDEO_ROWS[2], []).append(
                    run_baseline(
                        videos,
                        args.processes,
                        scratch / f"video-lean-baseline-{n}",
                        suffix=".MP4",
                        one=_video_lean_baseline_one,
                    )
                )
            if not n:
                django_setup(scratch)
            # (row prefix, storage name prefix, source, what it is put beside); each run imports into a new storage
            runs = [("", "", source, PHOTO_ROWS)] if photos else []
            runs += [("videos: ", "video-", videos, VIDEO_ROWS)] if args.videos else []
            for prefix, storage, folder, beside in runs:
                found = run_in_process(folder, args.processes, scratch, f"{storage}inprocess-{n}")
                row = f"{prefix}ImaLink import_folder (in-process)"
                samples.setdefault(row, []).append({**found, "beside": beside})
                found = run_end_to_end(folder, args.processes, scratch, f"{storage}endtoend-{n}")
                if found:
                    samples.setdefault(f"{prefix}ImaLink API + Celery worker", []).append({**found, "beside": beside})
    rows = {name: median_round(found) for name, found in samples.items()}

    video_mb = rows[VIDEO_ROWS[0]]["bytes"] / rows[VIDEO_ROWS[0]]["files"] / 1e6 if args.videos else 0.0
    print(f"\nImport of {args.files} x 12 MP JPEGs and " if photos else "\nImport of ", end="")
    print(f"{args.videos} x {video_mb:.1f} MB MP4s ({codec})" if args.videos else "no videos", end="")
    print(f", {args.processes} processes, {os.cpu_count()} cores")
    print(f"{'run':44} {'files/s':>8} {'MB/s':>8} {'peak MB':>8} {'% of baseline':>14} {'% of plain read':>16}  target")
    figures = {
        "files": args.files,
        "videos": args.videos,
        "video_codec": codec,
        "video_mb_each": video_mb,
        "processes": args.processes,
        "cores": os.cpu_count(),
        "rounds": args.rounds,
        "runs": {},
    }
    for name, r in rows.items():
        entry = {**r, "files_per_s": r["files"] / r["seconds"], "mb_per_s": r["bytes"] / r["seconds"] / 1e6}
        peak = f"{r['peak_rss_mb']:.0f}" if "peak_rss_mb" in r else "-"
        shares = target = ""
        if "beside" in r:
            baseline, plain, *lean = (figures["runs"][b] for b in r["beside"])
            entry["percent_of_baseline"] = 100 * entry["files_per_s"] / baseline["files_per_s"]
            entry["percent_of_plain_read"] = 100 * entry["mb_per_s"] / plain["mb_per_s"]
            shares = f"{entry['percent_of_baseline']:13.0f}% {entry['percent_of_plain_read']:15.0f}%"
            target = f"≥ {TARGET_PERCENT}%: {'met' if entry['percent_of_baseline'] >= TARGET_PERCENT else 'NOT met'}"
            if name == "ImaLink API + Celery worker":
                met = entry["files_per_s"] >= TARGET_FILES_PER_S_END_TO_END
                target += f"; ≥ {TARGET_FILES_PER_S_END_TO_END} files/s: {'met' if met else 'NOT met'}"
            if lean:
                entry["percent_of_lean_baseline"] = 100 * entry["files_per_s"] / lean[0]["files_per_s"]
                target += f" ({entry['percent_of_lean_baseline']:.0f}% of the lean baseline)"
            if "rounds_files_per_s" in r:  # each round against its own round's baseline, too
                paired = zip(r["rounds_files_per_s"], baseline["rounds_files_per_s"])
                entry["rounds_percent_of_baseline"] = [100 * mine / theirs for mine, theirs in paired]
        print(f"{name:44} {entry['files_per_s']:8.1f} {entry['mb_per_s']:8.1f} {peak:>8} {shares:>31}  {target}")
        figures["runs"][name] = entry
    for name, entry in figures["runs"].items():
        if "rounds_percent_of_baseline" in entry:
            each = ", ".join(f"{x:.0f}" for x in entry["rounds_percent_of_baseline"])
            print(f"{name}: each round, % of that round's baseline: {each}")
    figures["targets"] = {
        "files_per_s_end_to_end": TARGET_FILES_PER_S_END_TO_END,
        "percent_of_baseline": TARGET_PERCENT,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    results = RESULTS / "import.json"
    if not photos and results.exists():
        # Keep the last full run's photo figures beside these video ones, and say which run they come from.
        earlier = json.loads(results.read_text())
        kept = {k: v for k, v in earlier.get("runs", {}).items() if not (k in VIDEO_ROWS or k.startswith("videos: "))}
        figures["files"] = earlier.get("files")
        figures["runs"] = {**kept, **figures["runs"]}
        figures["photo_rows_from_an_earlier_run"] = True
    results.write_text(json.dumps(figures, indent=2))
    print(f"\nFigures written to {results}")


if __name__ == "__main__":
    main()
