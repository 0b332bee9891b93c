//! Contract: API keys, tenants and partners; the liveness probe.

use super::*;

pub(crate) async fn backend_answers_ping(s: DynStore) {
    s.ping().await.unwrap();
    assert!(["sqlite", "postgres"].contains(&s.backend()));
}

pub(crate) async fn keys_create_list_revoke_principal(s: DynStore) {
    let key = |h: u8, prefix: &str, t: &str, p: &str, admin: bool, at: i64| NewApiKey {
        key_hash: [h; 32],
        prefix: prefix.into(),
        tenant: TenantId(t.into()),
        partner: PartnerId(p.into()),
        admin,
        created_at: NOW + std::time::Duration::from_secs(at as u64),
    };
    s.create_key(key(1, "pe_aaa1", "t1", "p2", false, 100))
        .await
        .unwrap();
    s.create_key(key(2, "pe_aab2", "t1", "p1", true, 101))
        .await
        .unwrap();
    s.create_key(key(3, "pe_bbb3", "t2", "p9", false, 102))
        .await
        .unwrap();
    // A second key for an existing tenant/partner creates neither again.
    s.create_key(key(4, "pe_ccc4", "t1", "p2", false, 103))
        .await
        .unwrap();

    let keys = s.list_keys().await.unwrap();
    let prefixes: Vec<&str> = keys.iter().map(|k| k.prefix.as_str()).collect();
    assert_eq!(prefixes, ["pe_aaa1", "pe_aab2", "pe_bbb3", "pe_ccc4"]);
    assert_eq!(keys[1].tenant.0, "t1");
    assert_eq!(keys[1].partner.0, "p1");
    assert!(keys[1].admin && !keys[0].admin);
    assert_eq!(
        keys[2].created_at,
        NOW + std::time::Duration::from_secs(102)
    );
    assert!(keys.iter().all(|k| k.revoked_at.is_none()));

    let p = s.principal(&[1; 32]).await.unwrap().expect("active key");
    assert_eq!(p.tenant.0, "t1");
    assert_eq!(p.default_partner.0, "p2");
    assert!(!p.admin);
    let mut owned: Vec<String> = p.partners.iter().map(|x| x.0.clone()).collect();
    owned.sort();
    assert_eq!(owned, ["p1", "p2"]);
    let p = s.principal(&[3; 32]).await.unwrap().unwrap();
    assert_eq!(p.partners, vec![PartnerId("p9".into())]);
    assert!(s.principal(&[9; 32]).await.unwrap().is_none());

    // Prefix matching is literal: "pe_aa" revokes two keys, "pe_a%" none.
    assert_eq!(s.revoke_keys("pe_a%", NOW).await.unwrap(), 0);
    assert_eq!(s.revoke_keys("pe_aa", NOW).await.unwrap(), 2);
    assert_eq!(s.revoke_keys("pe_aa", NOW).await.unwrap(), 0);
    assert!(s.principal(&[1; 32]).await.unwrap().is_none());
    assert!(s.principal(&[2; 32]).await.unwrap().is_none());
    assert!(s.principal(&[4; 32]).await.unwrap().is_some());
    let keys = s.list_keys().await.unwrap();
    assert_eq!(
        (keys[0].revoked_at, keys[1].revoked_at),
        (Some(NOW), Some(NOW))
    );
    assert!(keys[2].revoked_at.is_none() && keys[3].revoked_at.is_none());
}

// --- enrollments -----------------------------------------------------------------------------
