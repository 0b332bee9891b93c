//! Contract: Idempotency keys: reservation, fencing, replayed answers, expiry.

use super::*;

/// Idempotency keys: one reservation at a time, writes fenced by it (a taken-over reservation
/// writes nothing), answers replayed, other requests refused, scopes apart, expiry after 24 h.
pub(crate) async fn idempotency_keys_reserve_fence_replay_and_expire(s: DynStore) {
    use store::idempotency::{fenced, IDEMPOTENCY_LEASE as LEASE, IDEMPOTENCY_TTL as TTL};
    let ms1 = std::time::Duration::from_millis(1);
    let a = scope("t1", "pa");
    let now = NOW;
    let (fa, fb) = (b"request a".as_slice(), b"request b".as_slice());
    let execute = |b: IdemBegin| match b {
        IdemBegin::Execute(f) => f,
        other => panic!("expected a reservation, got {other:?}"),
    };
    let create = |s: &DynStore, id: &str| {
        let (s, sc, id) = (s.clone(), a.clone(), id.to_string());
        async move {
            let new = NewEnrollment {
                enrollment_id: eid(&id),
                spec: spec("idem", &[ROLE], &[pid(1)]),
                webhook_id: store::LEGACY_WEBHOOK_ID.to_string(),
                now: NOW,
            };
            s.create_enrollment(&sc, new).await
        }
    };

    // Reserve, execute fenced, store the answer; then the same request is replayed.
    let f1 = execute(s.idempotency_begin(&a, "k1", fa, now).await.unwrap());
    assert_eq!(
        s.idempotency_begin(&a, "k1", fa, now + ms1).await.unwrap(),
        IdemBegin::InProgress
    );
    assert_eq!(
        s.idempotency_begin(&a, "k1", fb, now + ms1).await.unwrap(),
        IdemBegin::Mismatch
    );
    fenced(f1.clone(), create(&s, "en_idem1")).await.unwrap();
    let answer = IdemAnswer {
        status: 200,
        detail: false,
        body: br#"{"enrollment_id":"en_idem1"}"#.to_vec(),
    };
    assert!(s.idempotency_finish(&f1, &answer).await.unwrap());
    assert_eq!(
        s.idempotency_begin(&a, "k1", fa, now + 2 * ms1)
            .await
            .unwrap(),
        IdemBegin::Replay(answer.clone())
    );
    assert_eq!(
        s.idempotency_begin(&a, "k1", fb, now + 2 * ms1)
            .await
            .unwrap(),
        IdemBegin::Mismatch
    );
    // The same key of another partner is another key.
    execute(
        s.idempotency_begin(&scope("t1", "pb"), "k1", fa, now)
            .await
            .unwrap(),
    );

    // A reservation abandoned past its lease with nothing written is taken over; the old
    // holder's write is then refused (nothing written), the new holder's goes through.
    let old = execute(s.idempotency_begin(&a, "k2", fa, now).await.unwrap());
    let new = execute(
        s.idempotency_begin(&a, "k2", fa, now + LEASE)
            .await
            .unwrap(),
    );
    assert!(matches!(
        fenced(old.clone(), create(&s, "en_idem2")).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        fenced(
            old.clone(),
            s.put_webhook(&a, "http://127.0.0.1:9/x", "sx", at_ms(ms(now)))
        )
        .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.get_webhook(&a).await.unwrap(), None);
    fenced(new.clone(), create(&s, "en_idem3")).await.unwrap();
    assert!(!s.idempotency_finish(&old, &answer).await.unwrap());
    let ids: Vec<String> = s
        .list_enrollments(&a, &EnrollmentQuery::default())
        .await
        .unwrap()
        .enrollments
        .into_iter()
        .map(|e| e.enrollment_id.0)
        .collect();
    assert_eq!(ids, ["en_idem1", "en_idem3"]);

    // Executed but never answered (a crash between the write and the answer): never executed
    // again, whether the lease ran out or the request released the key.
    let f3 = execute(s.idempotency_begin(&a, "k3", fa, now).await.unwrap());
    fenced(f3.clone(), create(&s, "en_idem4")).await.unwrap();
    assert_eq!(
        s.idempotency_begin(&a, "k3", fa, now + LEASE)
            .await
            .unwrap(),
        IdemBegin::ExecutedWithoutAnswer
    );
    s.idempotency_release(&f3).await.unwrap();
    assert_eq!(
        s.idempotency_begin(&a, "k3", fa, now + ms1).await.unwrap(),
        IdemBegin::ExecutedWithoutAnswer
    );

    // A request that wrote nothing (a clean NotFound) and released its key: a retry executes.
    let f4 = execute(s.idempotency_begin(&a, "k4", fa, now).await.unwrap());
    let missing = s.update_enrollment(&a, "en_missing", spec("idem", &[ROLE], &[pid(1)]), NOW);
    assert!(matches!(
        fenced(f4.clone(), missing).await,
        Err(StoreError::NotFound)
    ));
    s.idempotency_release(&f4).await.unwrap();
    execute(s.idempotency_begin(&a, "k4", fa, now + ms1).await.unwrap());

    // After 24 h a key is free again (another request may use it), and pruning deletes it.
    execute(s.idempotency_begin(&a, "k1", fb, now + TTL).await.unwrap());
    let pruned = s.prune_idempotency_keys(now + 2 * ms1).await.unwrap();
    assert_eq!(pruned, 4, "k2, k3, k4 and pb's k1 (k1 of pa was renewed)");
    assert_eq!(
        s.idempotency_begin(&a, "k1", fb, now + TTL + ms1)
            .await
            .unwrap(),
        IdemBegin::InProgress
    );
}
