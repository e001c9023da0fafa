//! The `usage_records` table: monthly counters per (user, session, key,
//! metric), added to in batches, read for reports and the billing export.
//!
//! The fence it enforces: counts of a user deleted meanwhile are dropped
//! (the upsert inserts only rows whose user exists), and a chunk is one
//! statement, so a failed flush adds nothing twice.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, QueryResult};

use super::Db;
use super::measured::measured;

/// One counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UsageKey {
    pub month: DateTime<Utc>,
    pub user_id: String,
    pub session_id: String,
    pub api_key_id: String,
    pub metric: &'static str,
}

/// Adds a chunk of counts to their monthly rows (one upsert).
pub async fn add_counts(db: &Db, chunk: &[(UsageKey, u64)]) -> Result<(), DbErr> {
    measured("usage.flush", async {
        let now = Utc::now();
        let mut sql = String::from(
            "INSERT INTO usage_records (id, user_id, session_id, api_key_id, metric, usage_count, billing_date, created_at, updated_at) \
             SELECT v.column1, v.column2, v.column3, v.column4, v.column5, v.column6, v.column7, v.column8, v.column8 FROM (VALUES ",
        );
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(chunk.len() * 8);
        let mut n = 0;
        for (i, (k, count)) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for j in 1..=8 {
                if j > 1 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!("${}", n + j));
            }
            sql.push(')');
            n += 8;
            values.push(uuid::Uuid::new_v4().to_string().into());
            values.push(k.user_id.clone().into());
            values.push(k.session_id.clone().into());
            values.push(k.api_key_id.clone().into());
            values.push(k.metric.to_owned().into());
            values.push(i64::try_from(*count).unwrap_or(i64::MAX).into());
            values.push(k.month.into());
            values.push(now.into());
        }
        sql.push_str(
            ") AS v WHERE EXISTS (SELECT 1 FROM users u WHERE u.id = v.column2) \
             ON CONFLICT (billing_date, user_id, session_id, api_key_id, metric) \
             DO UPDATE SET usage_count = usage_records.usage_count + excluded.usage_count, updated_at = excluded.updated_at",
        );
        db.conn.execute_raw(db.stmt(&sql, values)).await?;
        Ok(())
    })
    .await
}

const COLUMNS: &str = "user_id, session_id, api_key_id, metric, usage_count";

/// One monthly counter as it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    pub user_id: String,
    pub session_id: String,
    pub api_key_id: String,
    pub metric: String,
    pub usage_count: i64,
}

impl UsageRow {
    fn from_row(r: &QueryResult) -> Result<Self, DbErr> {
        Ok(Self {
            user_id: r.try_get("", "user_id")?,
            session_id: r.try_get("", "session_id")?,
            api_key_id: r.try_get("", "api_key_id")?,
            metric: r.try_get("", "metric")?,
            usage_count: r.try_get("", "usage_count")?,
        })
    }
}

/// One user's rows of a month, by session, key and metric.
pub async fn of_user(db: &Db, user_id: &str, month: DateTime<Utc>) -> Result<Vec<UsageRow>, DbErr> {
    measured("usage.of_user", async {
        let rows = db
            .conn
            .query_all_raw(db.stmt(
                &format!(
                    "SELECT {COLUMNS} FROM usage_records WHERE user_id = $1 AND billing_date = $2 \
                     ORDER BY session_id, api_key_id, metric"
                ),
                vec![user_id.to_owned().into(), month.into()],
            ))
            .await?;
        rows.iter().map(UsageRow::from_row).collect()
    })
    .await
}

/// The filter of a month's export, optionally of one user.
fn month_filter(month: DateTime<Utc>, user_id: Option<&str>) -> (String, Vec<sea_orm::Value>) {
    let mut filter = String::from("billing_date = $1");
    let mut values: Vec<sea_orm::Value> = vec![month.into()];
    if let Some(id) = user_id {
        filter.push_str(" AND user_id = $2");
        values.push(id.to_owned().into());
    }
    (filter, values)
}

/// How many rows a month has (of one user, if given).
pub async fn count_of_month(db: &Db, month: DateTime<Utc>, user_id: Option<&str>) -> Result<i64, DbErr> {
    measured("usage.count_of_month", async {
        let (filter, values) = month_filter(month, user_id);
        Ok(db
            .conn
            .query_one_raw(
                db.stmt(&format!("SELECT COUNT(*) AS n FROM usage_records WHERE {filter}"), values),
            )
            .await?
            .map(|r| r.try_get::<i64>("", "n"))
            .transpose()?
            .unwrap_or(0))
    })
    .await
}

/// A page of a month's rows (of one user, if given), by user, session,
/// key and metric.
pub async fn page_of_month(
    db: &Db,
    month: DateTime<Utc>,
    user_id: Option<&str>,
    limit: u32,
    offset: u64,
) -> Result<Vec<UsageRow>, DbErr> {
    measured("usage.page_of_month", async {
        let (filter, values) = month_filter(month, user_id);
        let rows = db
            .conn
            .query_all_raw(db.stmt(
                &format!(
                    "SELECT {COLUMNS} FROM usage_records WHERE {filter} \
                     ORDER BY user_id, session_id, api_key_id, metric LIMIT {limit} OFFSET {offset}"
                ),
                values,
            ))
            .await?;
        rows.iter().map(UsageRow::from_row).collect()
    })
    .await
}
