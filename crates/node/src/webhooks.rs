//! Webhooks: the change feed pushed to a URL. For each `[[webhooks]]` of the settings a task follows the feed
//! (`Store::feed`) and POSTs the new events, as `GET /api/v1/events` would list them, to the URL, signed with
//! HMAC-SHA256 over the timestamp and the body (`SDX-Signature: t=UNIX,v1=HEX`), and retries with backoff
//! until the receiver answers 2xx. Its cursor is kept in the store (connector state `webhook`/NAME), so after
//! a restart it continues where it was: every event is delivered at least once, in commit order; receivers
//! de-duplicate by `cursor`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;

use sdx_store::{FeedCursor, Store, StoreTx};

use crate::engine::Engine;

/// One webhook of the settings.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Name (1 to 64 of `A-Z a-z 0-9 - _`): the cursor is kept under it.
    pub name: String,
    /// Where to POST (`http://` on loopback or `https://`).
    pub url: String,
    /// File holding the shared HMAC key (at least 32 bytes; relative to the settings file).
    pub secret_file: std::path::PathBuf,
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSettings").field("name", &self.name).field("url", &self.url).finish_non_exhaustive()
    }
}

/// The name of the header carrying the signature.
pub const SIGNATURE_HEADER: &str = "sdx-signature";
/// Events per POST.
const BATCH: u32 = 100;
/// How often the feed is read when it had nothing.
const IDLE: Duration = Duration::from_millis(100);
/// Longest pause between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Connector-state namespace of the webhooks' cursors.
const STATE: &str = "webhook";

/// The signature of `body` sent at `t` (UNIX seconds): `t=T,v1=HEX(HMAC-SHA256(key, "T." + body))`.
pub fn sign(key: &[u8], t: i64, body: &[u8]) -> String {
    let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    let mut ctx = aws_lc_rs::hmac::Context::with_key(&k);
    ctx.update(format!("{t}.").as_bytes());
    ctx.update(body);
    format!("t={t},v1={}", hex::encode(ctx.sign().as_ref()))
}

/// Check a signature header against `body` (constant time), accepting timestamps within `tolerance` of `now`.
pub fn verify(key: &[u8], header: &str, body: &[u8], now: i64, tolerance: i64) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => v1 = Some(v),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else { return false };
    if (now - t).abs() > tolerance {
        return false;
    }
    let expected = sign(key, t, body);
    aws_lc_rs::constant_time::verify_slices_are_equal(expected.as_bytes(), format!("t={t},v1={v1}").as_bytes()).is_ok()
}

/// Follow the feed and push it to one webhook until `stop` turns true.
pub async fn run<S: Store>(
    engine: Engine<S>,
    hook: WebhookSettings,
    key: Vec<u8>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let client = match reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(webhook = %hook.name, error = %e, "webhook client");
            return;
        }
    };
    let store = engine.store().clone();
    let mut backoff = Duration::from_millis(500);
    loop {
        if *stop.borrow() {
            return;
        }
        let pause = match push_once(&store, &client, &hook, &key).await {
            Ok(true) => {
                backoff = Duration::from_millis(500);
                Duration::ZERO
            }
            Ok(false) => IDLE,
            Err(e) => {
                tracing::warn!(webhook = %hook.name, error = %e, retry_in_ms = backoff.as_millis() as u64, "webhook delivery failed");
                let p = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                p
            }
        };
        if !pause.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.changed() => {}
            }
        }
    }
}

/// Push the next batch; `Ok(false)` when there was nothing.
async fn push_once<S: Store>(
    store: &S,
    client: &reqwest::Client,
    hook: &WebhookSettings,
    key: &[u8],
) -> Result<bool, String> {
    let cursor = match store.connector_state(STATE, &hook.name).await.map_err(|e| e.to_string())? {
        Some(c) => FeedCursor::parse(c.value.trim_matches('"')).map_err(|e| e.to_string())?,
        None => FeedCursor::START,
    };
    let events = store.feed(cursor, BATCH).await.map_err(|e| e.to_string())?;
    let Some(last) = events.last().map(|e| e.cursor) else { return Ok(false) };
    let body = serde_json::to_vec(&crate::connector_api::feed_page(events, cursor)).map_err(|e| e.to_string())?;
    let t = time::OffsetDateTime::now_utc().unix_timestamp();
    let answer = client
        .post(&hook.url)
        .header("content-type", "application/json")
        .header(SIGNATURE_HEADER, sign(key, t, &body))
        .body(body)
        .send()
        .await
        .map_err(|e| format!("{}: {e}", hook.url))?;
    if !answer.status().is_success() {
        return Err(format!("{} answered {}", hook.url, answer.status()));
    }
    let mut tx = store.begin().await.map_err(|e| e.to_string())?;
    tx.put_connector_state(STATE, &hook.name, Some(&json!(last.to_string()).to_string()), None)
        .await
        .map_err(|e| e.to_string())?;
    tx.commit().await.map_err(|e| e.to_string())?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_unchanged_and_in_time() {
        let key = b"0123456789abcdef0123456789abcdef";
        let s = sign(key, 1_700_000_000, b"{\"events\":[]}");
        assert!(s.starts_with("t=1700000000,v1="));
        assert!(verify(key, &s, b"{\"events\":[]}", 1_700_000_100, 300));
        assert!(!verify(key, &s, b"{\"events\":[1]}", 1_700_000_100, 300), "another body");
        assert!(!verify(b"another key of thirty-two bytes!", &s, b"{\"events\":[]}", 1_700_000_100, 300));
        assert!(!verify(key, &s, b"{\"events\":[]}", 1_700_001_000, 300), "too old");
        assert!(!verify(key, "v1=00", b"{}", 0, 300));
    }
}
