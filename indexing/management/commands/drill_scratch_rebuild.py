"""The recovery drill's scratch process (started by indexing.drill.recovery_drill, not meant for users): rebuild
into this process's own empty database and print the result as one JSON line."""

import json

from django.core.management.base import BaseCommand

from indexing.drill import scratch_rebuild


class Command(BaseCommand):
    help = "Internal to the recovery drill: rebuild from the indexes under the roots into this process's database."

    def add_arguments(self, parser):
        parser.add_argument("roots", nargs="+")

    def handle(self, *args, roots, **options):
        self.stdout.write(json.dumps(scratch_rebuild(roots)))
