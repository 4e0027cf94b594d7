//! The outbox of back-channel logout (OpenID Connect Back-Channel Logout 1.0): a row per
//! relying-party session (refresh-token family) that ended and whose client wants a logout
//! token. Rows are written in the same transaction that ends the sessions — by the server or
//! by a command such as `user passwd` — so no ended session is forgotten, and delivered by
//! the servers (`oauth::backchannel`), each row claimed by one of them at a time.

use sqlx::FromRow;

use super::{Store, StoreError, on_pool};

/// The INSERT that queues a notification for each live family of a client with a
/// back-channel logout URI, `$1` being now and `$2` the value of `$column` (`user_id` or
/// `session_id`) whose families ended. One notification per family at most, also when two
/// ends of the same session race (`on conflict`).
macro_rules! queue_for {
    ($column:literal) => {
        concat!(
            "insert into logout_notifications \
             (id, client_id, user_id, sid, created_at, attempts, next_attempt_at, claimed_until) \
             select f.id, f.client_id, f.user_id, f.id, $1, 0, $1, 0 \
             from refresh_families f join clients c on c.id = f.client_id \
             where c.backchannel_logout_uri is not null and f.revoked_at is null \
               and f.expires_at > $1 and f.",
            $column,
            " = $2 on conflict (id) do nothing"
        )
    };
}

/// Queues the live families of the user `$2` (a password change, a disable, a removal).
pub(super) const QUEUE_FOR_USER: &str = queue_for!("user_id");
/// Queues the live families of the browser session `$2` (its end).
pub(super) const QUEUE_FOR_SESSION: &str = queue_for!("session_id");

/// A logout token to deliver.
#[derive(Clone, Debug, FromRow)]
pub struct LogoutNotification {
    pub id: String,
    pub client_id: String,
    /// The logout token's `sub`.
    pub user_id: String,
    /// The logout token's `sid`: the family, as in the client's ID tokens.
    pub sid: String,
    /// Attempts so far, this one included.
    pub attempts: i64,
    /// Where to POST it: the client's URI now, so a changed or removed registration is
    /// honoured; `None` when the client no longer wants logout tokens.
    pub backchannel_logout_uri: Option<String>,
}

impl Store {
    /// Whether any notification is due (a cheap read before a claiming write).
    pub async fn logout_notifications_due(&self, now: i64) -> Result<bool, StoreError> {
        let due: Option<(String,)> = on_pool!(self, |p| sqlx::query_as(
            "select id from logout_notifications where next_attempt_at <= $1 \
             and claimed_until <= $1 limit 1"
        )
        .bind(now)
        .fetch_optional(p)
        .await)?;
        Ok(due.is_some())
    }

    /// Claims up to `limit` due notifications until `now + claim_secs` (another server
    /// leaves them alone meanwhile) and counts the attempt.
    pub async fn claim_logout_notifications(
        &self,
        now: i64,
        claim_secs: i64,
        limit: i64,
    ) -> Result<Vec<LogoutNotification>, StoreError> {
        on_pool!(write self, |p| {
            let mut tx = p.begin().await?;
            let ids: Vec<(String,)> = sqlx::query_as(
                "update logout_notifications set claimed_until = $1, attempts = attempts + 1 \
                 where id in (select id from logout_notifications \
                              where next_attempt_at <= $2 and claimed_until <= $2 \
                              order by next_attempt_at limit $3) \
                   and claimed_until <= $2 \
                 returning id",
            )
            .bind(now + claim_secs)
            .bind(now)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
            let mut claimed = Vec::with_capacity(ids.len());
            for (id,) in ids {
                let n: Option<LogoutNotification> = sqlx::query_as(
                    "select n.id, n.client_id, n.user_id, n.sid, n.attempts, \
                            c.backchannel_logout_uri \
                     from logout_notifications n left join clients c on c.id = n.client_id \
                     where n.id = $1",
                )
                .bind(&id)
                .fetch_optional(&mut *tx)
                .await?;
                claimed.extend(n);
            }
            tx.commit().await?;
            Ok(claimed)
        })
    }

    /// Done with a notification: delivered, or given up on.
    pub async fn delete_logout_notification(&self, id: &str) -> Result<(), StoreError> {
        on_pool!(write self, |p| sqlx::query("delete from logout_notifications where id = $1")
            .bind(id)
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// A failed attempt: try again at `at`.
    pub async fn retry_logout_notification(&self, id: &str, at: i64) -> Result<(), StoreError> {
        on_pool!(write self, |p| sqlx::query(
            "update logout_notifications set next_attempt_at = $1, claimed_until = 0 where id = $2"
        )
        .bind(at)
        .bind(id)
        .execute(p)
        .await
        .map(|_| ()))?;
        Ok(())
    }
}
