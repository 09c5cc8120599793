"""The indexing app, at the top: the JSON indexes a storage describes itself with, and the long work over a
storage (scan, validation, recovery and its drill, health). It wraps the storage and import operations that must
leave the indexes rewritten (rewrite.py)."""
