"""The OpenAPI schema validates with no warning, and the docs page needs no other host."""

import re

import pytest
import yaml
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_the_schema_validates_with_no_warning(tmp_path):
    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    schema = yaml.safe_load(target.read_text())
    assert schema["openapi"].startswith("3.")
    assert all(path.startswith("/api/v1/") for path in schema["paths"])


def test_the_schema_endpoint_answers_openapi_3_for_anyone(client):
    response = client.get("/api/v1/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.") and schema["info"]["title"]
    assert "/api/v1/schema" not in schema["paths"]  # SERVE_INCLUDE_SCHEMA off
    # Every operation documents its error bodies, whose shape is {"detail": ...}.
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert "401" in operation["responses"], (method, path)
    assert schema["components"]["schemas"]["Error"]["required"] == ["detail"]


def test_the_docs_page_loads_without_any_other_host(client):
    response = client.get("/api/v1/docs")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    external = [url for url in re.findall(r"""(?:https?:)?//[^\s"'<>)]+""", html)
                if not re.match(r"(?:https?:)?//(?:testserver|localhost|127\.0\.0\.1)(?:[:/]|$)", url)]
    assert external == []
    # Its scripts and styles are served from this site (the sidecar's static files).
    for asset in re.findall(r"""(?:src|href)="([^"]+)\"""", html):
        assert asset.startswith("/"), asset
