"""Background work yields the CPU to people: the Celery worker runs at a lower scheduling priority than the web.

On Linux a nice value orders processes only within one scheduling group, and each session is its own group
(autogroup, on by default). honcho (`make run`), most supervisors and the benchmarks start every process in a
session of its own, where os.nice alone changes nothing against the web server; a process that leads its session
therefore lowers its session's group too. Under systemd or containers, cgroup weights decide first: see README.
"""

import logging
import os
from pathlib import Path

logger = logging.getLogger("imalink.priority")

AUTOGROUP = Path("/proc/self/autogroup")


def run_in_background(nice: int) -> dict:
    """Lower this process (and what it forks later) to this nice value; never raise it. Returns what was set."""
    done = {"nice": os.nice(0), "autogroup": None}
    if nice <= 0:
        return done
    if done["nice"] < nice:
        done["nice"] = os.nice(nice - done["nice"])
    if os.getsid(0) == os.getpid() and AUTOGROUP.exists():
        try:
            group_nice = int(AUTOGROUP.read_text().split()[-1])  # "/autogroup-162 nice 0"
            if group_nice < nice:  # lower only, as for the process
                AUTOGROUP.write_text(str(nice))
                group_nice = nice
            done["autogroup"] = group_nice
        except (
            OSError,
            ValueError,
            IndexError,
        ) as exc:  # not allowed here (a raise needs CAP_SYS_NICE; lowering should not): the nice value stands
            logger.info("could not lower the session's scheduling group: %s", exc)
    return done
