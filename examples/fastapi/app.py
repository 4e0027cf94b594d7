"""FastAPI's OAuth2-scopes tutorial app, with ferrid issuing the tokens.

The tutorial's `/users/me/` (scope `me`) and `/users/me/items/` (scopes `me` and `items`),
minus its login: no `/token` route, no user table, no password hashing, no shared HS256
secret. ferrid signs RS256 access tokens (RFC 9068); this app verifies them offline with the
public keys ferrid publishes, and checks scopes with FastAPI's `SecurityScopes`.

Settings, from the environment:

    FERRID_ISSUER  ferrid's issuer, exactly as ferrid says it (`--issuer`), e.g.
                   http://127.0.0.1:8080
    AUDIENCE       the `aud` ferrid puts in the tokens meant for this API: the calling
                   client's `--audience`, or its client id when it was registered without one
    SWAGGER_CLIENT_ID  optional: prefilled in Swagger UI's Authorize dialog (/docs)

Run it: `uvicorn app:app` (see README.md beside this file). `run-tests.sh` runs
`test_app.py` against a real ferrid, across a signing-key rotation.
"""

import json
import os
import urllib.request
from typing import Annotated

import jwt  # PyJWT, with its [crypto] extra for RS256
from fastapi import Depends, FastAPI, HTTPException, Security, status
from fastapi.security import OAuth2PasswordBearer, SecurityScopes
from pydantic import BaseModel

ISSUER = os.environ["FERRID_ISSUER"]
AUDIENCE = os.environ["AUDIENCE"]


def discover(issuer: str) -> dict:
    """ferrid's OpenID Connect discovery document, fetched once, at start.

    OIDC Discovery §4.3: the `issuer` in the document must be exactly the issuer it was
    fetched for (tokens are checked against that same string), or nothing in it is trusted.
    """
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    with urllib.request.urlopen(url, timeout=10) as response:
        metadata = json.load(response)
    if metadata.get("issuer") != issuer:
        raise RuntimeError(
            f"{url} names the issuer {metadata.get('issuer')!r}, not {issuer!r}: "
            "set FERRID_ISSUER to exactly ferrid's --issuer"
        )
    return metadata


METADATA = discover(ISSUER)

# The JWKS client. What it caches:
# - the whole key set, for `lifespan` seconds (`cache_jwk_set`, on by default). 300 is what
#   ferrid's /jwks.json says (`Cache-Control: max-age=300`; less near a scheduled key
#   change), and ferrid publishes a new key at least 6 minutes before it signs with it
#   (`ferrid keys rotate`), so a set cached this long already holds the next key.
# - a key it does not know (`ferrid keys rotate --now`, or a token signed after a key was
#   added) makes it fetch the set again at once — but at most once per `cooldown_duration`
#   seconds after its last fetch (PyJWT >= 2.14; its default is 30 s). Until then a token
#   with the new kid is refused (401). 5 s keeps that window short, and still bounds the
#   fetches that made-up kids can cause to one per 5 s.
# - `cache_keys=True` would add a per-kid cache that never expires: a key removed with
#   `ferrid keys retire` would keep verifying until restart. Left off (the default).
jwks = jwt.PyJWKClient(METADATA["jwks_uri"], lifespan=300, cooldown_duration=5, timeout=5)


def verify(token: str) -> dict:
    """The claims of a valid ferrid access token for this API; else jwt.PyJWTError."""
    typ = jwt.get_unverified_header(token).get("typ")
    # RFC 9068 §4: an access token says so. This refuses ID tokens (typ JWT), which ferrid
    # signs with the same keys and which carry a valid iss, aud, exp and sub too.
    if not isinstance(typ, str) or typ.lower() not in ("at+jwt", "application/at+jwt"):
        raise jwt.InvalidTokenError(f"not an access token (typ {typ!r})")
    key = jwks.get_signing_key_from_jwt(token).key  # by kid; refetches an unknown kid
    return jwt.decode(
        token,
        key,
        algorithms=["RS256"],  # never what the token's header asks for
        issuer=ISSUER,
        audience=AUDIENCE,
        options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        leeway=60,  # seconds of clock skew allowed on exp and iat
    )


# Swagger UI (/docs) gets an Authorize button that posts the password grant to ferrid's
# token endpoint. ferrid insists on client authentication there, so register a client for
# the password grant, with the scopes this API uses, for Swagger to use: a public one
# (`ferrid client add swagger --public --grant-type password --scope me --scope items`;
# choose "Request body" as the client credentials location in the dialog), or a
# confidential one whose secret you type into the dialog.
# Note that ferrid sends no CORS headers: the browser lets Swagger UI read ferrid's answer
# only when both are served from one origin (see README.md).
oauth2_scheme = OAuth2PasswordBearer(
    tokenUrl=METADATA["token_endpoint"],  # = f"{ISSUER}/token"
    scopes={"me": "Read information about the current user.", "items": "Read items."},
)

swagger_client_id = os.environ.get("SWAGGER_CLIENT_ID")
app = FastAPI(
    title="ferrid × FastAPI scopes example",
    swagger_ui_init_oauth={"clientId": swagger_client_id} if swagger_client_id else None,
)


class User(BaseModel):
    # ferrid's access tokens carry no profile claims (name, email): those come from
    # ferrid's /userinfo, with the same token, when it was granted `openid profile email`.
    sub: str  # the user's stable id (a UUID), never reused
    client_id: str | None = None  # the app the user signed in with
    scopes: list[str]


# A plain `def`, not `async def`: PyJWKClient fetches with blocking urllib, so FastAPI runs
# this dependency in its thread pool, off the event loop.
def get_current_user(
    security_scopes: SecurityScopes, token: Annotated[str, Depends(oauth2_scheme)]
) -> User:
    # No `Authorization: Bearer` header at all: OAuth2PasswordBearer has already answered
    # 401 with a bare `WWW-Authenticate: Bearer` (RFC 6750 §3.1: no error code then).
    try:
        claims = verify(token)
    except jwt.PyJWKClientConnectionError:
        # ferrid's JWKS is unreachable: not the token's fault, so not a 401.
        raise HTTPException(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="cannot fetch the issuer's signing keys",
            headers={"Retry-After": "5"},
        )
    except jwt.PyJWTError as e:  # malformed, forged, expired, wrong iss/aud/typ, unknown kid
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail=f"invalid token: {e}",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    scope = claims.get("scope", "")  # RFC 9068 §2.2.3: space-delimited, like OAuth's `scope`
    if not isinstance(scope, str):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="invalid token: scope is not a string",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    granted = scope.split()
    if any(s not in granted for s in security_scopes.scopes):
        # The tutorial answers 401 here. RFC 6750 §3.1 says 403 `insufficient_scope`: the
        # token is valid, and presenting it again (or signing in again with the same grant)
        # will not help; a 401 would tell the client its token is bad. `scope` names what
        # this route needs.
        raise HTTPException(
            status_code=status.HTTP_403_FORBIDDEN,
            detail="Not enough permissions",
            headers={
                "WWW-Authenticate": (
                    f'Bearer error="insufficient_scope", scope="{security_scopes.scope_str}"'
                )
            },
        )
    return User(sub=claims["sub"], client_id=claims.get("client_id"), scopes=granted)


def get_current_active_user(
    current_user: Annotated[User, Security(get_current_user, scopes=["me"])],
) -> User:
    # The tutorial refuses a `disabled` user here. ferrid refuses a disabled user's logins
    # and refresh tokens; access tokens already issued stay valid here until they expire
    # (15 minutes by default). An API that must know at once asks ferrid's /introspect.
    return current_user


@app.get("/users/me/", response_model=User)
def read_users_me(current_user: Annotated[User, Depends(get_current_active_user)]):
    return current_user


@app.get("/users/me/items/")
def read_own_items(
    current_user: Annotated[User, Security(get_current_active_user, scopes=["items"])],
):
    return [{"item_id": "Foo", "owner": current_user.sub}]
