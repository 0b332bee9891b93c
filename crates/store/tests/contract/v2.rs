//! Contract: v2 webhooks as resources (cap, names, the read-only legacy row, PATCH, rotation,
//! delete with and without force), enrollments bound to a webhook (paused, re-pointed) and
//! notifications routed, claimed, parked and logged per webhook.

use super::*;

fn new_webhook(id: &str, name: &str) -> NewWebhook {
    NewWebhook {
        webhook_id: id.into(),
        name: name.into(),
        description: Some(format!("{name} hook")),
        headers: vec![format!("X-Route: {name}")],
        payload_format: PayloadFormat::Json,
        webhook_url: format!("https://example.com/{name}"),
        secret: format!("secret-{name}"),
    }
}

fn key(sc: &Scope, id: &str) -> WebhookKey {
    WebhookKey::new(sc, id)
}

fn conflict(r: &StoreResult<impl std::fmt::Debug>, text: &str) -> bool {
    matches!(r, Err(StoreError::Conflict(m)) if m == text)
}

async fn enroll_to(s: &DynStore, sc: &Scope, id: &str, webhook: &str, ps: &[ProspectId]) {
    s.create_enrollment(
        sc,
        NewEnrollment {
            enrollment_id: eid(id),
            spec: spec(id, &ALL, ps),
            webhook_id: webhook.into(),
            now: NOW,
        },
    )
    .await
    .unwrap();
}

/// One role change for each of `ps` (first snapshot then a new title), ingested at `NOW`.
async fn change_roles(s: &DynStore, ps: &[u32], round: u32) -> IngestCounts {
    let batch: Vec<_> = ps
        .iter()
        .flat_map(|&p| {
            [
                snap(
                    p,
                    &format!("2024-0{}-01T00:00:00Z", 2 * round + 1),
                    "A",
                    1,
                    None,
                ),
                snap(
                    p,
                    &format!("2024-0{}-01T00:00:00Z", 2 * round + 2),
                    "B",
                    1,
                    None,
                ),
            ]
        })
        .collect();
    ingest_now(s, batch).await
}

pub(crate) async fn v2_webhooks_cap_names_legacy_and_changes(s: DynStore) {
    let a = scope("t1", "pa");
    let other = scope("t2", "pa");
    let now = NOW;
    s.put_webhook(
        &a,
        "https://example.com/v1",
        "legacy-secret",
        at_ms(ms(now)),
    )
    .await
    .unwrap();
    let w1 = s
        .create_webhook(&a, new_webhook("wh_1", "one"), now)
        .await
        .unwrap();
    assert_eq!(w1.webhook_id, "wh_1");
    assert_eq!(w1.name.as_deref(), Some("one"));
    assert_eq!(w1.headers, vec!["X-Route: one".to_string()]);
    assert!(w1.enabled && !w1.is_legacy());
    // Names are unique per scope, not across scopes.
    let dup = s.create_webhook(&a, new_webhook("wh_x", "one"), now).await;
    assert!(conflict(&dup, WEBHOOK_NAME_TAKEN), "{dup:?}");
    s.create_webhook(&other, new_webhook("wh_o", "one"), now)
        .await
        .unwrap();
    for i in 2..=MAX_WEBHOOKS {
        s.create_webhook(&a, new_webhook(&format!("wh_{i}"), &format!("n{i}")), now)
            .await
            .unwrap();
    }
    let over = s.create_webhook(&a, new_webhook("wh_11", "n11"), now).await;
    assert!(conflict(&over, WEBHOOK_CAP_REACHED), "{over:?}");
    // The legacy row first, then by creation; never another scope's.
    let all = s.list_webhooks(&a).await.unwrap();
    assert_eq!(all.len(), MAX_WEBHOOKS + 1);
    assert!(all[0].is_legacy() && all[0].name.is_none());
    assert_eq!(all[1].webhook_id, "wh_1");
    assert!(s
        .find_webhook(&key(&other, "wh_1"))
        .await
        .unwrap()
        .is_none());
    assert_eq!(s.list_webhooks(&other).await.unwrap().len(), 1);

    // The legacy row is read-only through v2.
    let l = key(&a, LEGACY_WEBHOOK_ID);
    let now2 = now + time::Duration::seconds(5);
    let r = s.change_webhook(&l, WebhookChange::default(), now2).await;
    assert!(conflict(&r, WEBHOOK_READ_ONLY), "{r:?}");
    let r = s.remove_webhook(&l, true, now2).await;
    assert!(conflict(&r, WEBHOOK_READ_ONLY), "{r:?}");
    let r = s
        .rotate_webhook_secret(&l, "x", std::time::Duration::ZERO, now2)
        .await;
    assert!(conflict(&r, WEBHOOK_READ_ONLY), "{r:?}");

    // PATCH: only the given fields; a taken name is refused; other scopes see nothing.
    let ch = WebhookChange {
        webhook_url: Some("https://example.com/one-b".into()),
        headers: Some(vec![]),
        payload_format: Some(PayloadFormat::StringifiedJson),
        ..Default::default()
    };
    let w = s.change_webhook(&key(&a, "wh_1"), ch, now2).await.unwrap();
    assert_eq!(w.webhook_url, "https://example.com/one-b");
    assert_eq!(w.name.as_deref(), Some("one"));
    assert_eq!(w.description.as_deref(), Some("one hook"));
    assert!(w.headers.is_empty());
    assert_eq!(w.payload_format, PayloadFormat::StringifiedJson);
    assert_eq!(w.last_modified_time, ms(now2));
    let taken = WebhookChange {
        name: Some("n2".into()),
        ..Default::default()
    };
    let r = s.change_webhook(&key(&a, "wh_1"), taken, now2).await;
    assert!(conflict(&r, WEBHOOK_NAME_TAKEN), "{r:?}");
    let same = WebhookChange {
        name: Some("one".into()),
        ..Default::default()
    };
    s.change_webhook(&key(&a, "wh_1"), same, now2)
        .await
        .unwrap();
    let r = s
        .change_webhook(&key(&other, "wh_1"), WebhookChange::default(), now2)
        .await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");

    // Rotation: a new secret at once, the old one kept with its grace end.
    let grace = std::time::Duration::from_secs(3600);
    let w = s
        .rotate_webhook_secret(&key(&a, "wh_1"), "secret-new", grace, now2)
        .await
        .unwrap();
    assert_eq!(w.secret, "secret-new");
    assert_eq!(w.previous_secret.as_deref(), Some("secret-one"));
    assert_eq!(
        w.previous_secret_until,
        Some(now2 + time::Duration::hours(1))
    );
    assert_eq!(w.previous_secret_at(now2), Some("secret-one"));
    assert_eq!(w.previous_secret_at(now2 + time::Duration::hours(2)), None);
    let r = s
        .rotate_webhook_secret(&key(&other, "wh_1"), "s", grace, now2)
        .await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    // The legacy secret is untouched by all of it.
    let legacy_row = s.get_webhook(&a).await.unwrap().unwrap();
    assert_eq!(legacy_row.secret, "legacy-secret");
}

pub(crate) async fn notifications_go_to_their_enrollments_webhook(s: DynStore) {
    let a = scope("t1", "pa");
    let now = NOW;
    s.put_webhook(
        &a,
        "https://example.com/v1",
        "legacy-secret",
        at_ms(ms(now)),
    )
    .await
    .unwrap();
    s.create_webhook(&a, new_webhook("wh_1", "one"), now)
        .await
        .unwrap();
    let mut two = new_webhook("wh_2", "two");
    two.payload_format = PayloadFormat::StringifiedJson;
    s.create_webhook(&a, two, now).await.unwrap();
    enroll_to(&s, &a, "en_v1", LEGACY_WEBHOOK_ID, &[pid(1)]).await;
    enroll_to(&s, &a, "en_1", "wh_1", &[pid(1), pid(2)]).await;
    enroll_to(&s, &a, "en_2", "wh_2", &[pid(3)]).await;
    // Unknown webhooks are refused; both lists show where each enrollment goes.
    let r = s
        .create_enrollment(
            &a,
            NewEnrollment {
                enrollment_id: eid("en_x"),
                spec: spec("x", &ALL, &[pid(1)]),
                webhook_id: "wh_nope".into(),
                now: NOW,
            },
        )
        .await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    let page = list(&s, &a, EnrollmentQuery::default()).await;
    let routes: Vec<(String, String, bool)> = page
        .enrollments
        .iter()
        .map(|e| (e.enrollment_id.0.clone(), e.webhook_id.clone(), e.paused))
        .collect();
    assert_eq!(
        routes,
        [
            ("en_v1".into(), LEGACY_WEBHOOK_ID.into(), false),
            ("en_1".into(), "wh_1".into(), false),
            ("en_2".into(), "wh_2".into(), false)
        ]
    );

    let c = change_roles(&s, &[1, 2, 3], 0).await;
    assert_eq!(c.notifications_queued, 4);
    let rows = s.outbox(Some(&a), 100).await.unwrap();
    let mut to: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.enrollment_id.clone().unwrap(), r.webhook_id.clone()))
        .collect();
    to.sort();
    assert_eq!(
        to,
        [
            ("en_1".into(), "wh_1".into()),
            ("en_1".into(), "wh_1".into()),
            ("en_2".into(), "wh_2".into()),
            ("en_v1".into(), LEGACY_WEBHOOK_ID.into())
        ]
    );
    // v1 body for the legacy webhook, v2 body (with webhook_id) for the others.
    for r in &rows {
        if r.webhook_id == LEGACY_WEBHOOK_ID {
            assert!(r.payload.get("webhook_id").is_none(), "{}", r.payload);
        } else {
            assert_eq!(r.payload["webhook_id"], r.webhook_id.as_str());
            assert_eq!(r.payload["enrollment_id"], r.enrollment_id.clone().unwrap());
            assert_eq!(r.payload["entity_type"], "prospect");
        }
    }

    // Claims carry each webhook's URL, secret, headers and format; room is per webhook.
    let t = ms(now) + 1_000;
    let room = ClaimRoom {
        per_scope: 10,
        scopes: vec![(key(&a, "wh_1"), 1)],
    };
    let got = s
        .claim_due(at_ms(t), Duration::from_millis(30_000), 10, &room)
        .await
        .unwrap();
    let mut by: Vec<(String, String, String)> = got
        .iter()
        .map(|c| {
            (
                c.webhook_id.clone(),
                c.secret.clone(),
                c.webhook_url.clone(),
            )
        })
        .collect();
    by.sort();
    assert_eq!(
        by,
        [
            (
                "wh_1".into(),
                "secret-one".into(),
                "https://example.com/one".into()
            ),
            (
                "wh_2".into(),
                "secret-two".into(),
                "https://example.com/two".into()
            ),
            (
                LEGACY_WEBHOOK_ID.into(),
                "legacy-secret".into(),
                "https://example.com/v1".into()
            )
        ]
    );
    let two = got.iter().find(|c| c.webhook_id == "wh_2").unwrap();
    assert_eq!(two.payload_format, PayloadFormat::StringifiedJson);
    assert_eq!(two.headers, vec!["X-Route: two".to_string()]);
    assert_eq!(two.previous_secret, None);
    // The v1 delivery log shows only the legacy webhook's deliveries, each v2 log its own.
    let q = DeliveryQuery {
        limit: 10,
        ..Default::default()
    };
    let log = |k: WebhookKey| {
        let s = s.clone();
        let q = q.clone();
        async move { s.list_deliveries(&k, &q).await.unwrap().deliveries.len() }
    };
    assert_eq!(log(legacy(&a)).await, 1);
    assert_eq!(log(key(&a, "wh_1")).await, 2);
    assert_eq!(log(key(&a, "wh_2")).await, 1);
    assert_eq!(log(key(&scope("t2", "pa"), "wh_1")).await, 0);
    let wh2_delivery = &two.delivery_id;
    assert!(s
        .get_delivery(&legacy(&a), wh2_delivery)
        .await
        .unwrap()
        .is_none());
    assert!(s
        .get_delivery(&key(&a, "wh_2"), wh2_delivery)
        .await
        .unwrap()
        .is_some());
    let r = s
        .retry_delivery(&key(&a, "wh_1"), wh2_delivery, at_ms(t))
        .await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
}

pub(crate) async fn disabled_webhooks_wait_and_rotation_signs_with_both(s: DynStore) {
    let a = scope("t1", "pa");
    let now = NOW;
    s.create_webhook(&a, new_webhook("wh_1", "one"), now)
        .await
        .unwrap();
    enroll_to(&s, &a, "en_1", "wh_1", &[pid(1)]).await;
    let off = WebhookChange {
        enabled: Some(false),
        ..Default::default()
    };
    let w = s.change_webhook(&key(&a, "wh_1"), off, now).await.unwrap();
    assert!(!w.enabled);
    // A disabled webhook takes no new enrollments and gets no deliveries: they wait.
    let r = s
        .create_enrollment(
            &a,
            NewEnrollment {
                enrollment_id: eid("en_2"),
                spec: spec("k", &ALL, &[pid(2)]),
                webhook_id: "wh_1".into(),
                now: NOW,
            },
        )
        .await;
    assert!(conflict(&r, WEBHOOK_NOT_ACTIVE), "{r:?}");
    assert_eq!(change_roles(&s, &[1], 0).await.notifications_queued, 1);
    let t = ms(now) + 1_000;
    let got = s
        .claim_due(
            at_ms(t),
            Duration::from_millis(30_000),
            10,
            &ClaimRoom::any(),
        )
        .await
        .unwrap();
    assert!(got.is_empty());
    // Re-enabled: they flow, signed for webhook-signature with the previous secret too while
    // a rotation's grace lasts.
    let grace = std::time::Duration::from_secs(60);
    s.rotate_webhook_secret(&key(&a, "wh_1"), "secret-new", grace, at_ms(t))
        .await
        .unwrap();
    let on = WebhookChange {
        enabled: Some(true),
        ..Default::default()
    };
    let w = s
        .change_webhook(&key(&a, "wh_1"), on, at_ms(t))
        .await
        .unwrap();
    assert!(w.enabled && w.disabled_reason.is_none());
    let got = s
        .claim_due(
            at_ms(t),
            Duration::from_millis(30_000),
            10,
            &ClaimRoom::any(),
        )
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].secret, "secret-new");
    assert_eq!(got[0].previous_secret.as_deref(), Some("secret-one"));
    s.set_lease(got[0].row, got[0].lease_until, None)
        .await
        .unwrap();
    // After the grace only the new secret signs.
    let later = t + 61_000;
    let got = s
        .claim_due(
            at_ms(later),
            Duration::from_millis(30_000),
            10,
            &ClaimRoom::any(),
        )
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].previous_secret, None);
}

pub(crate) async fn deleting_a_used_webhook_needs_force_and_pauses(s: DynStore) {
    let a = scope("t1", "pa");
    let now = NOW;
    s.create_webhook(&a, new_webhook("wh_1", "one"), now)
        .await
        .unwrap();
    s.create_webhook(&a, new_webhook("wh_2", "two"), now)
        .await
        .unwrap();
    enroll_to(&s, &a, "en_1", "wh_1", &[pid(1)]).await;
    enroll_to(&s, &a, "en_2", "wh_1", &[pid(2)]).await;
    assert_eq!(change_roles(&s, &[1], 0).await.notifications_queued, 1);

    let blocked = s
        .remove_webhook(&key(&a, "wh_1"), false, now)
        .await
        .unwrap();
    assert_eq!(
        blocked,
        WebhookRemoval::Blocked(vec![eid("en_1"), eid("en_2")])
    );
    assert!(s.find_webhook(&key(&a, "wh_1")).await.unwrap().is_some());
    let r = s
        .remove_webhook(&key(&scope("t2", "pa"), "wh_1"), true, now)
        .await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    // An unused webhook goes without force.
    assert_eq!(
        s.remove_webhook(&key(&a, "wh_2"), false, now)
            .await
            .unwrap(),
        WebhookRemoval::Removed(vec![])
    );

    let removed = s.remove_webhook(&key(&a, "wh_1"), true, now).await.unwrap();
    assert_eq!(
        removed,
        WebhookRemoval::Removed(vec![eid("en_1"), eid("en_2")])
    );
    assert!(s.find_webhook(&key(&a, "wh_1")).await.unwrap().is_none());
    let page = list(&s, &a, EnrollmentQuery::default()).await;
    assert!(page.enrollments.iter().all(|e| e.paused));
    // Its pending notification failed; a paused enrollment queues nothing.
    let rows = s.outbox(Some(&a), 10).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status, DeliveryStatus::Failed);
    assert_eq!(change_roles(&s, &[1, 2], 1).await.notifications_queued, 0);

    // PATCHing an active webhook re-activates; other fields stay unless given.
    let r = s
        .patch_enrollment(
            &a,
            "en_1",
            EnrollmentPatch {
                webhook_id: Some("wh_1".into()),
                ..Default::default()
            },
            NOW,
        )
        .await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    s.create_webhook(&a, new_webhook("wh_3", "three"), now)
        .await
        .unwrap();
    let e = s
        .patch_enrollment(
            &a,
            "en_1",
            EnrollmentPatch {
                webhook_id: Some("wh_3".into()),
                prospect_ids: Some(vec![pid(1), pid(5)]),
                ..Default::default()
            },
            NOW,
        )
        .await
        .unwrap();
    assert_eq!((e.webhook_id.as_str(), e.paused), ("wh_3", false));
    assert_eq!(e.spec.enrollment_key, "en_1");
    assert_eq!(e.spec.prospect_ids, vec![pid(1), pid(5)]);
    let cov = s.covering_enrollments(&pid(5), ROLE).await.unwrap();
    assert_eq!(cov.len(), 1);
    assert_eq!(cov[0].webhook_id, "wh_3");
    assert!(s
        .covering_enrollments(&pid(2), ROLE)
        .await
        .unwrap()
        .is_empty());
    let r = s
        .patch_enrollment(&scope("t2", "pa"), "en_1", EnrollmentPatch::default(), NOW)
        .await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    assert_eq!(change_roles(&s, &[5], 2).await.notifications_queued, 1);
}

pub(crate) async fn webhook_health_moves_per_webhook_in_batches(s: DynStore) {
    // Every webhook starts at generation 1: a batch's success on one webhook must not clear
    // another's failing streak (recoveries are matched by webhook id, not generation alone).
    let a = scope("t1", "pa");
    s.put_webhook(&a, "https://example.com/v1", "legacy-secret", NOW)
        .await
        .unwrap();
    s.create_webhook(&a, new_webhook("wh_1", "one"), NOW)
        .await
        .unwrap();
    enroll_to(&s, &a, "en_v1", LEGACY_WEBHOOK_ID, &[pid(1)]).await;
    enroll_to(&s, &a, "en_1", "wh_1", &[pid(2)]).await;
    assert_eq!(change_roles(&s, &[1, 2], 0).await.notifications_queued, 2);
    let t = ms(NOW) + 1_000;
    let got = s
        .claim_due(
            at_ms(t),
            Duration::from_millis(30_000),
            10,
            &ClaimRoom::any(),
        )
        .await
        .unwrap();
    let on = |w: &str| got.iter().find(|c| c.webhook_id == w).unwrap().clone();
    let (v1, one) = (on(LEGACY_WEBHOOK_ID), on("wh_1"));
    assert_eq!((v1.generation, one.generation), (1, 1));
    let failing = |at: i64| AttemptRecord {
        disable_after_ms: 1,
        ..attempt(&v1, at, AttemptOutcome::RetryAt(at + 60_000), Some(500))
    };
    s.record_attempts(vec![failing(t)]).await.unwrap();
    s.record_attempts(vec![attempt(
        &one,
        t + 1,
        AttemptOutcome::Delivered,
        Some(200),
    )])
    .await
    .unwrap();
    // The legacy webhook has been failing since `t`: one more failure 2 ms later disables it.
    s.record_attempts(vec![failing(t + 2)]).await.unwrap();
    let v1_hook = s.get_webhook(&a).await.unwrap().unwrap();
    assert!(
        !v1_hook.enabled,
        "wh_1's success cleared the v1 webhook's streak"
    );
    let one_hook = s.find_webhook(&key(&a, "wh_1")).await.unwrap().unwrap();
    assert!(one_hook.enabled);
}
