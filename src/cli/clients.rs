//! `ferrid client …`: add, update, rotate-secret, list, remove.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use super::{read_secret_line, scopes_from_flags, set_or_clear, switch};
use crate::clock::Clock;
use crate::config::StorageArgs;
use crate::model::{
    BackchannelLogoutUri, Client, ClientChanges, ClientId, ClientRegistration, DisplayName,
    GrantType, InvalidClient, MIN_CLIENT_SECRET_CHARS, RedirectUri, RedirectUriPolicy,
    RelyingPartySettings, ScopeSet, Secret, check_client_shape,
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
        #[command(flatten)]
        registration: RegistrationArgs,
        /// Read the client secret from standard input instead of generating one.
        #[arg(long)]
        secret_stdin: bool,
        /// Print `{"client_id": …, "client_secret": …}`.
        #[arg(long)]
        json: bool,
    },
    /// Change a client's registration. A list that is given replaces the stored one; what
    /// is not given is kept, and so are its secret and its live tokens.
    Update {
        client_id: String,
        #[command(flatten)]
        registration: RegistrationArgs,
        /// Remove every grant type (a resource server that only introspects).
        #[arg(long, conflicts_with = "grant_types")]
        no_grant_type: bool,
        /// Access tokens' `aud` becomes the client id again.
        #[arg(long, conflicts_with = "audiences")]
        no_audience: bool,
        /// Remove the display name (pages show the client id).
        #[arg(long, conflicts_with = "name")]
        no_name: bool,
        /// Stop asking users for consent.
        #[arg(long, conflicts_with = "consent")]
        no_consent: bool,
        /// Remove every post-logout redirect URI.
        #[arg(long, conflicts_with = "post_logout_redirect_uris")]
        no_post_logout_redirect_uri: bool,
        /// Stop sending logout tokens.
        #[arg(long, conflicts_with = "backchannel_logout_uri")]
        no_backchannel_logout_uri: bool,
    },
    /// Replace a confidential client's secret with a new one, printed once. Its tokens stay
    /// valid; the old secret stops working at once.
    RotateSecret {
        client_id: String,
        /// Print `{"client_id": …, "client_secret": …}`.
        #[arg(long)]
        json: bool,
    },
    /// List clients.
    List,
    /// Remove a client; its refresh tokens stop working at once.
    Remove { client_id: String },
}

/// The flags `client add` and `client update` share.
#[derive(Args, Debug)]
pub struct RegistrationArgs {
    /// A scope the client may request (repeat for more). Default for `add`: openid profile
    /// email.
    #[arg(long = "scope")]
    scopes: Vec<String>,
    /// A grant type the client may use (repeat for more). A public client needs one; a
    /// confidential client with none can only introspect (a resource server).
    #[arg(long = "grant-type")]
    grant_types: Vec<String>,
    /// A redirect URI for the authorization-code flow (repeat for more).
    #[arg(long = "redirect-uri")]
    redirect_uris: Vec<String>,
    /// `aud` of the access tokens this client gets (repeat for more). Default: its id.
    #[arg(long = "audience")]
    audiences: Vec<String>,
    /// The name users see on the login and consent pages (default: the client id).
    #[arg(long)]
    name: Option<String>,
    /// Users must allow the requested scopes on a consent page (for third-party apps).
    #[arg(long)]
    consent: bool,
    /// Where RP-initiated logout may return the browser to (repeat for more).
    #[arg(long = "post-logout-redirect-uri")]
    post_logout_redirect_uris: Vec<String>,
    /// Where ferrid POSTs logout tokens when a session the client signed in ends
    /// (OpenID Connect Back-Channel Logout; https, or http on a loopback host).
    #[arg(long)]
    backchannel_logout_uri: Option<String>,
    /// Also accept plain-http redirect URIs on hosts other than this machine. For
    /// development only: codes would cross the network unencrypted.
    #[arg(long)]
    dev_allow_http_redirect_uri: bool,
}

/// The registration flags, parsed by the domain's rules.
struct Parsed {
    grant_types: Vec<GrantType>,
    scopes: Option<ScopeSet>,
    redirect_uris: Vec<RedirectUri>,
    post_logout_redirect_uris: Vec<RedirectUri>,
    name: Option<DisplayName>,
    backchannel_logout_uri: Option<BackchannelLogoutUri>,
}

impl RegistrationArgs {
    fn parse(&self) -> anyhow::Result<Parsed> {
        let grant_types = self
            .grant_types
            .iter()
            .flat_map(|g| g.split([',', ' ']))
            .filter(|g| !g.is_empty())
            .map(|g| g.parse::<GrantType>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("--grant-type: {e}"))?;
        let policy = RedirectUriPolicy {
            allow_http_anywhere: self.dev_allow_http_redirect_uri,
        };
        let uris = |flag: &str, uris: &[String]| {
            uris.iter()
                .map(|uri| RedirectUri::parse(uri, policy))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| anyhow::anyhow!("--{flag} {e}"))
        };
        Ok(Parsed {
            grant_types,
            scopes: (!self.scopes.is_empty())
                .then(|| scopes_from_flags(&self.scopes))
                .transpose()?,
            redirect_uris: uris("redirect-uri", &self.redirect_uris)?,
            post_logout_redirect_uris: uris(
                "post-logout-redirect-uri",
                &self.post_logout_redirect_uris,
            )?,
            name: self
                .name
                .as_deref()
                .map(DisplayName::parse)
                .transpose()
                .context("--name")?,
            backchannel_logout_uri: self
                .backchannel_logout_uri
                .as_deref()
                .map(BackchannelLogoutUri::parse)
                .transpose()
                .context("--backchannel-logout-uri")?,
        })
    }
}

pub(super) async fn run(cmd: ClientCommand, storage: &StorageArgs) -> anyhow::Result<()> {
    let store = Store::connect(&storage.database_url, 2).await?;
    let result = client_command(cmd, &store).await;
    store.close().await;
    result
}

async fn client_command(cmd: ClientCommand, store: &Store) -> anyhow::Result<()> {
    let missing = |id: &str| {
        anyhow::anyhow!("no client with id {id:?}; `ferrid client list` shows the clients")
    };
    match cmd {
        ClientCommand::Add {
            client_id,
            public,
            registration,
            secret_stdin,
            json,
        } => {
            let id = ClientId::parse(&client_id)?;
            // The rules that do not need the secret, before any is read.
            let parsed = registration.parse()?;
            check_client_shape(
                public,
                registration.consent,
                &parsed.grant_types,
                &parsed.redirect_uris,
            )
            .map_err(in_flag_words)?;
            if public && secret_stdin {
                bail!("a public client has no secret; drop --public or --secret-stdin");
            }
            let secret = match (public, secret_stdin) {
                (true, _) => None,
                (false, true) => Some(read_secret_line("Client secret: ".into()).await?),
                (false, false) => Some(client_auth::new_client_secret()?),
            };
            let registration = ClientRegistration {
                id,
                secret: secret.clone(),
                grant_types: parsed.grant_types,
                scopes: match parsed.scopes {
                    Some(s) => s,
                    None => ScopeSet::parse("openid profile email")?,
                },
                redirect_uris: parsed.redirect_uris,
                audiences: registration.audiences,
                settings: RelyingPartySettings {
                    name: parsed.name,
                    consent: registration.consent,
                    post_logout_redirect_uris: parsed.post_logout_redirect_uris,
                    backchannel_logout_uri: parsed.backchannel_logout_uri,
                },
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
            let shown = if secret_stdin { None } else { secret };
            print_secret(&client_id, shown.as_ref(), json, public);
        }
        ClientCommand::Update {
            client_id,
            registration,
            no_grant_type,
            no_audience,
            no_name,
            no_consent,
            no_post_logout_redirect_uri,
            no_backchannel_logout_uri,
        } => {
            let parsed = registration.parse()?;
            let changes = ClientChanges {
                grant_types: given(parsed.grant_types, no_grant_type),
                scopes: parsed.scopes,
                redirect_uris: given(parsed.redirect_uris, false),
                audiences: given(registration.audiences, no_audience),
                name: set_or_clear(parsed.name, no_name),
                consent: switch(registration.consent, no_consent),
                post_logout_redirect_uris: given(
                    parsed.post_logout_redirect_uris,
                    no_post_logout_redirect_uri,
                ),
                backchannel_logout_uri: set_or_clear(
                    parsed.backchannel_logout_uri,
                    no_backchannel_logout_uri,
                ),
            };
            let Some(stored) = store.client(&client_id).await? else {
                return Err(missing(&client_id));
            };
            let client = stored.updated(changes).map_err(in_flag_words)?;
            if !store.update_client(&client).await? {
                return Err(missing(&client_id));
            }
            tracing::info!(event = "client_updated", %client_id);
            println!("client {client_id} updated");
        }
        ClientCommand::RotateSecret { client_id, json } => {
            let secret = client_auth::new_client_secret()?;
            let hash = client_auth::hash_client_secret(secret.expose());
            if !store.set_client_secret(&client_id, &hash).await? {
                match store.client(&client_id).await? {
                    Some(_) => bail!("{client_id} is a public client: it has no secret"),
                    None => return Err(missing(&client_id)),
                }
            }
            tracing::info!(event = "client_secret_rotated", %client_id);
            print_secret(&client_id, Some(&secret), json, false);
        }
        ClientCommand::Remove { client_id } => {
            if !store.delete_client(&client_id).await? {
                return Err(missing(&client_id));
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
                    "{:<20} {}  grants=[{}]  scopes=[{}]{}{}",
                    c.id,
                    if c.is_public() {
                        "public      "
                    } else {
                        "confidential"
                    },
                    grants.join(" "),
                    c.scopes,
                    c.name
                        .as_deref()
                        .map(|n| format!("  name={n:?}"))
                        .unwrap_or_default(),
                    if c.consent { "  consent" } else { "" },
                );
            }
        }
    }
    Ok(())
}

/// A list flag of `client update`: replaces the stored list when given, or when `clear` (its
/// `--no-…` flag) empties it; `None` keeps what is stored.
fn given<T>(list: Vec<T>, clear: bool) -> Option<Vec<T>> {
    (clear || !list.is_empty()).then_some(list)
}

/// Prints a client's id and, once, a secret ferrid generated.
fn print_secret(client_id: &str, shown: Option<&Secret>, json: bool, public: bool) {
    let shown = shown.map(Secret::expose);
    if json {
        println!(
            "{}",
            serde_json::json!({"client_id": client_id, "client_secret": shown})
        );
        return;
    }
    println!("client_id:     {client_id}");
    match shown {
        Some(s) => {
            println!("client_secret: {s}");
            println!(
                "Store the secret now: ferrid keeps only a hash of it and cannot show it again."
            );
        }
        None if public => println!("public client: it authenticates with its client_id alone"),
        None => println!("client secret: the one read from standard input"),
    }
}

/// A registration rule's error in the words of the flags.
fn in_flag_words(e: InvalidClient) -> anyhow::Error {
    match e {
        InvalidClient::PublicClientCredentials => anyhow::anyhow!(
            "a public client cannot use client_credentials; drop --public or that grant"
        ),
        InvalidClient::CodeWithoutRedirectUri => anyhow::anyhow!(
            "the authorization_code grant needs at least one --redirect-uri (where the browser \
             returns with the code)"
        ),
        InvalidClient::WeakSecret => anyhow::anyhow!(
            "a client secret must have at least {MIN_CLIENT_SECRET_CHARS} characters (it is \
             stored as a SHA-256 digest, which is safe only for random secrets); leave out \
             --secret-stdin to have one generated"
        ),
        InvalidClient::NoGrantType => {
            anyhow::anyhow!("a public client needs at least one --grant-type")
        }
        InvalidClient::ConsentWithPassword => anyhow::anyhow!(
            "a client with --consent cannot use the password grant (users would never see the \
             consent page); drop --consent or --grant-type password"
        ),
    }
}
