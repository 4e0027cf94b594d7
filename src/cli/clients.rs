//! `ferrid client …`: add, list, remove.

use anyhow::bail;
use clap::Subcommand;

use super::{read_secret_line, scopes_from_flags};
use crate::clock::Clock;
use crate::config::StorageArgs;
use crate::model::{
    Client, ClientId, ClientRegistration, GrantType, InvalidClient, MIN_CLIENT_SECRET_CHARS,
    RedirectUri, RedirectUriPolicy, ScopeSet, Secret, check_client_shape,
};
use crate::oauth::client_auth;
use crate::store::{Store, StoreError};

#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Register a client. Confidential by default: a secret is generated and printed once.
    Add {
        client_id: String,
        /// A public client (no secret; e.g. a mobile or single-page app).
        #[arg(long)]
        public: bool,
        /// A scope the client may request (repeat for more). Default: openid profile email.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// A grant type the client may use (repeat for more; at least one).
        #[arg(long = "grant-type", required = true)]
        grant_types: Vec<String>,
        /// A redirect URI for the authorization-code flow (repeat for more).
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// `aud` of the access tokens this client gets (repeat for more). Default: its id.
        #[arg(long = "audience")]
        audiences: Vec<String>,
        /// Read the client secret from standard input instead of generating one.
        #[arg(long)]
        secret_stdin: bool,
        /// Print `{"client_id": …, "client_secret": …}`.
        #[arg(long)]
        json: bool,
        /// Also accept plain-http redirect URIs on hosts other than this machine. For
        /// development only: codes would cross the network unencrypted.
        #[arg(long)]
        dev_allow_http_redirect_uri: bool,
    },
    /// List clients.
    List,
    /// Remove a client; its refresh tokens stop working at once.
    Remove { client_id: String },
}

pub(super) async fn run(cmd: ClientCommand, storage: &StorageArgs) -> anyhow::Result<()> {
    let store = Store::connect(&storage.database_url, 2).await?;
    let result = client_command(cmd, &store).await;
    store.close().await;
    result
}

async fn client_command(cmd: ClientCommand, store: &Store) -> anyhow::Result<()> {
    match cmd {
        ClientCommand::Add {
            client_id,
            public,
            scopes,
            grant_types,
            redirect_uris,
            audiences,
            secret_stdin,
            json,
            dev_allow_http_redirect_uri,
        } => {
            let id = ClientId::parse(&client_id)?;
            let grant_types = grant_types
                .iter()
                .flat_map(|g| g.split([',', ' ']))
                .filter(|g| !g.is_empty())
                .map(|g| g.parse::<GrantType>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| anyhow::anyhow!("--grant-type: {e}"))?;
            // The rules that do not need the secret, before any is read.
            let policy = RedirectUriPolicy {
                allow_http_anywhere: dev_allow_http_redirect_uri,
            };
            let redirect_uris = redirect_uris
                .iter()
                .map(|uri| RedirectUri::parse(uri, policy))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| anyhow::anyhow!("--redirect-uri {e}"))?;
            check_client_shape(public, &grant_types, &redirect_uris).map_err(in_flag_words)?;
            if public && secret_stdin {
                bail!("a public client has no secret; drop --public or --secret-stdin");
            }
            let scopes = if scopes.is_empty() {
                ScopeSet::parse("openid profile email")?
            } else {
                scopes_from_flags(&scopes)?
            };
            let secret = match (public, secret_stdin) {
                (true, _) => None,
                (false, true) => Some(read_secret_line("Client secret: ".into()).await?),
                (false, false) => Some(client_auth::new_client_secret()?),
            };
            let registration = ClientRegistration {
                id,
                secret: secret.clone(),
                grant_types,
                scopes,
                redirect_uris,
                audiences,
            };
            let client =
                Client::register(registration, Clock::system().now()).map_err(in_flag_words)?;
            match store.insert_client(&client).await {
                Ok(()) => {}
                Err(StoreError::Conflict) => bail!("a client with id {client_id:?} exists already"),
                Err(e) => return Err(e.into()),
            }
            tracing::info!(event = "client_created", client_id = %client_id);
            // Only a generated secret is printed: a secret read from stdin is the caller's own.
            let shown = if secret_stdin {
                None
            } else {
                secret.as_ref().map(Secret::expose)
            };
            if json {
                println!(
                    "{}",
                    serde_json::json!({"client_id": client_id, "client_secret": shown})
                );
            } else {
                println!("client_id:     {client_id}");
                match shown {
                    Some(s) => {
                        println!("client_secret: {s}");
                        println!(
                            "Store the secret now: ferrid keeps only a hash of it and cannot show it again."
                        );
                    }
                    None if public => {
                        println!("public client: it authenticates with its client_id alone")
                    }
                    None => println!("client secret: the one read from standard input"),
                }
            }
        }
        ClientCommand::Remove { client_id } => {
            if !store.delete_client(&client_id).await? {
                bail!("no client with id {client_id:?}; `ferrid client list` shows the clients");
            }
            tracing::info!(event = "client_removed", %client_id);
            println!("client {client_id} removed");
        }
        ClientCommand::List => {
            let clients = store.list_clients().await?;
            if clients.is_empty() {
                println!("no clients; add one with `ferrid client add ID --grant-type password`");
            }
            for c in clients {
                let grants: Vec<&str> = c.grant_types.iter().map(|g| g.as_str()).collect();
                println!(
                    "{:<20} {}  grants=[{}]  scopes=[{}]",
                    c.id,
                    if c.is_public() {
                        "public      "
                    } else {
                        "confidential"
                    },
                    grants.join(" "),
                    c.scopes
                );
            }
        }
    }
    Ok(())
}

/// A registration rule's error in the words of the flags.
fn in_flag_words(e: InvalidClient) -> anyhow::Error {
    match e {
        InvalidClient::PublicClientCredentials => anyhow::anyhow!(
            "a public client cannot use client_credentials; drop --public or that grant"
        ),
        InvalidClient::CodeWithoutRedirectUri => anyhow::anyhow!(
            "the authorization_code grant needs at least one --redirect-uri (where the browser \
             returns with the code; also accepted as post_logout_redirect_uri)"
        ),
        InvalidClient::WeakSecret => anyhow::anyhow!(
            "a client secret must have at least {MIN_CLIENT_SECRET_CHARS} characters (it is \
             stored as a SHA-256 digest, which is safe only for random secrets); leave out \
             --secret-stdin to have one generated"
        ),
        InvalidClient::NoGrantType => anyhow::anyhow!("give at least one --grant-type"),
    }
}
