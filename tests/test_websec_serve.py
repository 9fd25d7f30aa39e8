"""``tact serve`` itself, on a free port (the real command, as tests/test_serve_only.py runs it):
the console accepts forms from the address it was told to listen on (``--port`` reaches the
app's settings), and from no Host a client names."""

from __future__ import annotations

import re

import httpx

from tests.test_serve_only import Site, db_url, serving, site  # noqa: F401  (fixtures)

#: The login page's pre-session nonce is a Secure cookie: plain http here.
PLAIN_HTTP = {"TACT_CONSOLE_SECURE_COOKIE": "false"}


def login_fields(http: httpx.Client) -> dict[str, str]:
    page = http.get("/admin/login")
    assert page.status_code == 200, page.text
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, "no csrf field on the login page"
    return {"csrf": found.group(1), "email": "nobody@staff.example", "password": "wrong"}


def test_the_console_accepts_forms_from_the_address_it_serves(site: Site) -> None:  # noqa: F811
    with serving(site, "--only", "admin", env=PLAIN_HTTP) as served:
        own = f"http://127.0.0.1:{served.http.base_url.port}"
        fields = login_fields(served.http)
        # A page of another site, on a name that resolves here: its Host and Origin both.
        evil = served.http.post(
            "/admin/login",
            data=fields,
            headers={"origin": "http://evil.example", "host": "evil.example"},
        )
        assert evil.status_code == 403
        # The default port (web_port, 8000) is not where this one listens.
        other = served.http.post(
            "/admin/login", data=fields, headers={"origin": "http://127.0.0.1:8000"}
        )
        assert other.status_code == 403
        # Our own address: the form is ours, the details are not an account (401, not 403).
        ours = served.http.post("/admin/login", data=fields, headers={"origin": own})
        assert ours.status_code == 401, ours.text
        assert "Those details did not sign you in" in ours.text


def test_forwarded_headers_do_not_change_the_address_the_login_limit_counts(
    site: Site,  # noqa: F811
) -> None:
    """``tact serve`` runs uvicorn with ``proxy_headers=False``: a client that names another
    address in X-Forwarded-For, X-Real-IP or Forwarded is still counted as itself, so it
    cannot spread its guesses over made-up addresses past the login limit."""
    env = {**PLAIN_HTTP, "TACT_LOGIN_ATTEMPTS_PER_MINUTE": "3"}
    with serving(site, "--only", "admin", env=env) as served:
        own = f"http://127.0.0.1:{served.http.base_url.port}"
        answers = []
        for i in range(5):
            spoofed = f"203.0.113.{i + 1}"
            answers.append(
                served.http.post(
                    "/admin/login",
                    data=login_fields(served.http),  # a fresh form: each answer is a new page
                    headers={
                        "origin": own,
                        "x-forwarded-for": spoofed,
                        "x-real-ip": spoofed,
                        "forwarded": f"for={spoofed}",
                    },
                ).status_code
            )
    assert answers[:3] == [401, 401, 401]  # three tries from this one address
    assert answers[3:] == [429, 429]  # then limited, whatever address it claims
