"""API tokens: bearer credentials for scripts, stored only as a SHA-256 digest.

The plain token is shown once, when it is made. Revoking is final: it sets revoked_at and overwrites the digest, so
the row stays for the audit trail but no token can ever match it again, whatever later happens to revoked_at.
"""

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

TOKEN_PREFIX = "ilk_"
# A revoked token's digest: the colon keeps it from ever equalling a SHA-256 hex digest,
# the random part keeps it unique.
REVOKED_DIGEST_PREFIX = "revoked:"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class ApiToken(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    hint = models.CharField(
        max_length=12, editable=False, help_text="The token's first characters, to tell tokens apart."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        state = "revoked" if self.revoked_at else "active"
        return f"{self.hint}… ({self.user}, {state})"

    @classmethod
    def issue(cls, *, user, name: str = "") -> tuple["ApiToken", str]:
        """Create a token and return it with its plain text, which is never stored."""
        token = cls(user=user, name=name)
        plain = token.set_new_secret()
        token.save()
        return token, plain

    def set_new_secret(self) -> str:
        """Give an unsaved token its secret: store the digest and hint, return the plain text."""
        plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
        self.digest, self.hint = hash_token(plain), plain[:10]
        return plain

    @classmethod
    def authenticate(cls, plain: str):
        """The active user that owns this token, or None."""
        if not plain or len(plain) > 200:
            return None
        token = (
            cls.objects.select_related("user")
            .filter(digest=hash_token(plain), revoked_at__isnull=True, user__is_active=True)
            .first()
        )
        if token is None:
            return None
        now = timezone.now()
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
            cls.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user

    def revoke(self):
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.digest = REVOKED_DIGEST_PREFIX + secrets.token_hex(16)
            self.save(update_fields=["revoked_at", "digest"])

    def save(self, *args, **kwargs):
        if self.pk is not None and self.revoked_at is None:
            if type(self).objects.filter(pk=self.pk, revoked_at__isnull=False).exists():
                raise ValueError(f"API token {self.hint}… is revoked, and a revoked token stays revoked.")
        super().save(*args, **kwargs)
