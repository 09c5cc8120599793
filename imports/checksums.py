"""File identity: the xxh3-128 checksum of a file's bytes, streamed in 1 MiB chunks (DESIGN §2)."""

import os

import xxhash

# 1 MiB as in DESIGN §2, read into one reused buffer: a fresh 1 MiB bytes per read() can cost a new mmap'ed
# allocation each time. Larger chunks were no faster warm and slower cold (benchmarks/validate_benchmark.py).
CHUNK = 1024 * 1024


def fd_checksum(fd: int, buffer: bytearray | None = None) -> tuple[str, int]:
    """(checksum, bytes read) of an open file descriptor, read from where it stands to its end (not closed).

    Every chunk is read into `buffer` with readv, never allocated per chunk; a caller hashing many files passes
    one buffer for them all (a bytearray of CHUNK bytes, or of any size).
    """
    if buffer is None:
        buffer = bytearray(CHUNK)
    digest, view, total, size = xxhash.xxh3_128(), memoryview(buffer), 0, len(buffer)
    readv, update = os.readv, digest.update
    while n := readv(fd, [buffer]):
        update(buffer if n == size else view[:n])
        total += n
    return digest.hexdigest(), total


def drive_checksum(drive, relative) -> str:
    """The checksum of a plain file inside a storage, opened through storages.drive (nothing followed,
    a named pipe never blocks, anything but a plain file raises UnsafeLayout). `drive` is a drive.Storage."""
    fd, _ = drive.open_read(relative)
    try:
        return fd_checksum(fd)[0]
    finally:
        os.close(fd)


def file_checksum(path) -> str:
    """The checksum of an import source's file (outside any storage; a storage's files go by drive_checksum)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return fd_checksum(fd)[0]
    finally:
        os.close(fd)


def index_checksum(checksum: str) -> str:
    """How indexes record a checksum, naming the algorithm so it can change later."""
    return f"xxh3_128:{checksum}"
