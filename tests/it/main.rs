//! ferrid's integration tests: one binary (link time), one module per area.

mod support;

// mod cli;
mod discovery;
// mod keys;
// mod logs;
mod relying_party;
mod token;
mod userinfo;
