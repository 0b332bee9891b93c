//! Contract: Enrollments: create, list with filters and pages, update, delete, scope, the prospect index and the covering lookup.

use super::*;

pub(crate) async fn enrollments_create_list_filter_paginate(s: DynStore) {
    let a = scope("t1", "pa");
    let b = scope("t1", "pb");
    let (p1, p2, p3) = (pid(1), pid(2), pid(3));
    // Client order of types and ids is kept.
    let s1 = spec("k1", &[COMPANY, ROLE], &[p2, p1]);
    enroll(&s, &a, "enr_1", s1.clone()).await;
    enroll(&s, &a, "enr_2", spec("k2", &[ANNIV], &[p2, p3])).await;
    enroll(&s, &b, "enr_3", spec("k1", &ALL, &[p1])).await;
    enroll(&s, &a, "enr_4", spec("k1", &[ROLE], &[p3])).await;

    let dup = s
        .create_enrollment(
            &a,
            NewEnrollment {
                enrollment_id: eid("enr_1"),
                spec: spec("x", &[ROLE], &[p1]),
                webhook_id: store::LEGACY_WEBHOOK_ID.to_string(),
                now: NOW,
            },
        )
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");

    let page = list(&s, &a, EnrollmentQuery::default()).await;
    assert_eq!(ids(&page), ["enr_1", "enr_2", "enr_4"]);
    assert_eq!(page.next_cursor, None);
    assert_eq!(page.enrollments[0].spec, s1);
    assert_eq!(
        ids(&list(&s, &b, EnrollmentQuery::default()).await),
        ["enr_3"]
    );
    assert!(list(&s, &scope("t2", "pa"), EnrollmentQuery::default())
        .await
        .enrollments
        .is_empty());

    let by_key = |k: &str| EnrollmentQuery {
        enrollment_key: Some(k.into()),
        ..Default::default()
    };
    let by_prospect = |p: ProspectId| EnrollmentQuery {
        prospect_id: Some(p),
        ..Default::default()
    };
    assert_eq!(ids(&list(&s, &a, by_key("k1")).await), ["enr_1", "enr_4"]);
    assert_eq!(ids(&list(&s, &a, by_key("k2")).await), ["enr_2"]);
    assert!(list(&s, &a, by_key("nope")).await.enrollments.is_empty());
    assert_eq!(
        ids(&list(&s, &a, by_prospect(p2)).await),
        ["enr_1", "enr_2"]
    );
    assert_eq!(ids(&list(&s, &a, by_prospect(p1)).await), ["enr_1"]);
    assert_eq!(ids(&list(&s, &b, by_prospect(p1)).await), ["enr_3"]);
    let both = EnrollmentQuery {
        enrollment_key: Some("k1".into()),
        prospect_id: Some(p3),
        ..Default::default()
    };
    assert_eq!(ids(&list(&s, &a, both).await), ["enr_4"]);

    // Pages of two: a cursor while more may follow.
    let first = list(
        &s,
        &a,
        EnrollmentQuery {
            limit: Some(2),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ids(&first), ["enr_1", "enr_2"]);
    let cursor = first.next_cursor.expect("a next page");
    let second = list(
        &s,
        &a,
        EnrollmentQuery {
            limit: Some(2),
            cursor: Some(cursor),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ids(&second), ["enr_4"]);
    assert_eq!(second.next_cursor, None);
    // Exactly `limit` rows left: no cursor.
    let exact = list(
        &s,
        &a,
        EnrollmentQuery {
            limit: Some(3),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(exact.enrollments.len(), 3);
    assert_eq!(exact.next_cursor, None);
    // Filters and cursors combine.
    let q = EnrollmentQuery {
        enrollment_key: Some("k1".into()),
        limit: Some(1),
        ..Default::default()
    };
    let p = list(&s, &a, q.clone()).await;
    assert_eq!(ids(&p), ["enr_1"]);
    let p = list(
        &s,
        &a,
        EnrollmentQuery {
            cursor: p.next_cursor,
            ..q.clone()
        },
    )
    .await;
    assert_eq!(ids(&p), ["enr_4"]);
    let q = EnrollmentQuery {
        prospect_id: Some(p2),
        limit: Some(1),
        ..Default::default()
    };
    let p = list(&s, &a, q.clone()).await;
    assert_eq!(ids(&p), ["enr_1"]);
    let p = list(
        &s,
        &a,
        EnrollmentQuery {
            cursor: p.next_cursor,
            ..q
        },
    )
    .await;
    assert_eq!(ids(&p), ["enr_2"]);
    // Cursors round-trip through their text form.
    assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
}

pub(crate) async fn enrollment_update_replaces_atomically(s: DynStore) {
    let a = scope("t1", "pa");
    let (p1, p2, p3, p4) = (pid(1), pid(2), pid(3), pid(4));
    enroll(&s, &a, "enr_1", spec("k1", &[ROLE, COMPANY], &[p1, p2])).await;
    enroll(&s, &a, "enr_2", spec("k2", &[ANNIV], &[p3])).await;

    let new = spec("k1b", &[ANNIV], &[p4, p3, p2]);
    s.update_enrollment(&a, "enr_1", new.clone(), NOW)
        .await
        .unwrap();
    let page = list(&s, &a, EnrollmentQuery::default()).await;
    assert_eq!(ids(&page), ["enr_1", "enr_2"], "the creation order is kept");
    assert_eq!(page.enrollments[0].spec, new);

    // The prospect index follows: p1 is gone, p3/p4 are in, event types changed.
    let by = |p: ProspectId| EnrollmentQuery {
        prospect_id: Some(p),
        ..Default::default()
    };
    assert!(list(&s, &a, by(p1)).await.enrollments.is_empty());
    assert_eq!(ids(&list(&s, &a, by(p2)).await), ["enr_1"]);
    assert_eq!(ids(&list(&s, &a, by(p3)).await), ["enr_1", "enr_2"]);
    assert_eq!(ids(&list(&s, &a, by(p4)).await), ["enr_1"]);
    assert!(s.covering_enrollments(&p1, ROLE).await.unwrap().is_empty());
    assert!(s.covering_enrollments(&p2, ROLE).await.unwrap().is_empty());
    let cov = s.covering_enrollments(&p3, ANNIV).await.unwrap();
    assert_eq!(covering_ids(&cov), ["enr_1", "enr_2"]);
    assert_eq!(cov[0].enrollment_key, "k1b");
    let by_key = |k: &str| EnrollmentQuery {
        enrollment_key: Some(k.into()),
        ..Default::default()
    };
    assert!(list(&s, &a, by_key("k1")).await.enrollments.is_empty());
    assert_eq!(ids(&list(&s, &a, by_key("k1b")).await), ["enr_1"]);

    // Updating to an empty prospect list empties the index too.
    s.update_enrollment(&a, "enr_2", spec("k2", &[ANNIV], &[]), NOW)
        .await
        .unwrap();
    assert_eq!(ids(&list(&s, &a, by(p3)).await), ["enr_1"]);

    // Outside the scope (or missing): NotFound, and nothing changes.
    for (sc, id) in [
        (scope("t1", "pb"), "enr_1"),
        (scope("t2", "pa"), "enr_1"),
        (a.clone(), "enr_404"),
    ] {
        let r = s
            .update_enrollment(&sc, id, spec("evil", &ALL, &[p1]), NOW)
            .await;
        assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    }
    assert_eq!(
        list(&s, &a, EnrollmentQuery::default()).await.enrollments[0].spec,
        new
    );
    assert!(s.covering_enrollments(&p1, ROLE).await.unwrap().is_empty());
}

pub(crate) async fn enrollment_delete_and_scope(s: DynStore) {
    let a = scope("t1", "pa");
    let b = scope("t1", "pb");
    let p1 = pid(1);
    enroll(&s, &a, "enr_1", spec("k", &ALL, &[p1])).await;
    enroll(&s, &a, "enr_2", spec("k", &ALL, &[p1])).await;
    let r = s.delete_enrollment(&b, "enr_1").await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    s.delete_enrollment(&a, "enr_1").await.unwrap();
    let r = s.delete_enrollment(&a, "enr_1").await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    assert_eq!(
        ids(&list(&s, &a, EnrollmentQuery::default()).await),
        ["enr_2"]
    );
    let cov = s.covering_enrollments(&p1, ROLE).await.unwrap();
    assert_eq!(covering_ids(&cov), ["enr_2"]);
    let by = EnrollmentQuery {
        prospect_id: Some(p1),
        ..Default::default()
    };
    assert_eq!(ids(&list(&s, &a, by).await), ["enr_2"]);
    // The id is free again once deleted.
    enroll(&s, &b, "enr_1", spec("k", &[ROLE], &[p1])).await;
    let cov = s.covering_enrollments(&p1, ROLE).await.unwrap();
    assert_eq!(covering_ids(&cov), ["enr_2", "enr_1"]);
}

pub(crate) async fn concurrent_updates_keep_the_prospect_index_exact(s: DynStore) {
    // PATCHes of one enrollment racing each other (replicas): the prospect index always ends
    // up exactly the stored list of the last one.
    let a = scope("t1", "pa");
    enroll(
        &s,
        &a,
        "enr_1",
        spec("k", &ALL, &(1..=5).map(pid).collect::<Vec<_>>()),
    )
    .await;
    let mut tasks = Vec::new();
    for t in 0..8u32 {
        let s = s.clone();
        let a = a.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..10u32 {
                let start = (t * 3 + i * 7) % 20;
                let ids: Vec<ProspectId> = (start..start + 1 + (t + i) % 6).map(pid).collect();
                s.update_enrollment(&a, "enr_1", spec(&format!("k{t}"), &ALL, &ids), NOW)
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let page = list(&s, &a, EnrollmentQuery::default()).await;
    let stored: HashSet<ProspectId> = page.enrollments[0]
        .spec
        .prospect_ids
        .iter()
        .copied()
        .collect();
    assert!(!stored.is_empty());
    for n in 0..=26 {
        let p = pid(n);
        let listed = list(
            &s,
            &a,
            EnrollmentQuery {
                prospect_id: Some(p),
                ..Default::default()
            },
        )
        .await;
        let covering = s.covering_enrollments(&p, ROLE).await.unwrap();
        let expected = usize::from(stored.contains(&p));
        assert_eq!(listed.enrollments.len(), expected, "prospect {n}");
        assert_eq!(covering.len(), expected, "prospect {n}");
    }
    s.delete_enrollment(&a, "enr_1").await.unwrap();
    for n in 0..=26 {
        assert!(s
            .covering_enrollments(&pid(n), ROLE)
            .await
            .unwrap()
            .is_empty());
    }
}

pub(crate) async fn repeated_ids_are_indexed_once(s: DynStore) {
    // The API de-duplicates lists, but the store takes any: an id named twice is one index row,
    // on creation and on update (the index rows are inserted without `ON CONFLICT`).
    let a = scope("t1", "pa");
    let (p1, p2, p3) = (pid(1), pid(2), pid(3));
    enroll(&s, &a, "enr_1", spec("k", &ALL, &[p1, p2, p1])).await;
    s.update_enrollment(&a, "enr_1", spec("k", &ALL, &[p3, p2, p3, p2]), NOW)
        .await
        .unwrap();
    let by = |p: ProspectId| EnrollmentQuery {
        prospect_id: Some(p),
        ..Default::default()
    };
    assert!(list(&s, &a, by(p1)).await.enrollments.is_empty());
    assert_eq!(ids(&list(&s, &a, by(p2)).await), ["enr_1"]);
    assert_eq!(ids(&list(&s, &a, by(p3)).await), ["enr_1"]);
    assert_eq!(s.covering_enrollments(&p3, ROLE).await.unwrap().len(), 1);
    s.delete_enrollment(&a, "enr_1").await.unwrap();
    for p in [p1, p2, p3] {
        assert!(s.covering_enrollments(&p, ROLE).await.unwrap().is_empty());
    }
}

pub(crate) async fn covering_enrollments_by_event_type(s: DynStore) {
    let a = scope("t1", "pa");
    let b = scope("t2", "pb");
    let (p1, p2) = (pid(1), pid(2));
    enroll(&s, &a, "enr_a", spec("ka", &[ROLE, COMPANY], &[p1, p2])).await;
    enroll(&s, &b, "enr_b", spec("kb", &[COMPANY], &[p1])).await;
    enroll(&s, &a, "enr_c", spec("kc", &[ANNIV], &[p1])).await;

    let cov = s.covering_enrollments(&p1, COMPANY).await.unwrap();
    assert_eq!(
        cov,
        vec![
            CoveringEnrollment {
                tenant: TenantId("t1".into()),
                partner: PartnerId("pa".into()),
                enrollment_id: eid("enr_a"),
                webhook_id: LEGACY_WEBHOOK_ID.into(),
                enrollment_key: "ka".into(),
            },
            CoveringEnrollment {
                tenant: TenantId("t2".into()),
                partner: PartnerId("pb".into()),
                enrollment_id: eid("enr_b"),
                webhook_id: LEGACY_WEBHOOK_ID.into(),
                enrollment_key: "kb".into(),
            },
        ]
    );
    assert_eq!(
        covering_ids(&s.covering_enrollments(&p1, ROLE).await.unwrap()),
        ["enr_a"]
    );
    assert_eq!(
        covering_ids(&s.covering_enrollments(&p1, ANNIV).await.unwrap()),
        ["enr_c"]
    );
    assert_eq!(
        covering_ids(&s.covering_enrollments(&p2, ROLE).await.unwrap()),
        ["enr_a"]
    );
    assert!(s.covering_enrollments(&p2, ANNIV).await.unwrap().is_empty());
    assert!(s
        .covering_enrollments(&pid(3), ROLE)
        .await
        .unwrap()
        .is_empty());
}

// --- ingestion -------------------------------------------------------------------------------
