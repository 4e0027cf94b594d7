//! The rules of user accounts shared by every door: usernames and new passwords.

use super::Secret;

/// The shortest password a user may set.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// The longest password ferrid hashes; longer ones are refused before any hashing.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// A username: 1 to 255 bytes without control characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Username(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a username must be 1 to 255 bytes without control characters")]
pub struct InvalidUsername;

impl Username {
    pub fn parse(username: &str) -> Result<Self, InvalidUsername> {
        if username.is_empty() || username.len() > 255 || username.chars().any(char::is_control) {
            return Err(InvalidUsername);
        }
        Ok(Self(username.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// Why a new password is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WeakPassword {
    #[error("the password must have at least {MIN_PASSWORD_CHARS} characters")]
    TooShort,
    #[error("the password may be at most {} bytes long", MAX_PASSWORD_BYTES)]
    TooLong,
}

/// Checks a password a user is about to set.
pub fn check_new_password(password: &Secret) -> Result<(), WeakPassword> {
    if password.expose().chars().count() < MIN_PASSWORD_CHARS {
        return Err(WeakPassword::TooShort);
    }
    if password.expose().len() > MAX_PASSWORD_BYTES {
        return Err(WeakPassword::TooLong);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_and_new_passwords_follow_the_rules() {
        assert!(Username::parse("ada@example.com").is_ok());
        assert_eq!(Username::parse(""), Err(InvalidUsername));
        assert_eq!(Username::parse("a\nb"), Err(InvalidUsername));
        assert_eq!(Username::parse(&"a".repeat(256)), Err(InvalidUsername));
        assert_eq!(
            check_new_password(&Secret::new("short")),
            Err(WeakPassword::TooShort)
        );
        assert!(check_new_password(&Secret::new("long enough")).is_ok());
        let huge = "x".repeat(MAX_PASSWORD_BYTES + 1);
        assert_eq!(
            check_new_password(&Secret::new(huge)),
            Err(WeakPassword::TooLong)
        );
    }
}
