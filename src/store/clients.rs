//! The `clients` table.

use std::sync::Arc;

use sqlx::FromRow;

use super::{Store, StoreError, json_list, on_pool, to_json_list};
use crate::model::{Client, GrantType, ScopeSet};

const COLUMNS: &str = "id, secret_hash, grant_types, scopes, redirect_uris, audiences, created_at, \
     name, consent, post_logout_redirect_uris, backchannel_logout_uri";

#[derive(FromRow)]
struct ClientRow {
    id: String,
    secret_hash: Option<String>,
    grant_types: String,
    scopes: String,
    redirect_uris: String,
    audiences: String,
    created_at: i64,
    name: Option<String>,
    consent: bool,
    post_logout_redirect_uris: String,
    backchannel_logout_uri: Option<String>,
}

impl TryFrom<ClientRow> for Client {
    type Error = StoreError;
    fn try_from(r: ClientRow) -> Result<Self, StoreError> {
        let corrupt = |what: &str, e: &dyn std::fmt::Display| {
            StoreError::Corrupt(format!("{what} of client {}: {e}", r.id))
        };
        let grant_types = r
            .grant_types
            .split(' ')
            .filter(|g| !g.is_empty())
            .map(|g| g.parse::<GrantType>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| corrupt("grant types", &e))?;
        let scopes = ScopeSet::parse(&r.scopes).map_err(|e| corrupt("scopes", &e))?;
        Ok(Client {
            grant_types,
            scopes,
            redirect_uris: json_list(&r.redirect_uris, "redirect_uris")?,
            audiences: json_list(&r.audiences, "audiences")?,
            post_logout_redirect_uris: json_list(
                &r.post_logout_redirect_uris,
                "post_logout_redirect_uris",
            )?,
            id: r.id,
            secret_hash: r.secret_hash,
            created_at: r.created_at,
            name: r.name,
            consent: r.consent,
            backchannel_logout_uri: r.backchannel_logout_uri,
        })
    }
}

impl super::Statements {
    /// [`Store::client`] for many ids in one statement.
    pub(super) async fn clients(
        self: Arc<Self>,
        ids: Vec<String>,
    ) -> Result<std::collections::HashMap<String, Client>, StoreError> {
        let sql = format!(
            "select {COLUMNS} from clients where id in ({})",
            super::batch::placeholders(ids.len(), 1)
        );
        let rows: Vec<ClientRow> = on_pool!(self, |p| {
            let mut query = sqlx::query_as(&sql);
            for id in &ids {
                query = query.bind(id);
            }
            query.fetch_all(p).await
        })?;
        rows.into_iter()
            .map(|r| Client::try_from(r).map(|c| (c.id.clone(), c)))
            .collect()
    }
}

impl Store {
    /// Registers a client. `Conflict` when the id is taken.
    pub async fn insert_client(&self, c: &Client) -> Result<(), StoreError> {
        let grants: Vec<&str> = c.grant_types.iter().map(|g| g.as_str()).collect();
        let sql = format!(
            "insert into clients ({COLUMNS}) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        );
        on_pool!(write self, |p| sqlx::query(&sql)
            .bind(&c.id)
            .bind(&c.secret_hash)
            .bind(grants.join(" "))
            .bind(c.scopes.to_string())
            .bind(to_json_list(&c.redirect_uris))
            .bind(to_json_list(&c.audiences))
            .bind(c.created_at)
            .bind(&c.name)
            .bind(c.consent)
            .bind(to_json_list(&c.post_logout_redirect_uris))
            .bind(&c.backchannel_logout_uri)
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Stores a client's new registration (`Client::updated`): everything but its id,
    /// secret and registration time, so its live tokens stay valid. False when it is gone.
    pub async fn update_client(&self, c: &Client) -> Result<bool, StoreError> {
        let grants: Vec<&str> = c.grant_types.iter().map(|g| g.as_str()).collect();
        let n = on_pool!(write self, |p| sqlx::query(
            "update clients set grant_types = $1, scopes = $2, redirect_uris = $3, \
             audiences = $4, name = $5, consent = $6, post_logout_redirect_uris = $7, \
             backchannel_logout_uri = $8 where id = $9"
        )
        .bind(grants.join(" "))
        .bind(c.scopes.to_string())
        .bind(to_json_list(&c.redirect_uris))
        .bind(to_json_list(&c.audiences))
        .bind(&c.name)
        .bind(c.consent)
        .bind(to_json_list(&c.post_logout_redirect_uris))
        .bind(&c.backchannel_logout_uri)
        .bind(&c.id)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Replaces a confidential client's secret digest. False when there is no such
    /// confidential client (a public one has no secret to replace).
    pub async fn set_client_secret(&self, id: &str, secret_hash: &str) -> Result<bool, StoreError> {
        let n = on_pool!(write self, |p| sqlx::query(
            "update clients set secret_hash = $1 where id = $2 and secret_hash is not null"
        )
        .bind(secret_hash)
        .bind(id)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Every scope some client is registered for: the permission scopes this deployment
    /// defines (`oauth::scope`). Read only when a request names a scope its client is not
    /// registered for.
    pub async fn registered_scopes(
        &self,
    ) -> Result<std::collections::BTreeSet<String>, StoreError> {
        let rows: Vec<(String,)> = on_pool!(self, |p| sqlx::query_as(
            "select distinct scopes from clients"
        )
        .fetch_all(p)
        .await)?;
        Ok(rows
            .iter()
            .flat_map(|(s,)| s.split(' '))
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect())
    }

    /// A client by id: read with concurrent requests' in one statement (`store::batch`),
    /// as every client authentication asks.
    pub async fn client(&self, id: &str) -> Result<Option<Client>, StoreError> {
        self.clients.submit(id.to_owned()).await
    }

    /// Removes a client, its refresh-token families, the consents users gave it and the
    /// logout notifications waiting for it. False when there is no such client.
    pub async fn delete_client(&self, id: &str) -> Result<bool, StoreError> {
        on_pool!(write self, |p| {
            let mut tx = p.begin().await?;
            for sql in [
                "delete from refresh_families where client_id = $1",
                "delete from consents where client_id = $1",
                "delete from logout_notifications where client_id = $1",
            ] {
                sqlx::query(sql).bind(id).execute(&mut *tx).await?;
            }
            let n = sqlx::query("delete from clients where id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            Ok(n == 1)
        })
    }

    pub async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
        let sql = format!("select {COLUMNS} from clients order by id");
        let rows: Vec<ClientRow> = on_pool!(self, |p| sqlx::query_as(&sql).fetch_all(p).await)?;
        rows.into_iter().map(Client::try_from).collect()
    }
}
