"""app.py against a real ferrid: the app in-process (FastAPI's TestClient), ferrid a real
server whose tokens the tests get over HTTP, as any client would.

run-tests.sh provisions ferrid, starts it and sets these variables; the rotation test runs
the ferrid binary on the same database and keys dir and signals the server.
"""

import base64
import hashlib
import hmac
import json
import os
import signal
import subprocess
import time

import httpx2 as httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient

NEEDED = [
    "FERRID_ISSUER",  # read by app.py too
    "AUDIENCE",  # read by app.py too
    "CLIENT_ID",
    "CLIENT_SECRET",  # a client for the password grant, scopes openid me items, aud AUDIENCE
    "OTHER_CLIENT_ID",
    "OTHER_CLIENT_SECRET",  # the same, but another audience
    "TEST_USERNAME",
    "TEST_PASSWORD",  # a user holding the scopes me and items
    "FERRID_BIN",
    "FERRID_DATABASE_URL",
    "FERRID_KEYS_DIR",
    "FERRID_PID",  # the server, for SIGHUP
]
_missing = [v for v in NEEDED if not os.environ.get(v)]
if _missing:
    raise RuntimeError(
        f"{', '.join(_missing)} not set: run `bash examples/fastapi/run-tests.sh [FERRID_BIN]`"
    )
ENV = {v: os.environ[v] for v in NEEDED}

import app as app_module  # noqa: E402  (reads FERRID_ISSUER and AUDIENCE, fetches discovery)

TOKEN_ENDPOINT = app_module.METADATA["token_endpoint"]
ME, ITEMS = "/users/me/", "/users/me/items/"


@pytest.fixture(scope="module")
def api():
    return TestClient(app_module.app)


def login(scope: str, client: str = "CLIENT") -> dict:
    """ferrid's answer to a password grant (client_secret_basic), as the app's users get it."""
    r = httpx.post(
        TOKEN_ENDPOINT,
        auth=(ENV[f"{client}_ID"], ENV[f"{client}_SECRET"]),
        data={
            "grant_type": "password",
            "username": ENV["TEST_USERNAME"],
            "password": ENV["TEST_PASSWORD"],
            "scope": scope,
        },
        timeout=30,
    )
    assert r.status_code == 200, r.text
    assert r.json()["token_type"] == "Bearer"
    return r.json()


def unverified(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def call(api: TestClient, path: str, token: str | None):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return api.get(path, headers=headers)


def assert_invalid_token(r):
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"] == 'Bearer error="invalid_token"'


def test_a_token_with_me_and_items_reads_both(api):
    answer = login("openid me items")
    token = answer["access_token"]
    assert set(answer["scope"].split()) == {"openid", "me", "items"}
    claims = unverified(token)
    assert claims["aud"] == ENV["AUDIENCE"]  # so the audience test below means something

    r = call(api, ME, token)
    assert r.status_code == 200, r.text
    me = r.json()
    assert me["sub"] == claims["sub"]
    assert me["client_id"] == ENV["CLIENT_ID"]
    assert set(me["scopes"]) == {"openid", "me", "items"}

    r = call(api, ITEMS, token)
    assert r.status_code == 200, r.text
    assert r.json() == [{"item_id": "Foo", "owner": claims["sub"]}]


def test_a_token_with_only_me_is_forbidden_the_items(api):
    token = login("me")["access_token"]
    assert unverified(token)["scope"] == "me"
    assert call(api, ME, token).status_code == 200

    r = call(api, ITEMS, token)
    assert r.status_code == 403, r.text
    challenge = r.headers["www-authenticate"]
    assert challenge.startswith('Bearer error="insufficient_scope", scope="'), challenge
    needed = challenge.split('scope="', 1)[1].rstrip('"').split()
    assert set(needed) == {"items", "me"}


def test_a_token_with_only_items_is_forbidden_both(api):
    token = login("items")["access_token"]
    for path in (ME, ITEMS):
        r = call(api, path, token)
        assert r.status_code == 403, (path, r.text)
        assert r.headers["www-authenticate"].startswith('Bearer error="insufficient_scope"')


def test_no_token_is_told_to_bring_one(api):
    for path in (ME, ITEMS):
        r = call(api, path, None)
        assert r.status_code == 401, r.text
        assert r.headers["www-authenticate"] == "Bearer"  # RFC 6750 §3.1: no error code


@pytest.mark.parametrize("token", ["garbage", "", "a.b.c", "eyJhbGciOiJub25lIn0.e30."])
def test_garbage_is_an_invalid_token(api, token):
    assert_invalid_token(call(api, ME, token))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.mark.parametrize("forgery", ["another RSA key", "alg none", "HS256 keyed with the public key"])
def test_a_forged_token_is_an_invalid_token(api, forgery):
    """ferrid's header (typ, kid) and claims, but not ferrid's signature."""
    real = login("me items")["access_token"]
    assert call(api, ME, real).status_code == 200
    header, claims = jwt.get_unverified_header(real), unverified(real)
    if forgery == "another RSA key":
        other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        forged = jwt.encode(claims, other_key, algorithm="RS256", headers=header)
    else:
        header["alg"] = "none" if forgery == "alg none" else "HS256"
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        if forgery == "alg none":
            forged = signing_input + "."
        else:
            public_pem = app_module.jwks.get_signing_key(header["kid"]).key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
            forged = f"{signing_input}.{b64url(mac)}"
    assert jwt.get_unverified_header(forged)["kid"] == header["kid"]
    assert unverified(forged) == claims
    assert_invalid_token(call(api, ME, forged))


def test_an_id_token_is_not_an_access_token(api, monkeypatch):
    answer = login("openid me")
    id_token = answer["id_token"]
    assert jwt.get_unverified_header(id_token)["typ"] != "at+jwt"
    assert_invalid_token(call(api, ME, id_token))

    # Its aud is the client id, so the audience check alone refuses it above. Let the app
    # expect that audience: the signature, iss, aud, exp, iat and sub are then all fine,
    # and only the typ check (RFC 9068 §4) stands between the ID token and the API.
    assert unverified(id_token)["aud"] == ENV["CLIENT_ID"]
    monkeypatch.setattr(app_module, "AUDIENCE", ENV["CLIENT_ID"])
    r = call(api, ME, id_token)
    assert_invalid_token(r)
    assert "not an access token" in r.json()["detail"]


def test_a_token_for_another_audience_is_an_invalid_token(api):
    token = login("me items", client="OTHER_CLIENT")["access_token"]
    aud = unverified(token)["aud"]
    assert aud != ENV["AUDIENCE"] and ENV["AUDIENCE"] not in (aud if isinstance(aud, list) else [aud])
    r = call(api, ME, token)
    assert_invalid_token(r)
    assert "audience" in r.json()["detail"].lower()


def test_an_unreachable_jwks_is_503_not_401(api, monkeypatch):
    """The token may be fine: the app cannot tell, and says so."""
    token = login("me items")["access_token"]
    port_nothing_listens_on = "http://127.0.0.1:9/jwks.json"  # discard: closed
    monkeypatch.setattr(app_module, "jwks", jwt.PyJWKClient(port_nothing_listens_on, timeout=2))
    r = call(api, ME, token)
    assert r.status_code == 503, r.text
    assert "www-authenticate" not in r.headers


def rotate_signing_key():
    """`ferrid keys rotate --now` on the server's keys dir, then SIGHUP: it signs with the
    new key at once."""
    command = [
        ENV["FERRID_BIN"],
        "--database-url",
        ENV["FERRID_DATABASE_URL"],
        "--keys-dir",
        ENV["FERRID_KEYS_DIR"],
        "keys",
        "rotate",
        "--now",
    ]
    r = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    os.kill(int(ENV["FERRID_PID"]), signal.SIGHUP)


def test_tokens_verify_across_a_key_rotation(api):
    token_a = login("me items")["access_token"]
    kid_a = jwt.get_unverified_header(token_a)["kid"]
    sub = unverified(token_a)["sub"]
    r = call(api, ITEMS, token_a)
    assert r.status_code == 200, r.text  # the app now holds a JWKS with kid A only
    cached = {k.key_id for k in app_module.jwks.get_jwk_set().keys}  # no fetch: cache
    assert kid_a in cached

    rotated = time.monotonic()
    rotate_signing_key()
    deadline = rotated + 30
    while True:
        token_b = login("me items")["access_token"]
        kid_b = jwt.get_unverified_header(token_b)["kid"]
        if kid_b != kid_a:
            break
        assert time.monotonic() < deadline, f"ferrid still signs with {kid_a} after rotation"
        time.sleep(0.2)
    print(f"ferrid signed with the new key {time.monotonic() - rotated:.1f} s after the rotation")
    assert kid_b not in cached, "the app already knew the new key: nothing to prove"

    # Kid B is unknown to the app's cached JWKS: PyJWKClient refetches the set. It does so
    # at most once per cooldown_duration (5 s) after its last fetch, so for up to that long
    # token B may be refused; then it must verify. (Well before the set's lifespan, 300 s,
    # would make it refetch anyway.)
    statuses = []
    deadline = time.monotonic() + 15
    while True:
        r = call(api, ITEMS, token_b)
        statuses.append(r.status_code)
        if r.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert r.status_code == 200, f"token B never verified: {statuses}, {r.text}"
    assert r.json() == [{"item_id": "Foo", "owner": sub}]
    assert kid_b in {k.key_id for k in app_module.jwks.get_jwk_set().keys}
    print(f"token B: {len(statuses)} request(s), statuses {statuses}")

    # The old key stays in ferrid's JWKS: token A keeps verifying until it expires.
    r = call(api, ITEMS, token_a)
    assert r.status_code == 200, r.text
    assert call(api, ME, token_b).status_code == 200
