//! API keys, tenants and partners for PostgreSQL: SQL and row mapping only.

use super::pg;
use crate::model::*;
use crate::rules::{from_unix_seconds, unix_seconds};
use crate::StoreResult;
use deadpool_postgres::Object;
use domain::{PartnerId, TenantId};

pub(super) async fn create_key(c: &mut Object, key: NewApiKey) -> StoreResult<()> {
    let tx = c.transaction().await.map_err(pg)?;
    let created_at = unix_seconds(key.created_at);
    ensure_partner(&tx, &key.tenant, &key.partner, created_at).await?;
    let s = tx
        .prepare_cached(
            "INSERT INTO api_keys (key_hash, prefix, tenant_id, partner_id, is_admin, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .await
        .map_err(pg)?;
    tx.execute(
        &s,
        &[
            &&key.key_hash[..],
            &key.prefix,
            &key.tenant.0,
            &key.partner.0,
            &key.admin,
            &created_at,
        ],
    )
    .await
    .map_err(pg)?;
    tx.commit().await.map_err(pg)
}

pub(super) async fn list_keys(c: &mut Object) -> StoreResult<Vec<ApiKeyInfo>> {
    let s = c
        .prepare_cached(
            "SELECT prefix, tenant_id, partner_id, is_admin, created_at, revoked_at
             FROM api_keys ORDER BY id",
        )
        .await
        .map_err(pg)?;
    let rows = c.query(&s, &[]).await.map_err(pg)?;
    Ok(rows
        .iter()
        .map(|r| ApiKeyInfo {
            prefix: r.get(0),
            tenant: TenantId(r.get(1)),
            partner: PartnerId(r.get(2)),
            admin: r.get(3),
            created_at: from_unix_seconds(r.get(4)),
            revoked_at: r.get::<_, Option<i64>>(5).map(from_unix_seconds),
        })
        .collect())
}

pub(super) async fn revoke_keys(
    c: &mut Object,
    prefix: &str,
    now: time::OffsetDateTime,
) -> StoreResult<u64> {
    // Prefix match without LIKE wildcards: compare the leading substring.
    let s = c
        .prepare_cached(
            "UPDATE api_keys SET revoked_at = $2
             WHERE revoked_at IS NULL AND left(prefix, length($1)) = $1",
        )
        .await
        .map_err(pg)?;
    c.execute(&s, &[&prefix, &unix_seconds(now)])
        .await
        .map_err(pg)
}

pub(super) async fn principal(
    c: &mut Object,
    key_hash: &[u8; 32],
) -> StoreResult<Option<Principal>> {
    let s = c
        .prepare_cached(
            "SELECT k.tenant_id, k.partner_id, k.is_admin,
                ARRAY(SELECT p.partner_id FROM partners p WHERE p.tenant_id = k.tenant_id
                      ORDER BY p.partner_id)
             FROM api_keys k WHERE k.key_hash = $1 AND k.revoked_at IS NULL",
        )
        .await
        .map_err(pg)?;
    let row = c.query_opt(&s, &[&&key_hash[..]]).await.map_err(pg)?;
    Ok(row.map(|r| Principal {
        tenant: TenantId(r.get(0)),
        default_partner: PartnerId(r.get(1)),
        admin: r.get(2),
        partners: r
            .get::<_, Vec<String>>(3)
            .into_iter()
            .map(PartnerId)
            .collect(),
    }))
}

async fn ensure_partner(
    tx: &deadpool_postgres::Transaction<'_>,
    tenant: &TenantId,
    partner: &PartnerId,
    now: i64,
) -> StoreResult<()> {
    let s = tx
        .prepare_cached(
            "INSERT INTO tenants (tenant_id, created_at) VALUES ($1, $2)
             ON CONFLICT DO NOTHING",
        )
        .await
        .map_err(pg)?;
    tx.execute(&s, &[&tenant.0, &now]).await.map_err(pg)?;
    let s = tx
        .prepare_cached(
            "INSERT INTO partners (tenant_id, partner_id, created_at) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
        )
        .await
        .map_err(pg)?;
    tx.execute(&s, &[&tenant.0, &partner.0, &now])
        .await
        .map_err(pg)?;
    Ok(())
}
