"""imalink.db_changes: the token that cached reads are keyed on changes with every commit, and only then."""

import pytest
from django.db import transaction

from imalink.db_changes import database_change_token
from imports.models import Author


@pytest.mark.django_db(transaction=True)
def test_it_changes_when_a_transaction_commits_and_not_otherwise():
    before = database_change_token()
    assert before is not None
    Author.objects.count()
    assert database_change_token() == before

    Author.objects.create(name="Kari")
    after = database_change_token()
    assert after != before

    Author.objects.filter(name="Kari").update(email="kari@example.org")  # a bare UPDATE counts too
    assert database_change_token() != after


@pytest.mark.django_db(transaction=True)
def test_it_refuses_to_vouch_inside_a_transaction():
    with transaction.atomic():
        Author.objects.create(name="Uncommitted")
        assert database_change_token() is None
