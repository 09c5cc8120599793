"""API tokens in the admin: a new token is shown once; revocation is final."""

from django import forms
from django.contrib import admin
from django.template.response import TemplateResponse
from django.urls import reverse

from .models import ApiToken


class ApiTokenForm(forms.ModelForm):
    revoke = forms.BooleanField(
        required=False, label="Revoke this token", help_text="Final: a revoked token never works again."
    )

    class Meta:
        model = ApiToken
        fields = ("user", "name")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    form = ApiTokenForm
    list_display = ("hint", "name", "user", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("name", "user__username", "hint")
    readonly_fields = ("hint", "created_at", "last_used_at", "revoked_at")
    actions = ["revoke"]

    def get_readonly_fields(self, request, obj=None):
        # Whose token it is is fixed when it is made: moving it to another user would hand them its holder's access.
        return self.readonly_fields if obj is None else ("user", *self.readonly_fields)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("user", "name")
        fields = ("user", "name", "hint", "created_at", "last_used_at", "revoked_at")
        return fields if obj.revoked_at else (*fields, "revoke")

    def add_view(self, request, form_url="", extra_context=None):
        # Every add answers with the page that shows the new token, so the other save buttons would only mislead.
        extra_context = {**(extra_context or {}), "show_save_and_continue": False, "show_save_and_add_another": False}
        return super().add_view(request, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        if not change:
            # Only the digest is stored; the plain text lives on this object until response_add shows it.
            obj.plain_text = obj.set_new_secret()
        super().save_model(request, obj, form, change)
        if change and form.cleaned_data.get("revoke"):
            obj.revoke()

    def response_add(self, request, obj, post_url_continue=None):
        """The new token's one showing: in this page's body, never in a message, a cookie or a redirect."""
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "New API token",
            "token": obj,
            "plain_text": obj.plain_text,
            "changelist_url": reverse("admin:imalink_apitoken_changelist"),
        }
        return TemplateResponse(request, "admin/imalink/apitoken/created.html", context)

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset):
        tokens = list(queryset.filter(revoked_at__isnull=True))
        for token in tokens:
            token.revoke()
        self.message_user(request, f"Revoked {len(tokens)} token(s).")
