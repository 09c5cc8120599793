"""The admin's FileStorage form: base_path may change only to a verified copy of the storage (DESIGN §6).

It asks storages.services.storage_check_migration, the same check the API uses, and shows its reason.
"""

from django import forms

from imalink.errors import ImalinkError

from .models import FileStorage
from .services import storage_check_migration


class FileStorageForm(forms.ModelForm):
    class Meta:
        model = FileStorage
        fields = ("display_name", "description", "is_active", "base_path")
        help_texts = {
            "base_path": "Changing this moves the storage to another drive. Copy the storage folder there first "
            "(e.g. rsync -a); the change is accepted only if the copy's "
            ".imalink/storage.json holds this storage's uuid.",
        }

    def clean_base_path(self):
        value = self.cleaned_data["base_path"]
        if self.instance.pk is None or value == self.instance.base_path:
            return value
        try:
            return str(storage_check_migration(self.instance, value))
        except ImalinkError as exc:
            raise forms.ValidationError(exc.message, code=exc.code) from None
