//! The `refresh_tokens` table: one row per issued refresh token (its
//! SHA-256 hash), grouped in families.
//!
//! The fence it enforces: a token is spent at most once ([`spend`] applies
//! only while it is neither used nor revoked).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, QueryFilter, Set};

use super::Db;
use super::entities::refresh_token;
use super::measured::measured;

/// A `refresh_tokens` row.
pub type RefreshToken = refresh_token::Model;

/// Stores a new token of `family_id` for `user_id`.
pub async fn insert(
    db: &Db,
    user_id: &str,
    family_id: &str,
    token_hash: String,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    measured("refresh_tokens.insert", async {
        refresh_token::ActiveModel {
            id: Set(uuid::Uuid::now_v7().to_string()),
            user_id: Set(user_id.to_owned()),
            family_id: Set(family_id.to_owned()),
            token_hash: Set(token_hash),
            expires_at: Set(expires_at),
            used_at: Set(None),
            revoked_at: Set(None),
            created_at: Set(now),
        }
        .insert(&db.conn)
        .await?;
        Ok(())
    })
    .await
}

/// The token with this hash (of `user_id` only, when given).
pub async fn by_hash(
    db: &Db,
    token_hash: String,
    user_id: Option<&str>,
) -> Result<Option<RefreshToken>, DbErr> {
    measured("refresh_tokens.by_hash", async {
        let mut query = refresh_token::Entity::find().filter(refresh_token::Column::TokenHash.eq(token_hash));
        if let Some(user_id) = user_id {
            query = query.filter(refresh_token::Column::UserId.eq(user_id));
        }
        query.one(&db.conn).await
    })
    .await
}

/// Spends the token atomically: true for the one use that found it neither
/// used nor revoked.
pub async fn spend(db: &Db, id: &str, now: DateTime<Utc>) -> Result<bool, DbErr> {
    measured("refresh_tokens.spend", async {
        let spent = refresh_token::Entity::update_many()
            .col_expr(refresh_token::Column::UsedAt, Expr::value(now))
            .filter(refresh_token::Column::Id.eq(id))
            .filter(refresh_token::Column::UsedAt.is_null())
            .filter(refresh_token::Column::RevokedAt.is_null())
            .exec(&db.conn)
            .await?;
        Ok(spent.rows_affected == 1)
    })
    .await
}

/// Revokes every live token of the family.
pub async fn revoke_family(db: &Db, family_id: &str, now: DateTime<Utc>) -> Result<(), DbErr> {
    measured("refresh_tokens.revoke_family", async {
        refresh_token::Entity::update_many()
            .col_expr(refresh_token::Column::RevokedAt, Expr::value(now))
            .filter(refresh_token::Column::FamilyId.eq(family_id))
            .filter(refresh_token::Column::RevokedAt.is_null())
            .exec(&db.conn)
            .await?;
        Ok(())
    })
    .await
}

/// Revokes every live token of the user.
pub async fn revoke_user(db: &Db, user_id: &str, now: DateTime<Utc>) -> Result<(), DbErr> {
    measured("refresh_tokens.revoke_user", async {
        refresh_token::Entity::update_many()
            .col_expr(refresh_token::Column::RevokedAt, Expr::value(now))
            .filter(refresh_token::Column::UserId.eq(user_id))
            .filter(refresh_token::Column::RevokedAt.is_null())
            .exec(&db.conn)
            .await?;
        Ok(())
    })
    .await
}
