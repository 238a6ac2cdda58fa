"""The OpenAPI schema and the browsable docs, served without any network access."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.test import Client


@pytest.mark.django_db
def test_schema_lists_the_api_with_event_examples(client: Client) -> None:
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = response.json()
    for path in (
        "/api/v1/events",
        "/api/v1/events/batch",
        "/api/v1/customers",
        "/api/v1/subscriptions",
        "/api/v1/customers/{external_id}/current_usage",
    ):
        assert path in schema["paths"], path
    examples = schema["paths"]["/api/v1/events"]["post"]["requestBody"]["content"]["application/json"]["examples"]
    assert any(e["value"]["event"]["code"] == "mtu" for e in examples.values())
    assert schema["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"


@pytest.mark.django_db
def test_docs_page_uses_bundled_assets_not_a_cdn(client: Client) -> None:
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    assert "cdn" not in html.lower()


def test_schema_generates_without_warnings(tmp_path) -> None:  # type: ignore[no-untyped-def]
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml"))
