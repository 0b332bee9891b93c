//! Upgrade test support: the rows a pre-v2 database holds (a v1 webhook, an enrollment, a
//! pending notification) and what the upgraded store must make of them. Each backend's
//! `migrate` tests build the old schema, insert these and open the store on it.

use crate::model::*;
use crate::Store;
use domain::{EventType, PartnerId, ProspectId, TenantId};

pub(crate) const PROSPECT: &str = "20ae6cbf564ee683e66685e429844a5ff8ffc30f";
pub(crate) const SECRET: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// The pre-v2 rows, as SQL for either backend (`blob` renders the prospect id literal,
/// `with_payload` says whether `notifications` still has its `payload` column).
pub(crate) fn pre_v2_rows(blob: &str, with_payload: bool) -> String {
    let bit = EventType::ChangedRole.bit();
    let (payload_col, payload_val) = if with_payload {
        (", payload", ", '{\"old\":true}'")
    } else {
        ("", "")
    };
    format!(
        "INSERT INTO webhooks (tenant_id, partner_id, webhook_url, secret, created_at, last_modified_time)
            VALUES ('t1', 'pa', 'https://example.com/v1', '{SECRET}', 1000, 1000);
         INSERT INTO enrollments (enrollment_id, tenant_id, partner_id, enrollment_key, event_types,
            event_mask, prospect_ids, created_at, updated_at)
            VALUES ('en_old', 't1', 'pa', 'kold', 'prospect_changed_role', {bit}, '{PROSPECT}', 1, 1);
         INSERT INTO enrollment_prospects (prospect_id, enrollment_ref) VALUES ({blob}, 1);
         INSERT INTO notifications (delivery_id, event_id, event_name, event_time, tenant_id,
            partner_id, enrollment_id, enrollment_key, next_attempt_at, created_at{payload_col})
            VALUES ('dl_old', 'ev_old', 'prospect_changed_role', 1, 't1', 'pa', 'en_old', 'kold', 0, 1{payload_val});"
    )
}

/// What the upgraded store shows of [`pre_v2_rows`]: the v1 webhook as the legacy row, the
/// enrollment and the pending notification routed to it, and v2 webhooks creatable beside it.
pub(crate) async fn check_upgraded(s: &dyn Store) {
    let a = Scope {
        tenant: TenantId("t1".into()),
        partner: PartnerId("pa".into()),
    };
    let w = s.get_webhook(&a).await.unwrap().expect("the v1 webhook");
    assert!(w.is_legacy());
    assert_eq!((w.secret.as_str(), w.generation), (SECRET, 1));
    assert_eq!(w.payload_format, PayloadFormat::Json);
    assert!(w.headers.is_empty() && w.name.is_none());
    assert_eq!(s.list_webhooks(&a).await.unwrap(), vec![w]);
    // The console's stats read the upgraded indexes (the v2 migration replaced the pending
    // index the backlog query used to name).
    let stats = s
        .webhook_stats(&WebhookKey::legacy(&a), time::OffsetDateTime::UNIX_EPOCH)
        .await
        .unwrap();
    assert_eq!((stats.attempts, stats.pending), (0, 1));
    let page = s
        .list_enrollments(&a, &EnrollmentQuery::default())
        .await
        .unwrap();
    assert_eq!(page.enrollments.len(), 1);
    let e = &page.enrollments[0];
    assert_eq!(
        (e.enrollment_id.0.as_str(), e.webhook_id.as_str(), e.paused),
        ("en_old", LEGACY_WEBHOOK_ID, false)
    );
    let p = ProspectId::parse(PROSPECT).unwrap();
    let cov = s
        .covering_enrollments(&p, EventType::ChangedRole)
        .await
        .unwrap();
    assert_eq!(cov.len(), 1);
    assert_eq!(cov[0].webhook_id, LEGACY_WEBHOOK_ID);
    let got = s
        .claim_due(
            domain::clock::from_unix_millis(1_000_000),
            std::time::Duration::from_secs(30),
            10,
            &ClaimRoom::any(),
        )
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].delivery_id, "dl_old");
    assert_eq!(got[0].webhook_id, LEGACY_WEBHOOK_ID);
    assert_eq!(got[0].webhook_url, "https://example.com/v1");
    let log = s
        .list_deliveries(
            &WebhookKey::legacy(&a),
            &DeliveryQuery {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(log.deliveries.len(), 1);
    let created = s
        .create_webhook(
            &a,
            NewWebhook {
                webhook_id: new_webhook_id(),
                name: "after-upgrade".into(),
                description: None,
                headers: vec![],
                payload_format: PayloadFormat::Json,
                webhook_url: "https://example.com/v2".into(),
                secret: SECRET.into(),
            },
            time::OffsetDateTime::now_utc(),
        )
        .await
        .unwrap();
    assert_eq!(s.list_webhooks(&a).await.unwrap().len(), 2);
    assert!(created.webhook_id.starts_with("wh_") && created.webhook_id.len() == 19);
}
