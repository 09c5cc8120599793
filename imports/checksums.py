"""File identity: the xxh3-128 checksum of a file's bytes, streamed in 1 MiB chunks (DESIGN §2)."""

import xxhash

CHUNK = 1024 * 1024


def file_checksum(path) -> str:
    digest = xxhash.xxh3_128()
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        # One reused buffer: allocating a fresh 1 MiB block per read costs more than hashing it.
        while n := handle.readinto(buffer):
            digest.update(view[:n])
    return digest.hexdigest()


def index_checksum(checksum: str) -> str:
    """How indexes record a checksum, naming the algorithm so it can change later."""
    return f"xxh3_128:{checksum}"
