//! Request parameters of the token endpoint (RFC 6749 §3.2): an
//! application/x-www-form-urlencoded body in which no parameter appears twice and a
//! parameter without a value counts as absent (§3.1).

use std::collections::{HashMap, HashSet};

use super::OAuthError;

#[derive(Default)]
pub struct Params(HashMap<String, String>);

/// Names only: values include passwords, client secrets and tokens.
impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&str> = self.0.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_tuple("Params").field(&names).finish()
    }
}

impl Params {
    /// Parses a form body. Refuses a repeated parameter (§3.1: "Request and response
    /// parameters MUST NOT be included more than once"), naming it.
    pub fn parse(body: &[u8]) -> Result<Self, OAuthError> {
        let mut seen = HashSet::new();
        let mut map = HashMap::new();
        for (name, value) in form_urlencoded::parse(body) {
            if !seen.insert(name.clone()) {
                return Err(repeated(&name));
            }
            // §3.1: "Parameters sent without a value MUST be treated as if they were omitted"
            // (a second copy of one is still a repetition, caught above).
            if !value.is_empty() {
                map.insert(name.into_owned(), value.into_owned());
            }
        }
        Ok(Self(map))
    }

    /// Every parameter, sorted by name.
    pub fn sorted(&self) -> Vec<(&str, &str)> {
        let mut all: Vec<(&str, &str)> = self
            .0
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        all.sort_unstable();
        all
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A required parameter, or `invalid_request` naming it.
    pub fn require(&self, name: &'static str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::invalid_request(format!("the {name} parameter is missing")))
    }
}

fn repeated(name: &str) -> OAuthError {
    // Names are echoed only when they are short and printable (RFC 6749 §5.2 charset).
    let printable = name.len() <= 40
        && name
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\');
    if printable {
        OAuthError::invalid_request(format!("the {name} parameter is repeated"))
    } else {
        OAuthError::invalid_request("a parameter is repeated")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_decoded_and_empty_ones_are_absent() {
        let p = Params::parse(b"grant_type=password&username=ada+l%C3%B6v&scope=").unwrap();
        assert_eq!(p.get("grant_type"), Some("password"));
        assert_eq!(p.get("username"), Some("ada l\u{f6}v"));
        assert_eq!(p.get("scope"), None);
        assert!(
            matches!(p.require("password"), Err(OAuthError::InvalidRequest(m)) if m.contains("password"))
        );
        let secret = Params::parse(b"password=hunter2&client_secret=s3cr3t").unwrap();
        let shown = format!("{secret:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("s3cr3t") && shown.contains("password")
        );
    }

    #[test]
    fn a_repeated_parameter_is_invalid_request() {
        for body in [
            &b"scope=a&scope=b"[..],
            b"scope=a&scope=",
            b"scope=&scope=a",
        ] {
            let err = Params::parse(body).unwrap_err();
            assert!(
                matches!(err, OAuthError::InvalidRequest(ref m) if m.contains("scope")),
                "{body:?}"
            );
        }
        assert!(
            matches!(Params::parse(b"%22=1&%22=2"), Err(OAuthError::InvalidRequest(m)) if !m.contains('"'))
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Any body parses or is refused as `invalid_request`; nothing panics.
        #[test]
        fn any_body_parses_or_is_invalid_request(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            match Params::parse(&body) {
                Ok(_) | Err(OAuthError::InvalidRequest(_)) => {}
                Err(other) => proptest::prop_assert!(false, "unexpected {other:?}"),
            }
        }

        /// Distinct names round-trip through form encoding with their values.
        #[test]
        fn distinct_parameters_round_trip(pairs in proptest::collection::btree_map("[a-z_]{1,12}", "\\PC{1,24}", 0..8)) {
            let body: String = form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs.iter()).finish();
            let parsed = Params::parse(body.as_bytes()).unwrap();
            for (name, value) in &pairs {
                proptest::prop_assert_eq!(parsed.get(name), Some(value.as_str()));
            }
        }
    }
}
