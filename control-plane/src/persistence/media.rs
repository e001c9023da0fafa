//! The `media` table: one row per stored file of a session (uploaded to be
//! sent, or received), naming its object in the media store.
//!
//! The fence it enforces: a row is read by its id together with its
//! account (`of_user`), so another account's id is simply absent; an object
//! is deleted only when no row names it any more ([`object_in_use`]).

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::Db;
use super::entities::media;
use super::measured::measured;

/// A `media` row.
pub type MediaRow = media::Model;

/// Stores a new row.
pub async fn insert(db: &Db, row: MediaRow) -> Result<(), DbErr> {
    measured("media.insert", async {
        media::ActiveModel::from(row).insert(&db.conn).await?;
        Ok(())
    })
    .await
}

/// The row `id` of `user_id`'s account (`None` for another account's id).
pub async fn of_user(db: &Db, id: &str, user_id: &str) -> Result<Option<MediaRow>, DbErr> {
    measured("media.of_user", async {
        media::Entity::find_by_id(id.to_owned()).filter(media::Column::UserId.eq(user_id)).one(&db.conn).await
    })
    .await
}

/// The row `id` (a signed link names it without a credential).
pub async fn by_id(db: &Db, id: &str) -> Result<Option<MediaRow>, DbErr> {
    measured("media.by_id", async { media::Entity::find_by_id(id.to_owned()).one(&db.conn).await }).await
}

/// Up to `limit` rows expired at `now`, oldest first.
pub async fn expired(db: &Db, now: DateTime<Utc>, limit: u64) -> Result<Vec<MediaRow>, DbErr> {
    measured("media.expired", async {
        media::Entity::find()
            .filter(media::Column::ExpiresAt.lte(now))
            .order_by_asc(media::Column::ExpiresAt)
            .limit(limit)
            .all(&db.conn)
            .await
    })
    .await
}

/// Deletes the row `id`.
pub async fn delete(db: &Db, id: &str) -> Result<(), DbErr> {
    measured("media.delete", async {
        media::Entity::delete_by_id(id.to_owned()).exec(&db.conn).await?;
        Ok(())
    })
    .await
}

/// Whether any row still names the object `object_key`.
pub async fn object_in_use(db: &Db, object_key: &str) -> Result<bool, DbErr> {
    measured("media.object_in_use", async {
        Ok(media::Entity::find().filter(media::Column::ObjectKey.eq(object_key)).count(&db.conn).await? > 0)
    })
    .await
}
