"""Schemathesis hooks for wagate (README, "Property-based run").

Authentication for every generated request, fetched fresh each time, so the
run keeps testing with a valid credential after it calls the operations
that end one (`POST /auth/logout` revokes the presented token,
`/auth/logout-all` every token of the account, an access token lives 15
minutes):

- `DELETE /me` and `PATCH /me` act on a throwaway account registered for the
  request (deleting the administrator, or changing its email, would leave the
  rest of the run with no account to log in with);
- everything else uses the administrator (`WAGATE_ADMIN_EMAIL` /
  `WAGATE_ADMIN_PASSWORD`), logged in again for each request.

Use: `PYTHONPATH=edge-gateway/tests/schemathesis SCHEMATHESIS_HOOKS=wagate_hooks schemathesis run …`
(base URL from `WAGATE_URL`, default http://127.0.0.1:18080).
"""

import json
import os
import secrets
import urllib.request

import schemathesis

BASE = os.environ.get("WAGATE_URL", "http://127.0.0.1:18080").rstrip("/")
ADMIN_EMAIL = os.environ.get("WAGATE_ADMIN_EMAIL", "admin@wagate.local")
ADMIN_PASSWORD = os.environ["WAGATE_ADMIN_PASSWORD"]
OWN_ACCOUNT = {("DELETE", "/api/v1/me"), ("PATCH", "/api/v1/me")}


def _post(path, body):
    request = urllib.request.Request(
        BASE + path,
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)["data"]["token"]


@schemathesis.auth(refresh_interval=None)
class WagateAuth:
    def get(self, case, ctx):
        if (case.operation.method.upper(), case.operation.path) in OWN_ACCOUNT:
            tag = secrets.token_hex(6)
            return _post(
                "/api/v1/auth/register",
                {"email": f"st-{tag}@example.com", "password": f"Sturdy-{tag}-Kx9", "name": "Scratch"},
            )
        return _post("/api/v1/auth/login", {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})

    def set(self, case, data, ctx):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
