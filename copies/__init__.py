"""Copies across storages (issue 17): replication, the copy count, migration, repair and moves between storages,
as git-annex keeps files. The top room: it uses indexing, imports and storages, and nothing uses it but doors."""
