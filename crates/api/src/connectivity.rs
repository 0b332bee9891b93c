//! The connectivity check's send: one signed test notification (the
//! [`Notification::connectivity_check`]) POSTed to the registered webhook right now, and what
//! the receiver answered, shaped for the API's answer. No retries and no outbox row.

use crate::error::ApiError;
use delivery::{Secrets, Sender};
use domain::notification::{random_delivery_id, Notification};
use serde_json::{json, Value};
use store::{Scope, Webhook};
use time::OffsetDateTime;

/// How much of the receiver's answer the API shows.
const SHOWN_BODY_BYTES: usize = 1024;

/// What the receiver made of the test notification.
pub(crate) struct CheckResult {
    /// It answered 2xx.
    pub ok: bool,
    /// Its status, latency and the start of its body, when it answered at all.
    pub webhook_response: Option<Value>,
    /// Why no answer came (transport error, timeout, SSRF refusal).
    pub error: Option<String>,
}

/// Signs and sends the test notification to `webhook`, once, stamped `now`: in its payload
/// format, with its custom headers (v1's body for the legacy webhook, v2's otherwise).
pub(crate) async fn check(
    sender: &Sender,
    scope: &Scope,
    webhook: &Webhook,
    now: OffsetDateTime,
) -> Result<CheckResult, ApiError> {
    let notification =
        Notification::connectivity_check(&scope.tenant, &scope.partner, rand::random(), now);
    let body = webhook
        .payload_format
        .render(&webhook.body_json(&notification));
    let secrets = Secrets {
        current: &webhook.secret,
        previous: webhook.previous_secret_at(now),
    };
    let res = sender
        .send_signed(
            &webhook.webhook_url,
            secrets,
            &webhook.headers,
            &random_delivery_id(rand::random()),
            notification.event_id(),
            now,
            body,
        )
        .await
        .map_err(|e| ApiError::Internal(format!("signing with the stored secret: {e}")))?;
    let ok = matches!(res.status, Some(s) if (200..300).contains(&s));
    Ok(match res.status {
        Some(code) => {
            let mut body = res.response_body_prefix;
            truncate_utf8(&mut body, SHOWN_BODY_BYTES);
            CheckResult {
                ok,
                webhook_response: Some(
                    json!({"status_code": code, "latency_ms": res.latency_ms, "body": body}),
                ),
                error: None,
            }
        }
        None => CheckResult {
            ok,
            webhook_response: None,
            error: res.error.or(Some("no response".into())),
        },
    })
}

fn truncate_utf8(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}
