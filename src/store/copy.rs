//! Copying everything that matters from one database to another: what
//! `ferrid db copy` does to move from SQLite to PostgreSQL without logging anyone out.

use super::Store;

/// What a copy moved.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CopyReport {
    pub users: usize,
    pub clients: usize,
    pub refresh_tokens: usize,
    pub revoked_access_tokens: usize,
    pub consents: usize,
}

impl Store {
    /// Copies users (ids, hashes and all), clients, live sessions (refresh-token families,
    /// which access tokens name in `sid`) with their unused refresh tokens (as digests), and
    /// live access-token revocations and the consents users gave into `target`, which must be empty. Rotated tokens and
    /// expired or revoked families are not needed and stay behind.
    pub async fn copy_into(&self, target: &Store, now: i64) -> anyhow::Result<CopyReport> {
        if !target.is_empty().await? {
            anyhow::bail!(
                "the target database already has users or clients; copy into an empty one"
            );
        }
        let mut report = CopyReport::default();
        for user in self.list_users().await? {
            target.insert_user_record(&user).await?;
            report.users += 1;
        }
        for client in self.list_clients().await? {
            target.insert_client(&client).await?;
            report.clients += 1;
        }
        for family in self.live_refresh_families(now).await? {
            target.insert_refresh_family_at(&family, None).await?;
        }
        for (hash, record) in self.live_refresh_tokens(now).await? {
            target
                .insert_refresh_token(&record.family.id, &hash, record.issued_at)
                .await?;
            report.refresh_tokens += 1;
        }
        for (jti, exp) in self.revoked_access_tokens(now).await? {
            target.revoke_access_token(&jti, exp).await?;
            report.revoked_access_tokens += 1;
        }
        for (user_id, client_id, scopes, at) in self.consents().await? {
            target
                .save_consent(&user_id, &client_id, &scopes, at)
                .await?;
            report.consents += 1;
        }
        Ok(report)
    }
}
