"""Print a new API token for a user; only its digest is stored, so this is the one time it is shown."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from imalink.models import ApiToken


class Command(BaseCommand):
    help = "Create an API token for USERNAME and print it (shown once; stored hashed, revocable in the admin)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="A label, to tell tokens apart in the admin.")

    def handle(self, *args, username, name, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        if not user.is_active:
            raise CommandError(f"User {username!r} is inactive.")
        _, plain = ApiToken.issue(user=user, name=name or "command line")
        self.stdout.write(plain)
