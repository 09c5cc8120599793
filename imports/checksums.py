"""File identity: the xxh3-128 checksum of a file's bytes, streamed in 1 MiB chunks (DESIGN §2)."""

import os

import xxhash

CHUNK = 1024 * 1024


def fd_checksum(fd: int) -> str:
    """The checksum of the bytes of an open file descriptor, read from where it stands to its end (not closed)."""
    digest = xxhash.xxh3_128()
    buffer = bytearray(CHUNK)
    view, size, readv, update = memoryview(buffer), CHUNK, os.readv, digest.update
    while n := readv(fd, [buffer]):
        update(buffer if n == size else view[:n])
    return digest.hexdigest()


def drive_checksum(drive, relative) -> str:
    """The checksum of a plain file inside a storage, opened through storages.drive (nothing followed,
    a named pipe never blocks, anything but a plain file raises UnsafeLayout). `drive` is a drive.Storage."""
    fd, _ = drive.open_read(relative)
    try:
        return fd_checksum(fd)
    finally:
        os.close(fd)


def file_checksum(path) -> str:
    """The checksum of an import source's file (outside any storage; a storage's files go by drive_checksum)."""
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
