"""Reading index files from disk, which are untrusted: size-capped, parse errors reported, never raised."""

import json
import os
from dataclasses import dataclass
from pathlib import Path

MAX_INDEX_BYTES = 512 * 1024 * 1024


@dataclass
class IndexReading:
    data: dict | None
    problem: str | None  # None, "missing", or why it cannot be used


def read_index(path: Path, *, max_bytes: int = MAX_INDEX_BYTES) -> IndexReading:
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        return IndexReading(None, "missing")
    except OSError as exc:
        return IndexReading(None, f"unreadable: {exc.strerror}")
    if size > max_bytes:
        return IndexReading(None, f"too large: {size:,} bytes, over the limit of {max_bytes:,}")
    try:
        with open(path, "rb") as handle:
            data = json.loads(handle.read(max_bytes + 1))
    except OSError as exc:
        return IndexReading(None, f"unreadable: {exc.strerror}")
    except RecursionError:
        return IndexReading(None, "corrupt: nested too deeply")
    except (ValueError, MemoryError) as exc:
        return IndexReading(None, f"corrupt: {str(exc)[:200]}")
    if not isinstance(data, dict):
        return IndexReading(None, f"corrupt: the top level is a {type(data).__name__}, not an object")
    return IndexReading(data, None)
