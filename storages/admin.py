from django.contrib import admin

from .models import FileStorage


@admin.register(FileStorage)
class FileStorageAdmin(admin.ModelAdmin):
    list_display = ("display_name", "directory_name", "base_path", "is_active", "is_accessible", "last_scan_at")
    list_filter = ("is_active", "is_accessible")
    search_fields = ("display_name", "directory_name", "base_path", "storage_uuid")
    # base_path changes only through the verified migration (a later issue); until then it is shown, not edited.
    readonly_fields = (
        "storage_uuid", "directory_name", "base_path", "created_at", "updated_at", "last_scan_at", "last_index_at",
        "is_accessible", "is_writable", "free_bytes", "total_bytes", "accessibility_checked_at", "accessibility_reason",
    )

    def has_add_permission(self, request):
        # A storage is created on disk by storages.services.storage_create (API or dashboard), never as a bare row.
        return False
