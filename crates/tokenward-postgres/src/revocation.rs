//! [`PgRevocationStore`]: revocations as rows that expire by the database's clock.

use async_trait::async_trait;
use sqlx::Row;
use tokenward_core::{StoreError, StoreId, TokenRef, UnixTime};
use tokenward_revocation::{RevocationStatus, RevocationStore, RevokedBy};

use crate::backend::{PgBackend, from_micros, micros_ceil};

/// Expired rows a write deletes on its way (its own key excepted): the store cleans up as it
/// is used, at most this many rows per write, so storage follows the live revocations
/// without a cleanup job.
const PURGE_PER_WRITE: i32 = 8;

/// Rows one statement of [`PgRevocationStore::import_tokens`] writes.
const IMPORT_BATCH: usize = 10_000;

/// The rules, as the `rule` column stores them.
#[derive(Debug, Clone, Copy)]
#[repr(i16)]
enum Rule {
    Token = 1,
    Session = 2,
    Subject = 3,
    SubjectWithoutSession = 4,
}

/// A [`RevocationStore`] on PostgreSQL: table `revocations` (one row per rule and id:
/// `until`, and the cutoff `before` of subject rules) in the backend's schema.
///
/// - A revoke is one `INSERT … ON CONFLICT DO UPDATE` that keeps the later `until` (and
///   cutoff), treats an expired row as absent, and deletes up to 8 other expired rows in the
///   same statement; `until` at or before the database's `now()` writes nothing.
/// - A [`check`](RevocationStore::check) is one `SELECT` answering for `jti`, `sid` and
///   `sub` together, by the database's clock; expired rows are never answered.
/// - Instants are kept in microseconds, rounded up.
///
/// Durable: a revocation acknowledged is committed (and survives a restart of the database,
/// as far as its `synchronous_commit` setting says).
#[derive(Clone, Debug)]
pub struct PgRevocationStore {
    backend: PgBackend,
    sql: Arc<Sql>,
}

use std::sync::Arc;

#[derive(Debug)]
struct Sql {
    revoke: String,
    check: String,
    import: String,
    live: String,
}

/// What [`PgRevocationStore::import_tokens`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ImportReport {
    /// Revocations written (new or extended).
    pub imported: u64,
    /// Rows whose `until` had already passed by the database's clock: nothing to revoke.
    pub skipped_expired: u64,
    /// Rows naming a `jti` an earlier row of the same import named (the later `until` kept).
    pub duplicates: u64,
}

/// One live revocation read back by [`PgRevocationStore::live_revocations`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LiveRevocation {
    /// A revoked `jti` until `until`.
    Token {
        /// The id.
        id: StoreId<'static>,
        /// The end.
        until: UnixTime,
    },
    /// A revoked `sid`.
    Session {
        /// The id.
        id: StoreId<'static>,
        /// The end.
        until: UnixTime,
    },
    /// A subject cutoff (`without_session`: for its tokens without a `sid` only).
    Subject {
        /// The subject.
        id: StoreId<'static>,
        /// Tokens with `iat < before` are revoked.
        before: UnixTime,
        /// The end.
        until: UnixTime,
        /// Whether the rule spares tokens with a `sid`.
        without_session: bool,
    },
}

impl PgRevocationStore {
    /// The store on `backend` (migrated: see [`PgBackend::migrate`]).
    pub fn new(backend: PgBackend) -> Self {
        let s = backend.schema();
        let upsert = "ON CONFLICT (rule, id) DO UPDATE SET \
             until = CASE WHEN r.until <= now() THEN EXCLUDED.until \
                          ELSE greatest(r.until, EXCLUDED.until) END, \
             before = CASE WHEN r.until <= now() THEN EXCLUDED.before \
                           ELSE greatest(r.before, EXCLUDED.before) END";
        let sql = Sql {
            revoke: format!(
                "WITH purged AS (DELETE FROM {s}.revocations WHERE ctid = ANY (ARRAY( \
                   SELECT ctid FROM {s}.revocations \
                   WHERE until <= now() AND NOT (rule = $1 AND id = $2) \
                   ORDER BY until LIMIT $5 FOR UPDATE SKIP LOCKED))) \
                 INSERT INTO {s}.revocations AS r (rule, id, until, before) \
                 SELECT $1, $2, {s}.us_ts($3), {s}.us_ts($4) WHERE {s}.us_ts($3) > now() \
                 {upsert}"
            ),
            check: format!(
                "SELECT \
                   EXISTS (SELECT 1 FROM {s}.revocations \
                           WHERE rule = 1 AND id = $1 AND until > now()) AS token, \
                   EXISTS (SELECT 1 FROM {s}.revocations \
                           WHERE rule = 2 AND id = $2 AND until > now()) AS session, \
                   (SELECT {s}.ts_us(before) FROM {s}.revocations \
                    WHERE rule = 3 AND id = $3 AND until > now()) AS subject, \
                   (SELECT {s}.ts_us(before) FROM {s}.revocations \
                    WHERE rule = 4 AND id = $3 AND until > now()) AS sessionless"
            ),
            import: format!(
                "INSERT INTO {s}.revocations AS r (rule, id, until) \
                 SELECT 1, t.id, {s}.us_ts(t.until) \
                 FROM unnest($1::text[], $2::bigint[]) AS t (id, until) \
                 WHERE {s}.us_ts(t.until) > now() \
                 {upsert}"
            ),
            live: format!(
                "SELECT rule, id, {s}.ts_us(until), {s}.ts_us(before) FROM {s}.revocations \
                 WHERE until > now() AND (rule, id) > ($1, $2) ORDER BY rule, id LIMIT $3"
            ),
        };
        PgRevocationStore {
            backend,
            sql: Arc::new(sql),
        }
    }

    /// The backend the store runs on.
    pub fn backend(&self) -> &PgBackend {
        &self.backend
    }

    async fn write(
        &self,
        rule: Rule,
        id: &StoreId<'_>,
        until: UnixTime,
        before: Option<UnixTime>,
    ) -> Result<(), StoreError> {
        let sql = &self.sql.revoke;
        let id = id.as_str();
        self.backend
            .call("revoke", |pool| async move {
                sqlx::query(sql)
                    .bind(rule as i16)
                    .bind(id)
                    .bind(micros_ceil(until))
                    .bind(before.map(micros_ceil))
                    .bind(PURGE_PER_WRITE)
                    .execute(&pool)
                    .await
                    .map(|_| ())
            })
            .await
    }

    /// Revokes many tokens (`jti`, `until`) **in one transaction**: either every row is
    /// written or none is. Rows whose `until` has passed by the database's clock are skipped,
    /// a `jti` named twice keeps its later `until`, existing revocations are only ever
    /// extended. Statements of 10 000 rows; a million rows take seconds (see
    /// docs/benchmarks.md). For `tokenward revoke --import`.
    pub async fn import_tokens(
        &self,
        rows: impl IntoIterator<Item = (StoreId<'_>, UnixTime)>,
    ) -> Result<ImportReport, StoreError> {
        let mut latest: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
        let mut report = ImportReport::default();
        for (id, until) in rows {
            let until = micros_ceil(until);
            match latest.entry(id.as_str().to_owned()) {
                std::collections::hash_map::Entry::Occupied(mut e) => {
                    report.duplicates += 1;
                    let kept = e.get_mut();
                    *kept = (*kept).max(until);
                }
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(until);
                }
            }
        }
        let rows: Vec<(String, i64)> = latest.into_iter().collect();
        let total = rows.len() as u64;
        let sql = &self.sql.import;
        let imported = self
            .backend
            .call_long("import", |pool| async move {
                let mut tx = pool.begin().await?;
                let mut written = 0;
                for chunk in rows.chunks(IMPORT_BATCH) {
                    let (ids, untils): (Vec<&str>, Vec<i64>) = chunk
                        .iter()
                        .map(|(id, until)| (id.as_str(), *until))
                        .unzip();
                    written += sqlx::query(sql)
                        .bind(ids)
                        .bind(untils)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                }
                tx.commit().await?;
                Ok(written)
            })
            .await?;
        report.imported = imported;
        report.skipped_expired = total.saturating_sub(imported);
        Ok(report)
    }

    /// Every live revocation, in pages of `page` rows (ordered by rule and id): what a
    /// faster store must hold to answer as this one does — the hybrid deployment's reload.
    /// `after` is the last entry of the previous page (`None` for the first).
    pub async fn live_revocations(
        &self,
        after: Option<&LiveRevocation>,
        page: u32,
    ) -> Result<Vec<LiveRevocation>, StoreError> {
        let (rule, id) = match after {
            None => (0_i16, String::new()),
            Some(LiveRevocation::Token { id, .. }) => (Rule::Token as i16, id.as_str().to_owned()),
            Some(LiveRevocation::Session { id, .. }) => {
                (Rule::Session as i16, id.as_str().to_owned())
            }
            Some(LiveRevocation::Subject {
                id,
                without_session,
                ..
            }) => {
                let rule = if *without_session {
                    Rule::SubjectWithoutSession
                } else {
                    Rule::Subject
                };
                (rule as i16, id.as_str().to_owned())
            }
        };
        let sql = &self.sql.live;
        let rows = self
            .backend
            .call("read revocations", |pool| async move {
                sqlx::query(sql)
                    .bind(rule)
                    .bind(id)
                    .bind(i64::from(page))
                    .fetch_all(&pool)
                    .await
            })
            .await?;
        rows.iter().map(live_row).collect()
    }
}

fn live_row(row: &sqlx::postgres::PgRow) -> Result<LiveRevocation, StoreError> {
    let get = |e: sqlx::Error| StoreError::corrupt(format!("PostgreSQL revocation row: {e}"));
    let rule: i16 = row.try_get(0).map_err(get)?;
    let id: String = row.try_get(1).map_err(get)?;
    let until = from_micros(row.try_get(2).map_err(get)?, "until")?;
    let before: Option<i64> = row.try_get(3).map_err(get)?;
    let id = StoreId::new(id)
        .map_err(|e| StoreError::corrupt(format!("PostgreSQL revocation id: {e}")))?;
    let subject = |without_session| -> Result<LiveRevocation, StoreError> {
        let before = before.ok_or_else(|| StoreError::corrupt("subject rule without cutoff"))?;
        Ok(LiveRevocation::Subject {
            id: id.clone(),
            before: from_micros(before, "before")?,
            until,
            without_session,
        })
    };
    match rule {
        1 => Ok(LiveRevocation::Token { id, until }),
        2 => Ok(LiveRevocation::Session { id, until }),
        3 => subject(false),
        4 => subject(true),
        other => Err(StoreError::corrupt(format!(
            "PostgreSQL revocation row with rule {other}"
        ))),
    }
}

#[async_trait]
impl RevocationStore for PgRevocationStore {
    async fn revoke_token(&self, jti: &StoreId<'_>, until: UnixTime) -> Result<(), StoreError> {
        self.write(Rule::Token, jti, until, None).await
    }

    async fn revoke_session(&self, sid: &StoreId<'_>, until: UnixTime) -> Result<(), StoreError> {
        self.write(Rule::Session, sid, until, None).await
    }

    async fn revoke_subject(
        &self,
        sub: &StoreId<'_>,
        before: UnixTime,
        until: UnixTime,
    ) -> Result<(), StoreError> {
        self.write(Rule::Subject, sub, until, Some(before)).await
    }

    async fn revoke_subject_without_session(
        &self,
        sub: &StoreId<'_>,
        before: UnixTime,
        until: UnixTime,
    ) -> Result<(), StoreError> {
        self.write(Rule::SubjectWithoutSession, sub, until, Some(before))
            .await
    }

    async fn check(&self, token: &TokenRef<'_>) -> Result<RevocationStatus, StoreError> {
        let sql = &self.sql.check;
        let jti = token.jti.as_ref().map(StoreId::as_str);
        let sid = token.sid.as_ref().map(StoreId::as_str);
        let sub = token.sub.as_ref().map(StoreId::as_str);
        let row = self
            .backend
            .call("check", |pool| async move {
                sqlx::query_as::<_, (bool, bool, Option<i64>, Option<i64>)>(sql)
                    .bind(jti)
                    .bind(sid)
                    .bind(sub)
                    .fetch_one(&pool)
                    .await
            })
            .await?;
        let (by_token, by_session, subject, sessionless) = row;
        if by_token {
            return Ok(RevocationStatus::Revoked(RevokedBy::Token));
        }
        if by_session {
            return Ok(RevocationStatus::Revoked(RevokedBy::Session));
        }
        let sessionless = if token.sid.is_none() {
            sessionless
        } else {
            None
        };
        for before in [subject, sessionless].into_iter().flatten() {
            let before = from_micros(before, "before")?;
            if token.iat.is_none_or(|iat| iat < before) {
                return Ok(RevocationStatus::Revoked(RevokedBy::Subject { before }));
            }
        }
        Ok(RevocationStatus::Active)
    }
}
