"""The imports app, above storages: authors, import sessions, photos and their files, and the import itself
(pipeline.py), with the hasher, the media reader and the running totals it keeps."""
