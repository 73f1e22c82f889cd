"""Production-safe by default: headers, cookies, the page's script policy and
`check --deploy` with the environment docs/deploy.md documents."""

import re
import secrets
import subprocess

import pytest
from django.conf import settings as django_settings
from django.test import Client

from tests.live import PYTHON, ROOT
from whiteboard import services

pytestmark = pytest.mark.django_db

DEPLOY = ROOT / "docs" / "deploy.md"
TEMPLATES = ROOT / "templates"


def documented_env():
    """The env file of docs/deploy.md section 1 (the block after "(mode 0640):")."""
    text = DEPLOY.read_text()
    block = re.search(r"\(mode 0640\):\n\n```sh\n(.*?)```", text, re.S)[1]
    pairs = [line.split("=", 1) for line in block.splitlines() if "=" in line]
    return dict(pairs)


def test_check_deploy_is_clean_with_the_documented_production_env(tmp_path):
    env = {
        **documented_env(),
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
    }
    result = subprocess.run(
        [PYTHON, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_without_debug_cookies_are_secure_and_hsts_is_on():
    assert not django_settings.DEBUG
    assert django_settings.SESSION_COOKIE_SECURE
    assert django_settings.CSRF_COOKIE_SECURE
    assert django_settings.SECURE_HSTS_SECONDS >= 31536000


def test_an_https_page_sends_hsts_and_a_secure_session_cookie(client):
    answer = client.post("/me/name", {"name": "Ada"}, secure=True)
    assert answer["Strict-Transport-Security"].startswith("max-age=31536000")
    assert client.cookies["sessionid"]["secure"]
    assert client.cookies["sessionid"]["httponly"]


def test_pages_send_the_security_headers(client):
    services.board_create(slug="team", title="Team")
    for path in ("/", "/b/team/", "/accounts/login/", "/admin/login/"):
        answer = client.get(path)
        assert answer["X-Content-Type-Options"] == "nosniff", path
        assert answer["Referrer-Policy"] == "same-origin", path
        assert answer["X-Frame-Options"] == "DENY", path
        policy = answer["Content-Security-Policy"]
        assert "script-src 'self';" in policy, path
        assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy


def test_the_board_pages_policy_allows_its_own_socket_only(client):
    services.board_create(slug="team", title="Team")
    policy = Client().get("/b/team/", HTTP_HOST="localhost")
    assert "connect-src 'self' ws://localhost" in policy["Content-Security-Policy"]
    secure = Client().get("/b/team/", HTTP_HOST="localhost", secure=True)
    assert "connect-src 'self' wss://localhost" in secure["Content-Security-Policy"]


def test_no_template_has_inline_script_or_handlers():
    for template in TEMPLATES.rglob("*.html"):
        text = template.read_text()
        for tag in re.findall(r"<script\b[^>]*>", text):
            assert "src=" in tag or 'type="application/json"' in tag, (template, tag)
        assert not re.search(r"\son[a-z]+\s*=", text), template
        assert "javascript:" not in text, template
