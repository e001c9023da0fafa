//! The `messages` table (the batched inserts and
//! status updates live in [`super::message_inserter`] and
//! [`super::status_writer`]).
//!
//! The fence it enforces: an inbound message is stored only through the
//! session's generation fence ([`super::sessions::Fence`], applied by
//! [`super::sessions::apply_fenced`]); a send is marked FAILED only while it
//! is still PENDING (an acknowledgement that got there first wins).

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Statement, Value,
};

use super::Db;
use super::entities::message;
use super::enums::{MessageDirection, MessageStatus, MessageType};
use super::measured::measured;
use super::sessions::Fence;

/// An inbound message as it is stored.
#[derive(Debug, Clone)]
pub struct InboundMessage {
    pub id: String,
    pub from: String,
    pub kind: MessageType,
    pub text: String,
    pub media_url: Option<String>,
    pub filename: Option<String>,
    pub caption: Option<String>,
    pub created_at: DateTime<Utc>,
    pub wa_message_id: String,
    /// JSON (`{"media": {…}}` of a received file).
    pub metadata: Option<String>,
}

impl InboundMessage {
    /// The INSERT … SELECT that stores it only while `fence` holds.
    pub(super) fn fenced_stmt(&self, db: &Db, fence: &Fence<'_>) -> Statement {
        let sql = format!(
            "INSERT INTO messages (id, session_id, direction, from_number, to_number, message_type, content, media_url, \
                filename, caption, status, created_at, wa_message_id, metadata) \
             SELECT $1, id, 'INBOUND', $2, COALESCE(phone_number, ''), $3, $4, $5, $6, $7, 'DELIVERED', $8, $9, $10 \
             FROM sessions WHERE {}",
            fence.sql(11)
        );
        let mut values: Vec<Value> = vec![
            self.id.clone().into(),
            self.from.clone().into(),
            sea_orm::ActiveEnum::to_value(&self.kind).into(),
            self.text.clone().into(),
            self.media_url.clone().into(),
            self.filename.clone().into(),
            self.caption.clone().into(),
            self.created_at.into(),
            self.wa_message_id.clone().into(),
            self.metadata.clone().into(),
        ];
        values.extend(fence.values());
        db.stmt(&sql, values)
    }
}

/// PENDING → FAILED with `reason` (a send no worker took).
pub async fn fail_pending(db: &Db, id: &str, reason: String) -> Result<(), DbErr> {
    measured("messages.fail_pending", async {
        db.conn
            .execute_raw(db.stmt(
                "UPDATE messages SET status = 'FAILED', error_message = $1 WHERE id = $2 AND status = 'PENDING'",
                vec![reason.into(), id.into()],
            ))
            .await?;
        Ok(())
    })
    .await
}

/// What a `message.status` event reports of a message.
#[derive(Debug, Clone)]
pub struct StatusRow {
    pub id: String,
    pub session_id: String,
    pub status: String,
    pub wa_message_id: Option<String>,
    pub to_number: String,
    pub error_message: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub read_at: Option<DateTime<Utc>>,
}

/// The status rows of `ids` (one `IN` list; the caller pads it to a few
/// sizes), read through `conn` (the status writer's transaction).
pub async fn statuses_of<C: ConnectionTrait>(
    conn: &C,
    db: &Db,
    ids: &[&str],
) -> Result<Vec<StatusRow>, DbErr> {
    measured("messages.statuses_of", async {
        let marks: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT id, session_id, status, wa_message_id, to_number, error_message, sent_at, delivered_at, read_at \
             FROM messages WHERE id IN ({})",
            marks.join(", ")
        );
        let values: Vec<Value> = ids.iter().map(|s| (*s).into()).collect();
        let rows = conn.query_all_raw(db.stmt(&sql, values)).await?;
        rows.iter()
            .map(|r| {
                Ok(StatusRow {
                    id: r.try_get("", "id")?,
                    session_id: r.try_get("", "session_id")?,
                    status: r.try_get("", "status")?,
                    wa_message_id: r.try_get("", "wa_message_id")?,
                    to_number: r.try_get("", "to_number")?,
                    error_message: r.try_get("", "error_message")?,
                    sent_at: r.try_get("", "sent_at")?,
                    delivered_at: r.try_get("", "delivered_at")?,
                    read_at: r.try_get("", "read_at")?,
                })
            })
            .collect()
    })
    .await
}

/// A `messages` row.
pub type Message = message::Model;

/// The send of a session with this idempotency key.
pub async fn by_idempotency_key(db: &Db, session_id: &str, key: &str) -> Result<Option<Message>, DbErr> {
    measured(
        "messages.by_idempotency_key",
        message::Entity::find()
            .filter(message::Column::SessionId.eq(session_id))
            .filter(message::Column::IdempotencyKey.eq(key))
            .one(&db.conn),
    )
    .await
}

/// One message of a session.
pub async fn by_id_in_session(db: &Db, id: &str, session_id: &str) -> Result<Option<Message>, DbErr> {
    measured(
        "messages.by_id_in_session",
        message::Entity::find_by_id(id.to_owned())
            .filter(message::Column::SessionId.eq(session_id))
            .one(&db.conn),
    )
    .await
}

/// A session's message named by its wagate id or, failing that, by the id
/// WhatsApp gave it (`idx_messages_wa_id`).
pub async fn by_ref_in_session(db: &Db, reference: &str, session_id: &str) -> Result<Option<Message>, DbErr> {
    if let Some(m) = by_id_in_session(db, reference, session_id).await? {
        return Ok(Some(m));
    }
    measured(
        "messages.by_wa_id_in_session",
        message::Entity::find()
            .filter(message::Column::SessionId.eq(session_id))
            .filter(message::Column::WaMessageId.eq(reference))
            .one(&db.conn),
    )
    .await
}

/// Which of a session's messages a history page holds (`None`: any).
#[derive(Debug, Default)]
pub struct HistoryFilter {
    pub direction: Option<MessageDirection>,
    pub status: Option<MessageStatus>,
    pub kind: Option<MessageType>,
    /// A peer's JID and its digits: the recipient of a send is the JID, the
    /// sender of an inbound message either.
    pub peer: Option<(String, String)>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// The cursor: only rows before `(created_at, id)`.
    pub before: Option<(DateTime<Utc>, String)>,
}

/// Up to `limit` of a session's messages, newest first (`(created_at, id)`
/// descending).
pub async fn history(db: &Db, session_id: &str, f: HistoryFilter, limit: u64) -> Result<Vec<Message>, DbErr> {
    measured("messages.history", async {
        let mut query = message::Entity::find().filter(message::Column::SessionId.eq(session_id));
        if let Some(direction) = f.direction {
            query = query.filter(message::Column::Direction.eq(direction));
        }
        if let Some(status) = f.status {
            query = query.filter(message::Column::Status.eq(status));
        }
        if let Some(kind) = f.kind {
            query = query.filter(message::Column::MessageType.eq(kind));
        }
        if let Some((jid, digits)) = f.peer {
            query = query.filter(
                Condition::any()
                    .add(message::Column::ToNumber.eq(jid.clone()))
                    .add(message::Column::FromNumber.eq(jid))
                    .add(message::Column::FromNumber.eq(digits)),
            );
        }
        if let Some(from) = f.from {
            query = query.filter(message::Column::CreatedAt.gte(from));
        }
        if let Some(to) = f.to {
            query = query.filter(message::Column::CreatedAt.lte(to));
        }
        if let Some((created_at, id)) = f.before {
            query = query.filter(
                Condition::any().add(message::Column::CreatedAt.lt(created_at)).add(
                    Condition::all()
                        .add(message::Column::CreatedAt.eq(created_at))
                        .add(message::Column::Id.lt(id)),
                ),
            );
        }
        query
            .order_by_desc(message::Column::CreatedAt)
            .order_by_desc(message::Column::Id)
            .limit(limit)
            .all(&db.conn)
            .await
    })
    .await
}

/// Records that a sent message's text was edited to `text`.
pub async fn mark_edited(db: &Db, id: &str, text: &str, at: DateTime<Utc>) -> Result<(), DbErr> {
    measured("messages.mark_edited", async {
        db.conn
            .execute_raw(db.stmt(
                "UPDATE messages SET content = $1, edited_at = $2 WHERE id = $3",
                vec![text.into(), at.into(), id.into()],
            ))
            .await?;
        Ok(())
    })
    .await
}

/// Records that a sent message was deleted for everyone: its text, caption
/// and media reference are dropped.
pub async fn mark_deleted(db: &Db, id: &str, at: DateTime<Utc>) -> Result<(), DbErr> {
    measured("messages.mark_deleted", async {
        db.conn
            .execute_raw(db.stmt(
                "UPDATE messages SET content = '', caption = NULL, media_url = NULL, deleted_at = $1 WHERE id = $2",
                vec![at.into(), id.into()],
            ))
            .await?;
        Ok(())
    })
    .await
}
