"""Forms of the indexing pages."""

from django import forms


class RecoveryForm(forms.Form):
    search_roots = forms.CharField(
        label="Search roots",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Folders to search for imalink_* storages, one per line (for example /media/backup).",
    )

    def clean_search_roots(self):
        roots = [line.strip() for line in self.cleaned_data["search_roots"].splitlines() if line.strip()]
        if not roots:
            raise forms.ValidationError("Give at least one folder.")
        if len(roots) > 100:
            raise forms.ValidationError("At most 100 folders at once.")
        return roots
