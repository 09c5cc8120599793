"""Migration across storages (issue 17)."""

JOB_RUNNERS: dict = {}
