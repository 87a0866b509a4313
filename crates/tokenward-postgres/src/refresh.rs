//! [`PgRefreshStore`]: refresh-token families in PostgreSQL, one function call per step.

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;
use tokenward_core::{StoreError, StoreId, UnixTime};
use tokenward_refresh::{
    FamilyId, FamilyInfo, IdempotencyRecord, MIN_REUSE_HISTORY, NewFamily, RefreshStore, ReuseKind,
    RotationRequest, RotationResult, Sealed, TokenHash,
};

use crate::backend::{PgBackend, duration_micros, from_micros, micros_ceil};

/// Expired families a `create` deletes on its way (its own id excepted).
const PURGE_PER_CREATE: i32 = 8;

/// A [`RefreshStore`] on PostgreSQL: tables `refresh_families` (one row per family: subject,
/// times, the latest access-token `exp`, the current and previous token *hashes*, the sealed
/// successor and idempotency record, the revoked flag) and `refresh_history` (older hashes,
/// the newest [`MIN_REUSE_HISTORY`] kept per family), in the backend's schema.
///
/// - **A rotation is one statement**: `SELECT … FROM family_rotate(…)`, a PL/pgSQL function
///   that locks the family's row (`SELECT … FOR UPDATE`), reads the database's clock once
///   the lock is held, classifies the presented hash exactly as the [`RefreshStore`]
///   contract says (constant-time comparisons with the current and previous hash) and
///   applies the result, all in the statement's transaction. Concurrent rotations of one
///   token, from any number of connections or application instances, queue on the row
///   lock: one rotates, the others find it the previous token within the grace window.
/// - Revoking (`family_revoke`, or reuse) makes the row a tombstone: hashes, sealed
///   successor and idempotency record cleared, history rows deleted, `expires_at` cut to
///   the retention.
/// - Expiry by the database's clock: a family past `expires_at` is never answered; `create`
///   deletes up to 8 expired families on its way, and the backend's purge task the rest
///   (history rows go with their family, `ON DELETE CASCADE`).
#[derive(Clone, Debug)]
pub struct PgRefreshStore {
    backend: PgBackend,
    sql: Arc<Sql>,
}

#[derive(Debug)]
struct Sql {
    create: String,
    get: String,
    rotate: String,
    record_response: String,
    record_access_exp: String,
    revoke: String,
    families_of: String,
}

/// The columns of a family, as [`family`] reads them (`p` prefixes each: a table alias).
fn columns(s: &str, p: &str) -> String {
    format!(
        "{p}id, {p}sub, {s}.ts_us({p}created), {s}.ts_us({p}last_used), \
         {s}.ts_us({p}expires_at), {p}revoked, {s}.ts_us({p}access_exp)"
    )
}

impl PgRefreshStore {
    /// The store on `backend` (migrated: see [`PgBackend::migrate`]).
    pub fn new(backend: PgBackend) -> Self {
        let s = backend.schema();
        let cols = columns(s, "");
        let f_cols = columns(s, "f.");
        let r_cols = columns(s, "(r.family).");
        let sql = Sql {
            create: format!("SELECT {s}.family_create($1, $2, $3, $4, $5, $6, $7, $8)"),
            get: format!(
                "SELECT {cols} FROM {s}.refresh_families WHERE id = $1 AND expires_at > now()"
            ),
            rotate: format!(
                "SELECT {r_cols}, r.outcome, r.reuse, r.sealed_successor, r.idem_key_hash, \
                 r.idem_response FROM {s}.family_rotate($1, $2, $3, $4, $5, $6, $7, $8) AS r"
            ),
            record_response: format!(
                "UPDATE {s}.refresh_families SET idem_response = $4 \
                 WHERE id = $1 AND expires_at > now() AND NOT revoked \
                 AND idem_response IS NULL \
                 AND {s}.ct_eq(previous_hash, $2) AND {s}.ct_eq(idem_key_hash, $3)"
            ),
            record_access_exp: format!(
                "UPDATE {s}.refresh_families SET access_exp = greatest(access_exp, {s}.us_ts($2)) \
                 WHERE id = $1 AND expires_at > now() RETURNING {cols}"
            ),
            revoke: format!("SELECT {f_cols} FROM {s}.family_revoke($1) AS f"),
            families_of: format!(
                "SELECT {cols} FROM {s}.refresh_families \
                 WHERE sub = $1 AND NOT revoked AND expires_at > now() ORDER BY created, id"
            ),
        };
        PgRefreshStore {
            backend,
            sql: Arc::new(sql),
        }
    }

    /// The backend the store runs on.
    pub fn backend(&self) -> &PgBackend {
        &self.backend
    }
}

fn corrupt(what: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError::corrupt(format!("PostgreSQL refresh family {what}: {err}"))
}

/// The family in the first seven columns of `row`; `None` if its id is NULL (no family).
fn family(row: &PgRow) -> Result<Option<FamilyInfo>, StoreError> {
    let get = |e: sqlx::Error| corrupt("row", e);
    let Some(id) = row.try_get::<Option<String>, _>(0).map_err(get)? else {
        return Ok(None);
    };
    let id = FamilyId::parse(&id).ok_or_else(|| corrupt("id", "not a family id"))?;
    let sub: String = row.try_get(1).map_err(get)?;
    let sub = StoreId::new(sub).map_err(|e| corrupt("sub", e))?;
    let time = |i: usize, what: &str| -> Result<UnixTime, StoreError> {
        from_micros(row.try_get(i).map_err(get)?, what)
    };
    Ok(Some(
        FamilyInfo::new(id, sub, time(2, "created")?)
            .with_last_used(time(3, "last_used")?)
            .with_expires_at(time(4, "expires_at")?)
            .with_revoked(row.try_get(5).map_err(get)?)
            .with_access_exp(time(6, "access_exp")?),
    ))
}

fn hash(bytes: Vec<u8>, what: &str) -> Result<TokenHash, StoreError> {
    <[u8; 32]>::try_from(bytes)
        .map(TokenHash)
        .map_err(|_| corrupt(what, "not 32 bytes"))
}

fn rotation(row: &PgRow) -> Result<RotationResult, StoreError> {
    let get = |e: sqlx::Error| corrupt("rotation reply", e);
    let outcome: String = row.try_get(7).map_err(get)?;
    if outcome == "invalid" {
        return Ok(RotationResult::Invalid);
    }
    let family = family(row)?.ok_or_else(|| corrupt("rotation reply", "no family"))?;
    match outcome.as_str() {
        "rotated" => Ok(RotationResult::Rotated(family)),
        "revoked" => Ok(RotationResult::Revoked(family)),
        "reused" => {
            let reuse: Option<String> = row.try_get(8).map_err(get)?;
            let kind = match reuse.as_deref() {
                Some("previous") => ReuseKind::PredecessorAfterWindow,
                Some("history") => ReuseKind::OlderToken,
                _ => return Err(corrupt("rotation reply", "unknown reuse kind")),
            };
            Ok(RotationResult::Reused { family, kind })
        }
        "grace" => {
            let sealed: Option<Vec<u8>> = row.try_get(9).map_err(get)?;
            let sealed = sealed.ok_or_else(|| corrupt("grace reply", "no sealed successor"))?;
            let key: Option<Vec<u8>> = row.try_get(10).map_err(get)?;
            let response: Option<Vec<u8>> = row.try_get(11).map_err(get)?;
            let idempotency = match (key, response) {
                (Some(key), Some(response)) => Some(IdempotencyRecord::new(
                    hash(key, "idempotency key")?,
                    Sealed(response),
                )),
                (None, None) => None,
                _ => return Err(corrupt("grace reply", "half an idempotency record")),
            };
            Ok(RotationResult::Grace {
                family,
                sealed_successor: Sealed(sealed),
                idempotency,
            })
        }
        other => Err(corrupt("rotation reply", format!("outcome {other:?}"))),
    }
}

#[async_trait]
impl RefreshStore for PgRefreshStore {
    async fn create(&self, family: NewFamily) -> Result<(), StoreError> {
        let sql = &self.sql.create;
        let created: bool = self
            .backend
            .call("create", |pool| async move {
                sqlx::query_scalar(sql)
                    .bind(family.id.as_str())
                    .bind(family.sub.as_str())
                    .bind(family.token_hash.as_bytes().as_slice())
                    .bind(duration_micros(family.absolute_lifetime))
                    .bind(duration_micros(family.idle_timeout))
                    .bind(micros_ceil(family.access_exp))
                    .bind(duration_micros(family.revoked_retention))
                    .bind(PURGE_PER_CREATE)
                    .fetch_one(&pool)
                    .await
            })
            .await?;
        if created {
            Ok(())
        } else {
            Err(StoreError::invalid_input("a family with this id exists"))
        }
    }

    async fn get(&self, id: &FamilyId) -> Result<Option<FamilyInfo>, StoreError> {
        let sql = &self.sql.get;
        let row = self
            .backend
            .call("get", |pool| async move {
                sqlx::query(sql)
                    .bind(id.as_str())
                    .fetch_optional(&pool)
                    .await
            })
            .await?;
        match row {
            Some(row) => family(&row),
            None => Ok(None),
        }
    }

    async fn rotate(&self, request: RotationRequest) -> Result<RotationResult, StoreError> {
        let sql = &self.sql.rotate;
        let cap = i32::try_from(MIN_REUSE_HISTORY).unwrap_or(i32::MAX);
        let row = self
            .backend
            .call("rotate", |pool| async move {
                sqlx::query(sql)
                    .bind(request.family_id.as_str())
                    .bind(request.presented.as_bytes().as_slice())
                    .bind(request.successor.as_bytes().as_slice())
                    .bind(request.sealed_successor.as_bytes())
                    .bind(
                        request
                            .idempotency_key
                            .as_ref()
                            .map(|k| k.as_bytes().as_slice()),
                    )
                    .bind(duration_micros(request.grace))
                    .bind(cap)
                    .bind(micros_ceil(request.access_exp))
                    .fetch_one(&pool)
                    .await
            })
            .await?;
        rotation(&row)
    }

    async fn record_response(
        &self,
        family_id: &FamilyId,
        presented: &TokenHash,
        record: IdempotencyRecord,
    ) -> Result<bool, StoreError> {
        let sql = &self.sql.record_response;
        let written = self
            .backend
            .call("record_response", |pool| async move {
                sqlx::query(sql)
                    .bind(family_id.as_str())
                    .bind(presented.as_bytes().as_slice())
                    .bind(record.key_hash.as_bytes().as_slice())
                    .bind(record.sealed_response.as_bytes())
                    .execute(&pool)
                    .await
                    .map(|r| r.rows_affected())
            })
            .await?;
        Ok(written == 1)
    }

    async fn record_access_exp(
        &self,
        id: &FamilyId,
        exp: UnixTime,
    ) -> Result<Option<FamilyInfo>, StoreError> {
        let sql = &self.sql.record_access_exp;
        let row = self
            .backend
            .call("record_access_exp", |pool| async move {
                sqlx::query(sql)
                    .bind(id.as_str())
                    .bind(micros_ceil(exp))
                    .fetch_optional(&pool)
                    .await
            })
            .await?;
        match row {
            Some(row) => family(&row),
            None => Ok(None),
        }
    }

    async fn revoke(&self, id: &FamilyId) -> Result<Option<FamilyInfo>, StoreError> {
        let sql = &self.sql.revoke;
        let row = self
            .backend
            .call("revoke", |pool| async move {
                sqlx::query(sql).bind(id.as_str()).fetch_one(&pool).await
            })
            .await?;
        family(&row)
    }

    async fn families_of(&self, sub: &StoreId<'_>) -> Result<Vec<FamilyInfo>, StoreError> {
        let sql = &self.sql.families_of;
        let sub = sub.as_str();
        let rows = self
            .backend
            .call("families_of", |pool| async move {
                sqlx::query(sql).bind(sub).fetch_all(&pool).await
            })
            .await?;
        rows.iter()
            .map(|row| family(row)?.ok_or_else(|| corrupt("row", "no id")))
            .collect()
    }
}
