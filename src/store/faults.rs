//! Fault injection for the durability tests: make the COMMIT of a write fail, or lose the
//! connection just after it, at a named point. Arming exists only in debug builds (what
//! `cargo test` builds); a release build has no way to arm a fault, and `Faults::take`
//! there is always `None`.

/// Where a fault can be injected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Point {
    /// The statement that rotates refresh tokens.
    Rotation,
    /// The transaction that spends an authorization code (and starts its session).
    CodeRedemption,
    /// Revoking a refresh-token family or an access token.
    Revocation,
}

/// What goes wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The COMMIT fails: nothing is stored, the caller gets an error.
    FailCommit,
    /// The change is committed, then the connection is lost before the server hears so:
    /// the caller gets an error although the change is stored.
    LoseConnectionAfterCommit,
}

/// Faults armed for the next write at each point (each fires once).
#[derive(Debug, Default)]
pub struct Faults {
    #[cfg(debug_assertions)]
    armed: std::sync::Mutex<std::collections::HashMap<Point, Fault>>,
}

impl Faults {
    /// Arms `fault` for the next write at `point`.
    #[cfg(debug_assertions)]
    pub fn arm(&self, point: Point, fault: Fault) {
        self.armed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(point, fault);
    }

    /// The fault armed at `point`, disarming it.
    pub(super) fn take(&self, point: Point) -> Option<Fault> {
        #[cfg(debug_assertions)]
        {
            self.armed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&point)
        }
        #[cfg(not(debug_assertions))]
        {
            let _ = point;
            None
        }
    }
}

/// The error an injected fault answers with: the database became unavailable.
pub(super) fn injected(what: &str) -> super::StoreError {
    super::StoreError::Unavailable(std::sync::Arc::new(sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        format!("injected fault: {what}"),
    ))))
}
