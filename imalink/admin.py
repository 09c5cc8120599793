from django.contrib import admin, messages
from django.utils import timezone

from .models import ApiToken, hash_token


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("hint", "name", "user", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("name", "user__username", "hint")
    readonly_fields = ("hint", "created_at", "last_used_at")
    fields = ("user", "name", "hint", "created_at", "last_used_at", "revoked_at")
    actions = ["revoke"]

    def save_model(self, request, obj, form, change):
        if not change:
            # A token made here is shown once, in the message; only its digest is stored.
            from .models import TOKEN_PREFIX
            import secrets

            plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
            obj.digest, obj.hint = hash_token(plain), plain[:10]
            messages.warning(request, f"New API token (shown only now, copy it): {plain}")
        super().save_model(request, obj, form, change)

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset):
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {count} token(s).")
