//! The `clients` table.

use std::sync::Arc;

use sqlx::FromRow;

use super::{Store, StoreError, json_list, on_pool, to_json_list};
use crate::model::{Client, GrantType, ScopeSet};

const COLUMNS: &str = "id, secret_hash, grant_types, scopes, redirect_uris, audiences, created_at";

#[derive(FromRow)]
struct ClientRow {
    id: String,
    secret_hash: Option<String>,
    grant_types: String,
    scopes: String,
    redirect_uris: String,
    audiences: String,
    created_at: i64,
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
            id: r.id,
            secret_hash: r.secret_hash,
            created_at: r.created_at,
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
        let sql = format!("insert into clients ({COLUMNS}) values ($1, $2, $3, $4, $5, $6, $7)");
        on_pool!(write self, |p| sqlx::query(&sql)
            .bind(&c.id)
            .bind(&c.secret_hash)
            .bind(grants.join(" "))
            .bind(c.scopes.to_string())
            .bind(to_json_list(&c.redirect_uris))
            .bind(to_json_list(&c.audiences))
            .bind(c.created_at)
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// A client by id: read with concurrent requests' in one statement (`store::batch`),
    /// as every client authentication asks.
    pub async fn client(&self, id: &str) -> Result<Option<Client>, StoreError> {
        self.clients.submit(id.to_owned()).await
    }

    /// Removes a client and its refresh-token families. False when there is no such client.
    pub async fn delete_client(&self, id: &str) -> Result<bool, StoreError> {
        on_pool!(write self, |p| {
            let mut tx = p.begin().await?;
            sqlx::query("delete from refresh_families where client_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
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
