//! `GET /sessions/{sessionId}/events`: the session's events as they happen,
//! as Server-Sent Events. Each SSE event is one webhook envelope (`id` the
//! event id, `event` its type, `data` the JSON a webhook receives); a client
//! that reconnects with `Last-Event-ID` (every EventSource does) gets what it
//! missed from the control plane's durable live log, through any replica.
//! Heartbeats (SSE comments) come from the control plane every 15 s, so an
//! idle stream proves the whole path is alive.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wagate_proto::v1::{LiveEvent, StreamEventsRequest};

use super::{AppState, CallContext};
use crate::envelope::Error;
use crate::params::{PathIds, Query};

/// How long an EventSource waits before it reconnects.
const RETRY: Duration = Duration::from_secs(2);

pub(crate) fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(events))
}

/// `?events=` of `GET …/events`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsParams {
    /// Comma-separated event types to receive (default: every type but the
    /// opt-in `presence`).
    #[serde(default)]
    #[param(max_length = 512)]
    pub events: String,
    /// Resume after this event id, for clients that cannot send the
    /// `Last-Event-ID` header (the header wins).
    #[serde(default, rename = "lastEventId")]
    #[param(max_length = 64)]
    pub last_event_id: String,
}

#[utoipa::path(get, path = "/sessions/{sessionId}/events", tag = "sessions",
    summary = "The session's events as they happen (Server-Sent Events, resumable with Last-Event-ID)",
    description = "Each SSE event carries one event envelope exactly as webhooks receive it (`id`: the event id, \
        `event`: its type, `data`: the JSON). Reconnect with `Last-Event-ID` (EventSource does) to get what was missed \
        (events are kept for `WAGATE_LIVE_EVENTS_RETENTION_HOURS`, 24 h by default). A comment line is sent every 15 s \
        while idle. The session's API key may read its own session's stream.",
    security(("bearer" = []), ("apiKey" = [])),
    params(("sessionId" = String, Path, pattern = "^[A-Za-z0-9_-]{1,64}$", max_length = 64),
        ("Last-Event-ID" = Option<String>, Header, description = "resume after this event id (evt_…)", pattern = "^evt_[0-9a-f]{32}$"),
        EventsParams),
    responses((status = 200, description = "the event stream", content_type = "text/event-stream", body = String),
        (status = 400, description = "an unknown event type, or a Last-Event-ID that is no event id", body = crate::openapi::ErrorEnvelope)))]
pub(crate) async fn events(
    State(state): State<Arc<AppState>>,
    call: CallContext,
    ids: PathIds,
    Query(params): Query<EventsParams>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let session_id = ids.session()?;
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .or_else(|| Some(params.last_event_id.trim().to_owned()).filter(|v| !v.is_empty()));
    let events: Vec<String> =
        params.events.split(',').map(str::trim).filter(|e| !e.is_empty()).map(str::to_owned).collect();
    call.require_api_key()?;
    let request = StreamEventsRequest { session_id, last_event_id, events };
    let stream = call
        .unary(
            "SessionService.StreamEvents",
            state.control_plane.sessions().stream_events(call.streaming_request(request)),
        )
        .await?;
    Ok(Sse::new(sse(stream)).into_response())
}

/// The control plane's stream as SSE events: heartbeats as comments; the
/// first item sets the client's reconnection delay; an error ends the
/// stream (the client reconnects with its last id).
fn sse(
    stream: tonic::Streaming<LiveEvent>,
) -> impl Stream<Item = Result<Event, std::convert::Infallible>> + Send + 'static {
    let first = futures::stream::once(async { Ok(Event::default().retry(RETRY).comment("connected")) });
    let rest = futures::stream::unfold(Some(stream), |state| async move {
        let mut stream = state?;
        match stream.message().await {
            Ok(Some(e)) if e.id.is_empty() => {
                Some((Ok(Event::default().comment("keep-alive")), Some(stream)))
            }
            Ok(Some(e)) => Some((Ok(Event::default().id(e.id).event(e.r#type).data(e.data)), Some(stream))),
            Ok(None) => None,
            Err(status) => {
                tracing::info!(code = ?status.code(), message = status.message(), "live event stream ended");
                None
            }
        }
    });
    futures::StreamExt::chain(first, rest)
}
