"""Run several commands together and restart whichever dies: what `make run` (`manage.py serve`) uses.

honcho's Manager stops everything when one process exits. Supervisor keeps honcho's processes (each command
leads a session of its own, which imalink/priority.py relies on) and its output, but a process that dies is
started again after a back-off, with one line saying what died, how and when it comes back, while the others
keep running. SIGINT (Ctrl-C) and SIGTERM still stop them all.
"""

import datetime
import errno
import os
import queue
import signal
import time
from multiprocessing import Process as Helper

from honcho.manager import KILL_WAIT, SIGNALS, Manager

BACKOFF_FIRST = 1.0  # seconds before the first restart
BACKOFF_MAX = 30.0
STEADY_AFTER = 60.0  # a process that ran this long before it died is restarted after BACKOFF_FIRST again


def next_backoff(previous: float | None, ran_for: float) -> float:
    """1 s, then doubling up to 30 s while the process keeps dying within a minute of its start."""
    if previous is None or ran_for >= STEADY_AFTER:
        return BACKOFF_FIRST
    return min(previous * 2, BACKOFF_MAX)


def how_it_ended(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ESRCH):
            raise


class Supervisor(Manager):
    """honcho's Manager, with a loop that restarts a dead process instead of stopping the others."""

    def __init__(self, printer=None):
        super().__init__(printer)
        self._stop_requested = None  # monotonic time of the SIGINT/SIGTERM

    def loop(self):
        def _stop(signum, frame):
            if self._stop_requested is None:
                self._system_print("%s received\n" % SIGNALS[signum]["name"])
                self.returncode = SIGNALS[signum]["rc"]
                self._stop_requested = time.monotonic()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        for name in self._processes:
            self._launch(name)
        while True:
            try:
                self._handle(self.events.get(timeout=0.1))
            except queue.Empty:
                pass
            if self._stop_requested is None:
                self._restart_due()
            elif self._stopped_all():
                return

    def _launch(self, name: str) -> None:
        p = self._processes[name]
        p.pop("pid", None)
        p.pop("returncode", None)
        p.pop("signalled", None)
        p["restart_at"] = None
        p["launched"] = time.monotonic()
        p["process"] = Helper(name=name, target=p["obj"].run, args=(self.events, True))
        p["process"].start()

    def _handle(self, msg) -> None:
        p = self._processes.get(msg.name)
        if msg.type == "line":
            self._printer.write(msg)
        elif msg.type == "start":
            p["pid"] = msg.data["pid"]
            self._system_print("%s started (pid=%s)\n" % (msg.name, p["pid"]))
        elif msg.type == "stop":
            p["returncode"] = msg.data["returncode"]
            p["process"].join(KILL_WAIT)
            # Whatever it left in its process group (a pool process, say) goes with it.
            _signal_group(p["pid"], signal.SIGKILL)
            if self._stop_requested is None:
                self._schedule_restart(msg.name, p)
            else:
                self._system_print("%s stopped (rc=%s)\n" % (msg.name, p["returncode"]))

    def _schedule_restart(self, name: str, p: dict) -> None:
        ran_for = time.monotonic() - p["launched"]
        p["backoff"] = next_backoff(p.get("backoff"), ran_for)
        p["restart_at"] = time.monotonic() + p["backoff"]
        at = (self._clock.now() + datetime.timedelta(seconds=p["backoff"])).strftime("%H:%M:%S")
        self._system_print(
            f"{name} (pid {p['pid']}) died after {ran_for:.0f} s ({how_it_ended(p['returncode'])}); "
            f"restarting it in {p['backoff']:g} s, at {at}\n"
        )

    def _restart_due(self) -> None:
        now = time.monotonic()
        for name, p in self._processes.items():
            if p.get("restart_at") is not None and now >= p["restart_at"]:
                self._launch(name)

    def _running(self) -> list[dict]:
        return [p for p in self._processes.values() if "process" in p and "returncode" not in p]

    def _stopped_all(self) -> bool:
        """While stopping: SIGTERM each running process once it has a pid, SIGKILL after KILL_WAIT s."""
        running = self._running()
        if not running:
            return True
        force = time.monotonic() - self._stop_requested > KILL_WAIT
        for p in running:
            if "pid" not in p or p.get("signalled") == "SIGKILL" or (p.get("signalled") and not force):
                continue  # not started yet (it is signalled once it is), or already signalled
            p["signalled"] = "SIGKILL" if force else "SIGTERM"
            self._system_print("sending %s to %s (pid %s)\n" % (p["signalled"], p["obj"].name, p["pid"]))
            _signal_group(p["pid"], signal.SIGKILL if force else signal.SIGTERM)
        return False
