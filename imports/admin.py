"""Authors, sessions, photos and files in the admin."""

from django.contrib import admin

from .models import Author, ImageFile, ImportSession, Photo


@admin.register(Author)
class AuthorAdmin(admin.ModelAdmin):
    list_display = ("name", "email", "created_at")
    search_fields = ("name", "email")


@admin.register(ImportSession)
class ImportSessionAdmin(admin.ModelAdmin):
    list_display = ("id", "title", "file_storage", "imported_at", "default_author")
    list_filter = ("file_storage",)
    search_fields = ("title", "description", "source_path")
    readonly_fields = ("imported_at",)
    raw_id_fields = ("default_author",)


class ImageFileInline(admin.TabularInline):
    model = ImageFile
    extra = 0
    can_delete = False
    fields = ("relative_path", "file_format", "file_size", "checksum", "is_primary", "status", "file_storage")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Photo)
class PhotoAdmin(admin.ModelAdmin):
    list_display = ("hothash_short", "title", "taken_at", "camera_model", "rating")
    list_filter = ("rating", "has_hotpreview")
    search_fields = ("hothash", "title", "description", "camera_make", "camera_model")
    readonly_fields = ("hothash", "hothash_version", "width", "height", "has_hotpreview", "created_at", "updated_at")
    exclude = ("hotpreview",)
    raw_id_fields = ("author",)
    inlines = [ImageFileInline]

    @admin.display(description="hothash")
    def hothash_short(self, obj):
        return obj.hothash[:16]


@admin.register(ImageFile)
class ImageFileAdmin(admin.ModelAdmin):
    list_display = ("relative_path", "file_format", "file_size", "status", "is_primary", "file_storage")
    list_filter = ("status", "file_format", "file_storage")
    search_fields = ("relative_path", "original_filename", "checksum")
    # Paths and checksums describe files on disk: scans and imports keep them true, hand edits would not.
    readonly_fields = (
        "photo",
        "import_session",
        "file_storage",
        "relative_path",
        "original_filename",
        "file_format",
        "file_size",
        "mtime_ns",
        "checksum",
        "is_primary",
        "status",
        "last_seen_at",
        "created_at",
    )
