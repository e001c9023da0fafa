//! Media retention: rows past `expires_at` (`WAGATE_MEDIA_RETENTION_DAYS`
//! after they were stored) are deleted, and their object once no other row
//! of the account names it. Run by the fleet sweeper (one replica at a time).

use chrono::Utc;

use crate::error::CpResult;
use crate::persistence::media as media_rows;
use crate::state::SharedState;

/// Rows handled per round.
const BATCH: u64 = 500;

/// Deletes expired media; returns how many rows went.
pub(crate) async fn sweep(state: &SharedState) -> CpResult<usize> {
    run(state, Utc::now()).await
}

/// [`sweep`] as of `now` (tests look ahead of the retention period).
pub async fn sweep_at(
    state: &SharedState,
    now: chrono::DateTime<Utc>,
) -> Result<usize, wagate_proto::error::ApiError> {
    run(state, now).await.map_err(Into::into)
}

async fn run(state: &SharedState, now: chrono::DateTime<Utc>) -> CpResult<usize> {
    let expired = media_rows::expired(&state.db, now, BATCH).await?;
    for row in &expired {
        media_rows::delete(&state.db, &row.id).await?;
        if !media_rows::object_in_use(&state.db, &row.object_key).await? {
            state.media.delete(&row.object_key).await?;
        }
    }
    if !expired.is_empty() {
        tracing::info!(deleted = expired.len(), "media retention");
    }
    Ok(expired.len())
}
