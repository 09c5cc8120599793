"""File identity: the xxh3-128 checksum of a file's bytes, streamed in 1 MiB chunks (DESIGN §2)."""

import xxhash

CHUNK = 1024 * 1024


def file_checksum(path) -> str:
    digest = xxhash.xxh3_128()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def index_checksum(checksum: str) -> str:
    """How indexes record a checksum, naming the algorithm so it can change later."""
    return f"xxh3_128:{checksum}"
