"""First start: seconds from `make run` in a fresh clone to the first page answering, for one or more commits.

Each commit is cloned afresh (`git clone -q <this repo> /tmp/fresh-<sha>`), `make run` is started there with a port
and var/ of its own, and /accounts/login/ is polled until it answers 200. Then `make run` gets Ctrl-C (SIGINT to
its process group), anything still running from the clone is killed, and the clone is removed.

By default it compares the commit before the Makefile split the runtime and test installs (issue 14) with HEAD.
pip's cache is off (PIP_NO_CACHE_DIR), as on a machine that never installed ImaLink; --pip-cache keeps it.

    .venv/bin/python benchmarks/first_start_benchmark.py [COMMIT ...]
"""

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "first_start.json"
SERVING = "ImaLink on http://localhost:"  # serve's line once the install and the migrations are done


def git(*args: str, cwd: Path = REPO) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def default_commits() -> list[str]:
    split = git("log", "--format=%H", "--reverse", "-S.installed-test", "--", "Makefile").splitlines()
    if not split:
        sys.exit("No commit splits the Makefile's installs yet: name the commits to compare.")
    return [git("rev-parse", f"{split[0]}^"), git("rev-parse", "HEAD")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def processes_in(folder: Path) -> list[int]:
    """Processes whose working folder is inside the clone: what `make run` started there, however deep."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if Path(os.readlink(entry / "cwd")).is_relative_to(folder):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def stop(make: subprocess.Popen, clone: Path) -> None:
    try:
        os.killpg(make.pid, signal.SIGINT)  # Ctrl-C
        make.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(make.pid, signal.SIGKILL)
        make.wait(10)
    except ProcessLookupError:
        pass
    for pid in processes_in(clone):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def folder_mb(folder: Path) -> float:
    return sum(p.lstat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink()) / 1e6


def first_start(commit: str, args) -> dict:
    clone = Path(f"/tmp/fresh-{commit[:10]}")
    shutil.rmtree(clone, ignore_errors=True)
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    git("checkout", "-q", commit, cwd=clone)
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("IMALINK_", "CELERY_", "MAKE", "MFLAGS"))
        and k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE", "VIRTUAL_ENV", "PYTHONPATH")
    }
    env.update(IMALINK_PORT=str(port), IMALINK_VAR_DIR=str(clone / "var"))
    if not args.pip_cache:
        env["PIP_NO_CACHE_DIR"] = "1"
    log = clone / "make-run.log"
    url = f"http://localhost:{port}/accounts/login/"
    print(f"{commit[:10]}: make run in {clone} (port {port}) ...", flush=True)
    began = time.monotonic()
    make = subprocess.Popen(
        ["make", "run", f"PYTHON={args.python}"],
        cwd=clone,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    serving = page = None
    try:
        while time.monotonic() - began < args.timeout and make.poll() is None:
            if serving is None and SERVING in log.read_text(errors="replace"):
                serving = time.monotonic() - began
            if serving is not None and answers(url):
                page = time.monotonic() - began
                break
            time.sleep(0.25)
    finally:
        stop(make, clone)
    if page is None:
        print(log.read_text(errors="replace")[-3000:])
        raise SystemExit(
            f"{commit[:10]}: no page after {time.monotonic() - began:.0f} s (make exited {make.returncode})"
        )
    listed = subprocess.run(
        [str(clone / ".venv" / "bin" / "python"), "-m", "pip", "list", "--format=json"], capture_output=True, text=True
    )
    row = {
        "commit": commit,
        "subject": git("log", "-1", "--format=%s", commit),
        "seconds_to_first_page": round(page, 1),
        "seconds_to_serve": round(serving, 1),
        "packages_installed": len(json.loads(listed.stdout or "[]")),
        "venv_mb": round(folder_mb(clone / ".venv")),
        "test_extras_installed": any(p["name"].lower() == "pytest" for p in json.loads(listed.stdout or "[]")),
    }
    if not args.keep:
        shutil.rmtree(clone, ignore_errors=True)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("commits", nargs="*", help="commits to measure (default: before the install split, and HEAD)")
    parser.add_argument("--python", default="python3", help="the Python that makes the venv (make's PYTHON)")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument(
        "--pip-cache", action="store_true", help="let pip use its cache (a machine that installed before)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the clones under /tmp")
    args = parser.parse_args()
    commits = [git("rev-parse", c) for c in args.commits] or default_commits()
    rows = [first_start(commit, args) for commit in commits]

    print(f"\n{'commit':<11} {'first page':>10} {'serving':>8} {'packages':>8} {'venv MB':>8} {'pytest':>6}  subject")
    for row in rows:
        print(
            f"{row['commit'][:10]:<11} {row['seconds_to_first_page']:>9.1f}s {row['seconds_to_serve']:>7.1f}s "
            f"{row['packages_installed']:>8} "
            f"{row['venv_mb']:>8} {'yes' if row['test_extras_installed'] else 'no':>6}  {row['subject'][:70]}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "what": "seconds from `make run` in a fresh clone to /accounts/login/ answering 200 "
                "(serving: to serve's 'ImaLink on' line, after pip and migrate)",
                "pip_cache": "used" if args.pip_cache else "off (PIP_NO_CACHE_DIR=1)",
                "machine": f"{os.cpu_count()} cores, {platform.python_version()} ({args.python}), "
                "shared with other work",
                "runs": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nwritten to {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
