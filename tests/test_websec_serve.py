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
