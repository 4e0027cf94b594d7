//! Handing freed memory back to the operating system while ferrid idles.
//!
//! mimalloc (the global allocator, see `main.rs`) returns freed memory to the OS a second
//! after it was freed ("purge delay") — but it checks only when it next frees a page of its
//! own. A server that has just started (the dummy password hash's 19 MiB are freed) or whose
//! hashing threads have just let go of their working memory may free nothing more for a long
//! while, and keeps that memory resident meanwhile. [`housekeeping`] makes the check run:
//! soon after start, then every few seconds. (Under load, the allocator's own frees do it.)

use std::time::Duration;

/// mimalloc's purge delay (its `purge_delay` option, 1000 ms by default) and a margin.
const AFTER_FREE: Duration = Duration::from_millis(1500);
/// How often memory freed since is handed back while ferrid idles.
const EVERY: Duration = Duration::from_secs(10);

/// Runs [`nudge`] a purge delay after start, again after another (start-up frees come in
/// waves), then every 10 s. Runs until the task is dropped.
pub async fn housekeeping() {
    for wait in [AFTER_FREE, AFTER_FREE]
        .into_iter()
        .chain(std::iter::repeat(EVERY))
    {
        tokio::time::sleep(wait).await;
        // The purge itself is madvise calls: kept off the async workers.
        let _ = tokio::task::spawn_blocking(nudge).await;
    }
}

/// Allocates and frees a block big enough to get a page of its own in mimalloc (not one
/// shared with small objects), which runs its purge of memory freed earlier. Costs no
/// resident memory: the block is never written. Where memory is short (a strict overcommit
/// policy, an address-space limit), the allocation fails and nothing happens: it must never
/// abort the process.
pub fn nudge() {
    let mut block: Vec<u8> = Vec::new();
    if block.try_reserve_exact(64 << 20).is_ok() {
        drop(std::hint::black_box(block));
    }
}
