"""Forms of the import pages: what a person types, checked by the same services the API uses."""

from django import forms

from storages.models import FileStorage

from .models import Author


class ImportForm(forms.Form):
    storage = forms.ModelChoiceField(
        queryset=FileStorage.objects.filter(is_active=True).order_by("display_name", "id"),
        empty_label=None,
        help_text="The storage the files are copied into.",
    )
    title = forms.CharField(max_length=300, help_text="For example “Italy 2024, day 1”.")
    description = forms.CharField(required=False, max_length=10_000, widget=forms.Textarea(attrs={"rows": 3}))
    author = forms.ModelChoiceField(
        queryset=Author.objects.all(),
        required=False,
        empty_label="— none —",
        help_text="Becomes the author of every new photo.",
    )
    source_path = forms.CharField(
        max_length=4096,
        label="Source folder",
        help_text="An absolute path on the server, for example /media/card/DCIM.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    target_subdirectory = forms.CharField(
        required=False,
        max_length=1024,
        label="Target folder under photos/",
        help_text="Optional, for example 2024/italy.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    recursive = forms.BooleanField(required=False, initial=True, label="Include subfolders")


class PhotoForm(forms.Form):
    title = forms.CharField(required=False, max_length=300)
    description = forms.CharField(required=False, max_length=10_000, widget=forms.Textarea(attrs={"rows": 3}))
    rating = forms.TypedChoiceField(choices=[(n, "☆ none" if n == 0 else "★" * n) for n in range(6)], coerce=int)
    tags = forms.CharField(
        required=False, max_length=20_000, help_text="Separated by commas, for example rome, family."
    )
    author = forms.ModelChoiceField(queryset=Author.objects.all(), required=False, empty_label="— none —")

    def clean_tags(self) -> list[str]:
        return [tag.strip() for tag in self.cleaned_data["tags"].split(",") if tag.strip()]

    @classmethod
    def for_photo(cls, photo, data=None):
        initial = {
            "title": photo.title,
            "description": photo.description,
            "rating": photo.rating,
            "tags": ", ".join(photo.tags or []),
            "author": photo.author_id,
        }
        return cls(data, initial=initial)
