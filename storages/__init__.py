"""The storages app, above jobs: FileStorage, the storage folder on disk (its layout, its marker, its lock) and
the one safe way to touch it (drive.py). It knows nothing of imports or indexes."""
