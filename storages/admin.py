"""Storages in the admin: edits go through storages.services and, for a migration, indexing.rewrite."""

from django.contrib import admin

from indexing.rewrite import storage_migrate

from .forms import FileStorageForm
from .models import FileStorage


@admin.register(FileStorage)
class FileStorageAdmin(admin.ModelAdmin):
    form = FileStorageForm
    list_display = ("display_name", "directory_name", "base_path", "is_active", "is_accessible", "last_scan_at")
    list_filter = ("is_active", "is_accessible")
    search_fields = ("display_name", "directory_name", "base_path", "storage_uuid")
    readonly_fields = (
        "storage_uuid",
        "directory_name",
        "created_at",
        "updated_at",
        "last_scan_at",
        "last_index_at",
        "is_accessible",
        "is_writable",
        "free_bytes",
        "total_bytes",
        "accessibility_checked_at",
        "accessibility_reason",
    )

    def has_add_permission(self, request):
        # A storage is created on disk by storages.services.storage_create (API or dashboard), never as a bare row.
        return False

    def save_model(self, request, obj, form, change):
        if not (change and "base_path" in form.changed_data):
            return super().save_model(request, obj, form, change)
        # The form has already put the new path on obj; save the other fields under the old one and let the
        # migration switch it, so accessibility is re-checked and the master index rewritten at the new place.
        new_base_path = obj.base_path
        obj.base_path = type(obj).objects.values_list("base_path", flat=True).get(pk=obj.pk)
        super().save_model(request, obj, form, change)
        report = storage_migrate(obj, new_base_path=new_base_path)
        self.message_user(
            request,
            f"Moved from {report.old_base_path} to {report.new_base_path}; "
            f"accessible: {report.accessibility['is_accessible']}.",
        )
