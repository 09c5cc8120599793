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


class CopyForm(forms.Form):
    """ "Copy to…": the storage that receives the copies, among the others; `session` narrows it to one session."""

    target = forms.ModelChoiceField(
        queryset=FileStorage.objects.none(),
        to_field_name="storage_uuid",
        empty_label=None,
        label="Copy to",
        error_messages={"invalid_choice": "Choose another storage to copy into.", "required": "Choose a storage."},
    )
    session = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def __init__(self, source: FileStorage, *args, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.fields["target"].queryset = copy_targets(source)
        self.fields["target"].label_from_instance = copy_target_label


def copy_target_label(storage: FileStorage) -> str:
    """A target's name, and its role; "unplugged" when the last check did not find it (replication refuses it)."""
    label = f"{storage.display_name} ({storage.get_role_display().lower()}"
    return label + (", unplugged)" if storage.is_accessible is False else ")")


def copy_targets(source: FileStorage):
    """The storages a copy of `source` may go to: every other active one (replication refuses the rest)."""
    return FileStorage.objects.filter(is_active=True).exclude(pk=source.pk).order_by("display_name", "id")


class MigrateForm(forms.Form):
    new_base_path = forms.CharField(
        label="New base path",
        max_length=4096,
        help_text="An existing folder on the new drive, as an absolute path. The storage folder is copied into it.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
