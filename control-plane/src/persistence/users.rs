//! The `users` table.
//!
//! The fence it enforces: a user's session creates and starts take the
//! user's row lock first, so they see each other and the tier limit holds.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, Set,
};

use super::Db;
use super::entities::user;
use super::enums::{UserRole, UserTier};
use super::measured::measured;

/// Locks the user's row for the transaction (PostgreSQL; SQLite's
/// `BEGIN IMMEDIATE` already serialises writers).
pub async fn lock_row<C: ConnectionTrait>(conn: &C, db: &Db, user_id: &str) -> Result<(), DbErr> {
    if !db.is_postgres() {
        return Ok(());
    }
    measured("users.lock_row", async {
        conn.execute_raw(
            db.stmt("SELECT id FROM users WHERE id = $1 FOR UPDATE", vec![user_id.to_owned().into()]),
        )
        .await?;
        Ok(())
    })
    .await
}

/// A `users` row.
pub type User = user::Model;

/// Bits of `users.notify_mask`: which notification emails the owner gets.
pub const NOTIFY_SESSION_STATUS: i32 = 1;
pub const NOTIFY_QUOTA: i32 = 2;
pub const NOTIFY_WEBHOOK_DISABLED: i32 = 4;
/// Every notification (the default of a new account).
pub const NOTIFY_ALL: i32 = NOTIFY_SESSION_STATUS | NOTIFY_QUOTA | NOTIFY_WEBHOOK_DISABLED;

/// One user by id.
pub async fn by_id(db: &Db, id: &str) -> Result<Option<User>, DbErr> {
    measured("users.by_id", user::Entity::find_by_id(id.to_owned()).one(&db.conn)).await
}

/// One user by email.
pub async fn by_email(db: &Db, email: &str) -> Result<Option<User>, DbErr> {
    measured("users.by_email", user::Entity::find().filter(user::Column::Email.eq(email)).one(&db.conn)).await
}

/// How many users have this email (0 or 1).
pub async fn count_with_email(db: &Db, email: &str) -> Result<u64, DbErr> {
    measured("users.count_email", user::Entity::find().filter(user::Column::Email.eq(email)).count(&db.conn))
        .await
}

/// How many administrators there are.
pub async fn count_administrators(db: &Db) -> Result<u64, DbErr> {
    measured(
        "users.count_administrators",
        user::Entity::find().filter(user::Column::Role.eq(UserRole::Administrator)).count(&db.conn),
    )
    .await
}

/// Inserts a user (a taken email fails with a unique violation).
pub async fn insert(db: &Db, row: User) -> Result<User, DbErr> {
    measured("users.insert", async {
        let active: user::ActiveModel = row.into();
        active.reset_all().insert(&db.conn).await
    })
    .await
}

/// The columns an update sets (`None`: left as they are).
#[derive(Debug, Default)]
pub struct UserPatch {
    pub name: Option<String>,
    pub email: Option<String>,
    pub password_hash: Option<String>,
    pub role: Option<UserRole>,
    pub tier: Option<UserTier>,
    pub is_active: Option<bool>,
    pub token_version: Option<i64>,
    pub message_quota: Option<Option<i64>>,
    pub last_login_at: Option<Option<DateTime<Utc>>>,
    pub email_verified_at: Option<Option<DateTime<Utc>>>,
    pub notify_mask: Option<i32>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// Writes `patch` to the row of `current`; returns the row as written.
pub async fn update(db: &Db, current: &User, patch: UserPatch) -> Result<User, DbErr> {
    measured("users.update", async {
        let mut a: user::ActiveModel = current.clone().into();
        if let Some(v) = patch.name {
            a.name = Set(v);
        }
        if let Some(v) = patch.email {
            a.email = Set(v);
        }
        if let Some(v) = patch.password_hash {
            a.password_hash = Set(v);
        }
        if let Some(v) = patch.role {
            a.role = Set(v);
        }
        if let Some(v) = patch.tier {
            a.tier = Set(v);
        }
        if let Some(v) = patch.is_active {
            a.is_active = Set(v);
        }
        if let Some(v) = patch.token_version {
            a.token_version = Set(v);
        }
        if let Some(v) = patch.message_quota {
            a.message_quota = Set(v);
        }
        if let Some(v) = patch.last_login_at {
            a.last_login_at = Set(v);
        }
        if let Some(v) = patch.email_verified_at {
            a.email_verified_at = Set(v);
        }
        if let Some(v) = patch.notify_mask {
            a.notify_mask = Set(v);
        }
        if let Some(v) = patch.updated_at {
            a.updated_at = Set(v);
        }
        a.update(&db.conn).await
    })
    .await
}

/// Marks the account verified if its email is still `email` (the address
/// the link was mailed to); true when it was.
pub async fn mark_verified(db: &Db, user_id: &str, email: &str, now: DateTime<Utc>) -> Result<bool, DbErr> {
    measured("users.mark_verified", async {
        let res = user::Entity::update_many()
            .col_expr(user::Column::EmailVerifiedAt, Expr::value(now))
            .filter(user::Column::Id.eq(user_id))
            .filter(user::Column::Email.eq(email))
            .exec(&db.conn)
            .await?;
        Ok(res.rows_affected == 1)
    })
    .await
}

/// Adds one to the user's token version (every earlier token is refused).
pub async fn bump_token_version(db: &Db, user_id: &str) -> Result<(), DbErr> {
    measured("users.bump_token_version", async {
        user::Entity::update_many()
            .col_expr(user::Column::TokenVersion, Expr::col(user::Column::TokenVersion).add(1))
            .filter(user::Column::Id.eq(user_id))
            .exec(&db.conn)
            .await?;
        Ok(())
    })
    .await
}

/// Deletes the user inside `conn`'s transaction; false when there was none.
pub async fn delete<C: ConnectionTrait>(conn: &C, user_id: &str) -> Result<bool, DbErr> {
    measured("users.delete", async {
        Ok(user::Entity::delete_by_id(user_id.to_owned()).exec(conn).await?.rows_affected > 0)
    })
    .await
}

/// A page of users, newest first, with the total; `search` is a lower-case
/// `LIKE` pattern (escaped with `\`) matched against name and email.
pub async fn page(
    db: &Db,
    search: Option<String>,
    offset: u64,
    limit: u64,
) -> Result<(u64, Vec<User>), DbErr> {
    measured("users.page", async {
        let mut query = user::Entity::find();
        if let Some(pattern) = search {
            let like = |col: user::Column| {
                Expr::expr(Func::lower(Expr::col(col))).like(LikeExpr::new(pattern.clone()).escape('\\'))
            };
            query =
                query.filter(Condition::any().add(like(user::Column::Name)).add(like(user::Column::Email)));
        }
        let order = |q: sea_orm::Select<user::Entity>| {
            q.order_by_desc(user::Column::CreatedAt).order_by_asc(user::Column::Id)
        };
        super::page(db, query, order, offset, limit).await
    })
    .await
}
