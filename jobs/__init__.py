"""The jobs app, just above imalink: the Job row, and how long work is started, claimed, run, reported and
cancelled. It knows no other app; each app registers the runners of its own job kinds (AppConfig.ready())."""
