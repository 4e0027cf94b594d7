//! The claims of an RFC 9068 access token, checked against the issuer, the audience and the
//! time. Pure: `now` and the leeway are parameters.

use serde_json::{Map, Value};

use crate::error::{Error, desc};

/// A verified access token: what ferrid said about the caller (RFC 9068 §2.2).
///
/// Construct one by hand in tests of your handlers; in a server it comes from
/// [`Verifier::verify`](crate::Verifier::verify) or the extractors.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AccessToken {
    /// `iss`: the issuer, exactly as configured.
    pub iss: String,
    /// `sub`: the user's stable id, or the client id for `client_credentials` tokens.
    pub sub: String,
    /// `client_id`: the client the token was issued to (RFC 9068 §2.2, RFC 8693 §4.3).
    pub client_id: String,
    /// `aud`, always as a list (RFC 7519 §4.1.3 allows one string).
    pub aud: Vec<String>,
    /// `scope`, split at spaces (RFC 6749 §3.3); empty when the token has none.
    pub scopes: Vec<String>,
    /// `exp`, unix seconds.
    pub exp: i64,
    /// `iat`, unix seconds.
    pub iat: i64,
    /// `nbf`, unix seconds, when present.
    pub nbf: Option<i64>,
    /// `jti`: the token's unique id.
    pub jti: String,
    /// `auth_time`: when the user authenticated (absent for `client_credentials`).
    pub auth_time: Option<i64>,
    /// `sid`: the user's session at ferrid, when there is one.
    pub sid: Option<String>,
    /// The `kid` of the key that signed the token.
    pub kid: String,
    /// Every claim, as sent.
    pub claims: Map<String, Value>,
}

impl AccessToken {
    /// Whether the token was granted `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// `Ok` if the token was granted every one of `required`; else the RFC 6750 §3.1
    /// `insufficient_scope` error naming them all.
    pub fn require(&self, required: &'static [&'static str]) -> Result<(), Error> {
        if required.iter().all(|s| self.has_scope(s)) {
            Ok(())
        } else {
            Err(Error::InsufficientScope(required))
        }
    }
}

/// What the claims are checked against.
pub(crate) struct Expect<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    pub now: i64,
    /// Allowed clock skew, seconds (RFC 7519 §4.1.4: "some small leeway").
    pub leeway: i64,
}

/// Checks the claims of a token whose signature is valid (RFC 9068 §4, RFC 7519 §4.1).
pub(crate) fn check(
    claims: Map<String, Value>,
    kid: String,
    expect: &Expect<'_>,
) -> Result<AccessToken, Error> {
    let bad = |claim| Error::InvalidToken(desc::claim(claim));
    let string = |claim: &'static str| match claims.get(claim) {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(bad(claim)),
    };
    let optional_string = |claim: &'static str| match claims.get(claim) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad(claim)),
    };
    let optional_time = |claim: &'static str| match claims.get(claim) {
        None => Ok(None),
        Some(v) => numeric_date(v).map(Some).ok_or(bad(claim)),
    };
    let time = |claim: &'static str| optional_time(claim)?.ok_or(bad(claim));

    // RFC 9068 §4 / RFC 7519 §4.1.1: the issuer, compared as a string — exactly.
    let iss = string("iss")?;
    if iss != expect.issuer {
        return Err(Error::InvalidToken(desc::ISSUER));
    }
    // RFC 9068 §4 / RFC 7519 §4.1.3: one of the audiences must be ours.
    let aud = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(all)) => all
            .iter()
            .map(|a| a.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or(bad("aud"))?,
        _ => return Err(bad("aud")),
    };
    if !aud.iter().any(|a| a == expect.audience) {
        return Err(Error::InvalidToken(desc::AUDIENCE));
    }
    // RFC 7519 §4.1.4: the current time must be before `exp`, allowing for clock skew.
    let exp = time("exp")?;
    if expect.now >= exp.saturating_add(expect.leeway) {
        return Err(Error::InvalidToken(desc::EXPIRED));
    }
    // RFC 7519 §4.1.5: not before `nbf`, allowing for clock skew.
    let nbf = optional_time("nbf")?;
    if nbf.is_some_and(|nbf| expect.now.saturating_add(expect.leeway) < nbf) {
        return Err(Error::InvalidToken(desc::NOT_YET));
    }
    // RFC 9068 §2.2 requires iat; a token issued in the future (beyond the skew) was not
    // made by an issuer whose clock agrees with ours.
    let iat = time("iat")?;
    if iat > expect.now.saturating_add(expect.leeway) {
        return Err(Error::InvalidToken(desc::ISSUED_LATER));
    }
    // RFC 9068 §2.2: sub, client_id and jti are required.
    let sub = string("sub")?;
    let client_id = string("client_id")?;
    let jti = string("jti")?;
    // RFC 9068 §2.2.3: `scope`, space-delimited (RFC 6749 §3.3), when present.
    let scopes = optional_string("scope")?
        .map(|s| {
            s.split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let auth_time = optional_time("auth_time")?;
    let sid = optional_string("sid")?;
    Ok(AccessToken {
        iss,
        sub,
        client_id,
        aud,
        scopes,
        exp,
        iat,
        nbf,
        jti,
        auth_time,
        sid,
        kid,
        claims,
    })
}

/// A NumericDate (RFC 7519 §2): seconds since the epoch, possibly with a fraction (dropped).
fn numeric_date(v: &Value) -> Option<i64> {
    let n = v.as_number()?;
    n.as_i64().or_else(|| {
        n.as_f64()
            .filter(|f| f.is_finite())
            .map(|f| f.floor() as i64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_700_000_000;
    const ISS: &str = "https://id.example.com";

    fn expect() -> Expect<'static> {
        Expect {
            issuer: ISS,
            audience: "items-api",
            now: NOW,
            leeway: 60,
        }
    }

    fn claims(changes: Value) -> Map<String, Value> {
        let mut c = json!({
            "iss": ISS, "sub": "user-1", "aud": "items-api", "exp": NOW + 900, "iat": NOW,
            "jti": "j1", "client_id": "web", "scope": "items:read  openid",
        });
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c.as_object().unwrap().clone()
    }

    fn checked(changes: Value) -> Result<AccessToken, Error> {
        check(claims(changes), "k".into(), &expect())
    }

    fn checked_at(now: i64, changes: Value) -> Result<AccessToken, Error> {
        let e = Expect { now, ..expect() };
        check(claims(changes), "k".into(), &e)
    }

    #[test]
    fn a_valid_token_gives_its_claims() {
        let t = checked(json!({"auth_time": NOW - 5, "sid": "s1"})).unwrap();
        assert_eq!(t.sub, "user-1");
        assert_eq!(t.client_id, "web");
        assert_eq!(t.aud, ["items-api"]);
        assert_eq!(t.scopes, ["items:read", "openid"]);
        assert_eq!((t.exp, t.iat, t.auth_time), (NOW + 900, NOW, Some(NOW - 5)));
        assert_eq!(t.sid.as_deref(), Some("s1"));
        assert_eq!(t.kid, "k");
        assert_eq!(t.claims["jti"], "j1");
        assert!(t.has_scope("openid") && !t.has_scope("items"));
    }

    #[test]
    fn the_issuer_must_match_exactly() {
        for iss in [
            "https://id.example.com/",
            "https://ID.example.com",
            "http://id.example.com",
        ] {
            assert_eq!(
                checked(json!({ "iss": iss })).err(),
                Some(Error::InvalidToken(desc::ISSUER)),
                "{iss}"
            );
        }
    }

    #[test]
    fn the_audience_may_be_a_list_that_names_us() {
        let t = checked(json!({"aud": ["other", "items-api"]})).unwrap();
        assert_eq!(t.aud, ["other", "items-api"]);
        for aud in [json!("other"), json!(["other"]), json!([])] {
            assert_eq!(
                checked(json!({ "aud": aud })).err(),
                Some(Error::InvalidToken(desc::AUDIENCE))
            );
        }
        assert_eq!(
            checked(json!({"aud": ["items-api", 7]})).err(),
            Some(Error::InvalidToken(desc::claim("aud")))
        );
    }

    #[test]
    fn exp_allows_the_leeway_and_no_more() {
        let exp = NOW + 900;
        assert!(checked_at(exp + 59, json!({})).is_ok());
        assert_eq!(
            checked_at(exp + 60, json!({})).err(),
            Some(Error::InvalidToken(desc::EXPIRED))
        );
    }

    #[test]
    fn nbf_and_iat_in_the_future_beyond_the_leeway_are_refused() {
        assert!(checked(json!({"nbf": NOW + 60})).is_ok());
        assert_eq!(
            checked(json!({"nbf": NOW + 61})).err(),
            Some(Error::InvalidToken(desc::NOT_YET))
        );
        assert!(checked(json!({"iat": NOW + 60})).is_ok());
        assert_eq!(
            checked(json!({"iat": NOW + 61})).err(),
            Some(Error::InvalidToken(desc::ISSUED_LATER))
        );
    }

    #[test]
    fn fractional_times_are_numeric_dates_too() {
        let t = checked(json!({"exp": (NOW + 10) as f64 + 0.5})).unwrap();
        assert_eq!(t.exp, NOW + 10);
    }

    #[test]
    fn required_claims_must_be_there_with_the_right_type() {
        for claim in ["iss", "sub", "aud", "exp", "iat", "jti", "client_id"] {
            assert_eq!(
                checked(json!({ claim: null })).err(),
                Some(Error::InvalidToken(desc::claim(claim))),
                "{claim}"
            );
        }
        for (claim, value) in [
            ("exp", json!("tomorrow")),
            ("sub", json!(1)),
            ("scope", json!(["a"])),
            ("sid", json!(1)),
            ("auth_time", json!("x")),
        ] {
            assert_eq!(
                checked(json!({ claim: value })).err(),
                Some(Error::InvalidToken(desc::claim(claim))),
                "{claim}"
            );
        }
    }

    #[test]
    fn a_token_without_scope_has_none() {
        let t = checked(json!({"scope": null})).unwrap();
        assert!(t.scopes.is_empty());
        let t = checked(json!({"scope": ""})).unwrap();
        assert!(t.scopes.is_empty());
    }

    #[test]
    fn require_wants_every_scope() {
        let t = checked(json!({})).unwrap();
        assert_eq!(t.require(&["items:read", "openid"]), Ok(()));
        assert_eq!(
            t.require(&["items:read", "items:write"]),
            Err(Error::InsufficientScope(&["items:read", "items:write"]))
        );
    }
}
