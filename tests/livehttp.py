"""A browser's HTTP side against a live server: cookies, forms and CSRF.

Enough of a browser to log in, open a share link and submit the settings
page's forms the way a real one does, so the live tests exercise the real
session, CSRF and redirect handling of the server.
"""

import http.client
import re
from urllib.parse import urlencode, urlsplit

from tests.live import live_login, response_cookies


class Browser:
    def __init__(self, server):
        self.server = server
        self.cookies = {}

    @classmethod
    def logged_in(cls, server, username, password):
        browser = cls(server)
        header = live_login(server, username, password)
        for pair in header.split("; "):
            name, value = pair.split("=", 1)
            browser.cookies[name] = value
        return browser

    @property
    def cookie_header(self):
        return "; ".join(f"{name}={value}" for name, value in self.cookies.items())

    def request(self, method, path, body=None, headers=None):
        """One request; returns (status, headers, text). Redirects are not followed."""
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        headers = {"Cookie": self.cookie_header, **(headers or {})}
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            self.cookies.update(response_cookies(response))
            return response.status, response.headers, response.read().decode()
        finally:
            conn.close()

    def get(self, path):
        return self.request("GET", path)

    def post(self, path, fields, csrf=True):
        """Submit a form as the page would, with the CSRF token unless `csrf` is off."""
        if csrf:
            self.get("/")  # the csrftoken cookie, as any page of the site sets it
            fields = {**fields, "csrfmiddlewaretoken": self.cookies["csrftoken"]}
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Origin": self.server.origin,
        }
        return self.request("POST", path, urlencode(fields), headers)

    def ws_headers(self):
        return {"Cookie": self.cookie_header}


def new_share_link(owner, slug, role):
    """Have the owner make a share link on the settings page; return its path."""
    status, headers, _ = owner.post(f"/b/{slug}/links/", {"role": role})
    assert status == 302, status
    _, _, page = owner.get(headers["Location"])
    link = re.search(r'id="new-link" type="text" readonly value="([^"]+)"', page)[1]
    parts = urlsplit(link.replace("&amp;", "&"))
    return f"{parts.path}?{parts.query}"


def settings_rows(owner, slug, kind):
    """The ids of the settings page's table rows of `kind` ("member" or "link")."""
    _, _, page = owner.get(f"/b/{slug}/settings/")
    return [int(pk) for pk in re.findall(rf'<tr id="{kind}-(\d+)">', page)]
