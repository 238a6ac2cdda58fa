"""The API key admin (customers.admin): a key is shown once, stored as its hash, never edited, revoked.

The customer and subscription admins are billing's (billing.admin.customers and
billing.admin.subscriptions); their tests are in tests/billing/admin/test_customers.py and
tests/billing/admin/test_subscriptions.py.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from customers.admin import KEY_SHOWN_ONCE
from customers.models import ApiKey, hash_api_key
from tests.factories import ApiKeyFactory

NOW = datetime(2025, 6, 20, 12, 0, tzinfo=UTC)
JUNE_1 = datetime(2025, 6, 1, tzinfo=UTC)

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_clock(NOW)]


def test_api_key_list_renders_in_a_bounded_number_of_queries(
    admin_client: Client, django_assert_max_num_queries: Any
) -> None:
    ApiKeyFactory.create_batch(300)

    # Session, user, two counts, the page.
    with django_assert_max_num_queries(5):
        response = admin_client.get(reverse("admin:customers_apikey_changelist"))

    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 100


def test_adding_an_api_key_shows_it_once_and_stores_only_its_hash(admin_client: Client) -> None:
    form = admin_client.get(reverse("admin:customers_apikey_add")).content.decode()
    assert 'name="name"' in form and "key_hash" not in form

    response = admin_client.post(reverse("admin:customers_apikey_add"), {"name": "warehouse sync", "_save": "Save"})

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    content = response.content.decode()
    assert escape(KEY_SHOWN_ONCE) in content
    match = re.search(r'<code id="api-key-value">(bk_[A-Za-z0-9_\-]+)</code>', content)
    assert match is not None
    raw_key = match.group(1)
    key = ApiKey.objects.get(name="warehouse sync")
    assert key.key_hash == hash_api_key(raw_key)
    assert key.prefix == raw_key[:10]
    stored = ApiKey.objects.filter(pk=key.pk).values().get()
    assert raw_key not in [str(value) for value in stored.values()]
    # Never again: not on its page, not in the list.
    again = admin_client.get(reverse("admin:customers_apikey_change", args=[key.pk])).content.decode()
    listed = admin_client.get(reverse("admin:customers_apikey_changelist")).content.decode()
    assert raw_key not in again and raw_key not in listed
    assert key.key_hash in again  # shown, read-only


def test_an_api_key_hash_cannot_be_edited(admin_client: Client) -> None:
    key = ApiKeyFactory(name="old name")
    original_hash = key.key_hash
    url = reverse("admin:customers_apikey_change", args=[key.pk])

    page = admin_client.get(url).content.decode()
    response = admin_client.post(url, {"name": "new name", "key_hash": "0" * 64, "prefix": "bk_evil", "_save": "Save"})

    assert 'name="key_hash"' not in page and 'name="prefix"' not in page
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.name == "new name"
    assert key.key_hash == original_hash
    assert key.prefix != "bk_evil"


def test_revoke_action_revokes_active_keys_and_reports_the_count(admin_client: Client) -> None:
    active = ApiKeyFactory.create_batch(3)
    revoked_before = ApiKeyFactory(revoked_at=JUNE_1)
    untouched = ApiKeyFactory()

    response = admin_client.post(
        reverse("admin:customers_apikey_changelist"),
        {"action": "revoke_selected", ACTION_CHECKBOX_NAME: [str(k.pk) for k in [*active, revoked_before]]},
        follow=True,
    )

    assert response.status_code == 200
    content = response.content.decode()
    assert "3 API keys were revoked." in content
    assert "1 selected key was already revoked." in content
    assert ApiKey.objects.active().get() == untouched
    revoked_before.refresh_from_db()
    assert revoked_before.revoked_at == JUNE_1
    active_list = admin_client.get(reverse("admin:customers_apikey_changelist"), {"status": "active"})
    assert [k.pk for k in active_list.context["cl"].result_list] == [untouched.pk]
