//! Micro-benchmarks of the work behind every token: `cargo bench --bench crypto`.
//!
//! Token minting (access and ID tokens, RS256 with the ring's signing key), access-token
//! verification (the path /userinfo and /introspect take: the first time a token is seen,
//! and once it is remembered), and password hashing and
//! verification (argon2id at ferrid's parameters; a bcrypt hash imported from passlib).
//! The load benchmark (`cargo bench --bench load`) puts these against the HTTP endpoints.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use ferrid::model::Secret;
use ferrid::password::{HashParams, Passwords};
use ferrid::tokens::{AccessClaims, Audience, IdClaims, Keys, ProfileClaims, TokenIssuer, keys};

fn access_claims() -> AccessClaims {
    AccessClaims {
        iss: "https://id.example".into(),
        sub: "0f6c2a4e-3f7b-4c1e-9a55-2b1d7e0c9f10".into(),
        aud: Audience::One("app".into()),
        exp: 2_000_000_000,
        iat: 1_700_000_000,
        nbf: None,
        jti: "2c5e1f0a-8d4b-4e7a-b3c9-6f1d0e2a7b48".into(),
        client_id: "app".into(),
        scope: "openid profile email".into(),
        auth_time: Some(1_700_000_000),
        sid: Some("7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d".into()),
    }
}

fn tokens(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::new(keys::load_or_generate(dir.path(), 0, Default::default()).unwrap());
    let issuer = TokenIssuer::new("https://id.example".into(), keys.clone());
    let claims = access_claims();
    let id_claims = IdClaims {
        iss: claims.iss.clone(),
        sub: claims.sub.clone(),
        aud: "app".into(),
        exp: claims.exp,
        iat: claims.iat,
        auth_time: claims.iat,
        at_hash: "kXaOVVyvbNhyxiAXgPy9xQ".into(),
        nonce: None,
        sid: claims.sid.clone(),
        profile: ProfileClaims {
            name: Some("Alice Example".into()),
            preferred_username: Some("alice".into()),
            email: Some("alice@example.com".into()),
            email_verified: Some(true),
        },
    };
    let token = issuer.sign_access(&claims).unwrap();

    let mut group = c.benchmark_group("tokens");
    group.bench_function("mint access token (RS256)", |b| {
        b.iter(|| issuer.sign_access(black_box(&claims)).unwrap())
    });
    group.bench_function("mint ID token (RS256)", |b| {
        b.iter(|| issuer.sign_id(black_box(&id_claims)).unwrap())
    });
    group.bench_function("verify access token (first time: RS256 signature)", |b| {
        b.iter_batched(
            || TokenIssuer::new("https://id.example".into(), keys.clone()),
            |fresh| {
                fresh
                    .verify_access(black_box(&token), 1_800_000_000)
                    .unwrap()
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("verify access token (remembered)", |b| {
        b.iter(|| {
            issuer
                .verify_access(black_box(&token), 1_800_000_000)
                .unwrap()
        })
    });
    group.finish();
}

fn hashing(c: &mut Criterion) {
    let passwords = Passwords::new(HashParams::default(), 1, 0).unwrap();
    let password = Secret::new("correct horse battery staple");
    let argon2 = passwords.hash_blocking(&password).unwrap();
    let bcrypt = Secret::new(bcrypt::hash("correct horse battery staple", 12).unwrap());

    let mut group = c.benchmark_group("passwords");
    group.sample_size(20);
    group.bench_function("argon2id hash (m=19456 KiB, t=2, p=1)", |b| {
        b.iter(|| passwords.hash_blocking(black_box(&password)).unwrap())
    });
    group.bench_function("argon2id verify", |b| {
        b.iter(|| passwords.verify_blocking(Some(black_box(&argon2)), &password))
    });
    group.sample_size(10);
    group.bench_function("bcrypt verify (cost 12, imported)", |b| {
        b.iter(|| passwords.verify_blocking(Some(black_box(&bcrypt)), &password))
    });
    group.finish();
}

criterion_group!(benches, tokens, hashing);
criterion_main!(benches);
