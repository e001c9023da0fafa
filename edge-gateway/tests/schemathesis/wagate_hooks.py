"""Schemathesis hooks for wagate (README, "Property-based run").

Authentication for every generated request, fetched fresh each time, so the
run keeps testing with a valid credential after it calls the operations
that end one (`POST /auth/logout` revokes the presented token,
`/auth/logout-all` every token of the account, an access token lives 15
minutes):

- `DELETE /me` and `PATCH /me` act on a throwaway account registered for the
  request (deleting the administrator, or changing its email, would leave the
  rest of the run with no account to log in with);
- `POST /sessions/{sessionId}/send` goes to a CONNECTED session of an
  account of the hooks' own, with a freshly rotated API key (the run itself
  may rotate or revoke keys): only the body is generated;
- everything else uses the administrator (`WAGATE_ADMIN_EMAIL` /
  `WAGATE_ADMIN_PASSWORD`), logged in again for each request.

Use: `PYTHONPATH=edge-gateway/tests/schemathesis SCHEMATHESIS_HOOKS=wagate_hooks schemathesis run …`
(base URL from `WAGATE_URL`, default http://127.0.0.1:18080).
"""

import json
import os
import secrets
import time
import urllib.error
import urllib.request

import schemathesis

BASE = os.environ.get("WAGATE_URL", "http://127.0.0.1:18080").rstrip("/")
ADMIN_EMAIL = os.environ.get("WAGATE_ADMIN_EMAIL", "admin@wagate.local")
ADMIN_PASSWORD = os.environ["WAGATE_ADMIN_PASSWORD"]
OWN_ACCOUNT = {("DELETE", "/api/v1/me"), ("PATCH", "/api/v1/me")}
SEND = ("POST", "/api/v1/sessions/{sessionId}/send")


def _call(method, path, body=None, token=None):
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(BASE + path, data=data, headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)["data"]


def _post(path, body):
    return _call("POST", path, body)["token"]


_SENDER = {}


def _sender():
    """(session id, API key) of a CONNECTED session of the hooks' own account,
    made again when the run's administrator calls deleted or deactivated it;
    None when that is not possible now (the run drained its only worker:
    503), and the send then goes out with the administrator's token."""
    for _ in range(2):
        try:
            return _sender_once()
        except urllib.error.HTTPError:
            _SENDER.clear()
    return None


def _sender_once():
    if not _SENDER:
        tag = secrets.token_hex(6)
        password = f"Sturdy-{tag}-Kx9"
        token = _post("/api/v1/auth/register", {"email": f"st-send-{tag}@example.com", "password": password})
        sid = f"st-send-{tag}"
        _call("POST", "/api/v1/sessions", {"name": "schemathesis sender", "sessionId": sid}, token)
        deadline = time.monotonic() + 60
        while _call("GET", f"/api/v1/sessions/{sid}", token=token)["status"] != "CONNECTED":
            if time.monotonic() > deadline:
                raise RuntimeError(f"{sid} did not connect (is WAGATE_SIM_AUTO_SCAN_MS on?)")
            time.sleep(0.2)
        _SENDER.update(email=f"st-send-{tag}@example.com", password=password, sid=sid)
    token = _post("/api/v1/auth/login", {"email": _SENDER["email"], "password": _SENDER["password"]})
    rotated = _call(
        "POST",
        f"/api/v1/sessions/{_SENDER['sid']}/api-key/rotate",
        {"currentPassword": _SENDER["password"]},
        token,
    )
    return _SENDER["sid"], rotated["apiKey"]


@schemathesis.auth(refresh_interval=None)
class WagateAuth:
    def get(self, case, ctx):
        if (case.operation.method.upper(), case.operation.path) == SEND:
            sender = _sender()
            if sender is not None:
                return sender
        if (case.operation.method.upper(), case.operation.path) in OWN_ACCOUNT:
            tag = secrets.token_hex(6)
            return _post(
                "/api/v1/auth/register",
                {"email": f"st-{tag}@example.com", "password": f"Sturdy-{tag}-Kx9", "name": "Scratch"},
            )
        return _post("/api/v1/auth/login", {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})

    def set(self, case, data, ctx):
        case.headers = case.headers or {}
        if isinstance(data, tuple):
            sid, key = data
            case.path_parameters = {**(case.path_parameters or {}), "sessionId": sid}
            case.headers["X-API-Key"] = key
            return
        case.headers["Authorization"] = f"Bearer {data}"
