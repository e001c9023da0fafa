//! Usage metering: `GET /me/usage` (the caller's own) and `GET /admin/usage`
//! (every user's, ADMINISTRATOR; JSON or a CSV billing export with
//! `Accept: text/csv` or `?format=csv`).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::header::{self, HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wagate_proto::error::{ApiError, ErrorCode};
use wagate_proto::v1::{self, GetUsageRequest, ListUsageRequest};

use super::{Answer, AppState, CallContext, Reply};
use crate::envelope::Error;
use crate::model::PaginationDto;
use crate::names;
use crate::openapi::Envelope;
use crate::params::{Names, Query, one_of, positive, text};

pub(crate) fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(my_usage)).routes(routes!(all_usage))
}

names!(Format { Json = "json", Csv = "csv" });

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MonthParams {
    /// Billing month `YYYY-MM` (UTC); default the current month.
    #[serde(default, deserialize_with = "text::<_, 7>")]
    #[param(schema_with = crate::schema::month)]
    pub month: Option<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageListParams {
    /// Billing month `YYYY-MM` (UTC); default the current month.
    #[serde(default, deserialize_with = "text::<_, 7>")]
    #[param(schema_with = crate::schema::month)]
    pub month: Option<String>,
    /// Only this user's rows.
    #[serde(default, rename = "userId", deserialize_with = "text::<_, 64>")]
    #[param(rename = "userId", schema_with = crate::schema::query_id)]
    pub user_id: Option<String>,
    /// 1-based page (default 1).
    #[serde(default, deserialize_with = "positive")]
    #[param(minimum = 1, maximum = 2147483647)]
    pub page: Option<u32>,
    /// Rows per page (default 100; values above 1000 are capped at 1000).
    #[serde(default, deserialize_with = "positive")]
    #[param(minimum = 1, maximum = 2147483647)]
    pub limit: Option<u32>,
    /// `csv` for a CSV export (same as `Accept: text/csv`).
    #[serde(default, deserialize_with = "one_of")]
    #[param(schema_with = Format::schema)]
    pub format: Option<Format>,
}

/// One counter of one month.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageRowDto<'a> {
    pub user_id: &'a str,
    /// The session of the API key used (`null`: a user-token call).
    pub session_id: Option<&'a str>,
    pub api_key_id: Option<&'a str>,
    /// `api_calls` or `messages.<type>` (text, image, document, audio, video, location, contact).
    pub metric: &'a str,
    pub count: u64,
    /// `YYYY-MM`.
    pub month: &'a str,
}

impl<'a> From<&'a v1::UsageRow> for UsageRowDto<'a> {
    fn from(r: &'a v1::UsageRow) -> Self {
        UsageRowDto {
            user_id: &r.user_id,
            session_id: Some(r.session_id.as_str()).filter(|s| !s.is_empty()),
            api_key_id: Some(r.api_key_id.as_str()).filter(|s| !s.is_empty()),
            metric: &r.metric,
            count: r.count,
            month: &r.month,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageTotalsDto {
    pub api_calls: u64,
    pub messages: u64,
    /// Messages per type, e.g. `{"text": 120, "image": 4}`.
    pub messages_by_type: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageReportDto<'a> {
    pub month: &'a str,
    pub user_id: &'a str,
    pub totals: UsageTotalsDto,
    pub rows: Vec<UsageRowDto<'a>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageListDto<'a> {
    pub month: &'a str,
    pub rows: Vec<UsageRowDto<'a>>,
    pub pagination: PaginationDto,
}

#[utoipa::path(get, path = "/me/usage", tag = "account",
    summary = "The caller's usage in one billing month (API calls, messages by type)",
    description = "Counts are written every few seconds (WAGATE_USAGE_FLUSH_SECS), so the last seconds may not show yet.",
    security(("bearer" = [])), params(MonthParams),
    responses((status = 200, body = Envelope<UsageReportDto>)))]
pub(crate) async fn my_usage(
    State(state): State<Arc<AppState>>,
    call: CallContext,
    Query(q): Query<MonthParams>,
) -> Answer {
    call.require_authorization()?;
    let request = GetUsageRequest { month: q.month.unwrap_or_default() };
    let r = call
        .unary("UsageService.GetMyUsage", state.control_plane.usage().get_my_usage(call.request(request)))
        .await?;
    let totals = r.totals.clone().unwrap_or_default();
    Ok(Reply::ok(&UsageReportDto {
        month: &r.month,
        user_id: &r.user_id,
        totals: UsageTotalsDto {
            api_calls: totals.api_calls,
            messages: totals.messages,
            messages_by_type: totals.messages_by_type.into_iter().collect(),
        },
        rows: r.rows.iter().map(UsageRowDto::from).collect(),
    }))
}

#[utoipa::path(get, path = "/admin/usage", tag = "admin",
    summary = "Usage of every user (or one) in one billing month: JSON, or CSV for billing",
    description = "`Accept: text/csv` or `?format=csv` answers `text/csv` with the header \
        `month,userId,sessionId,apiKeyId,metric,count` (one page of rows; page through with `page`).",
    security(("bearer" = [])), params(UsageListParams),
    responses(
        (status = 200, description = "JSON, or the CSV export with `Accept: text/csv` or `format=csv`",
            content((Envelope<UsageListDto> = "application/json"), (String = "text/csv"))),
    ))]
pub(crate) async fn all_usage(
    State(state): State<Arc<AppState>>,
    call: CallContext,
    headers: HeaderMap,
    Query(q): Query<UsageListParams>,
) -> Result<Response, Error> {
    call.require_authorization()?;
    let csv = q.format == Some(Format::Csv)
        || (q.format.is_none()
            && headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|a| a.to_ascii_lowercase().contains("text/csv")));
    let request = ListUsageRequest {
        month: q.month.unwrap_or_default(),
        user_id: q.user_id.unwrap_or_default(),
        page: q.page.unwrap_or(0),
        limit: q.limit.unwrap_or(0),
    };
    let r = call
        .unary("UsageService.ListUsage", state.control_plane.usage().list_usage(call.request(request)))
        .await?;
    if csv {
        return Ok(csv_response(&r)?);
    }
    Ok(Reply::ok(&UsageListDto {
        month: &r.month,
        rows: r.rows.iter().map(UsageRowDto::from).collect(),
        pagination: PaginationDto::from_proto(r.pagination.as_ref()),
    })
    .into_response())
}

/// A text cell that a spreadsheet would read as a formula (it starts with
/// `=`, `+`, `-`, `@`, a tab or a carriage return: OWASP's CSV injection)
/// is prefixed with `'`, so it is shown as text; anything else is kept.
/// (A session id may start with `-`; ids are never trusted to be inert.)
fn cell(text: &str) -> std::borrow::Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        std::borrow::Cow::Owned(format!("'{text}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// The rows as CSV, with `X-Total-Count` (rows in the month over all pages).
fn csv_response(r: &v1::ListUsageResponse) -> Result<Response, ApiError> {
    let failed = |e: &dyn std::fmt::Display| {
        tracing::error!(error = %e, "csv export failed");
        ApiError::new(ErrorCode::Internal, "internal server error")
    };
    let mut w = csv::Writer::from_writer(Vec::with_capacity(64 * (r.rows.len() + 1)));
    w.write_record(["month", "userId", "sessionId", "apiKeyId", "metric", "count"])
        .map_err(|e| failed(&e))?;
    for row in &r.rows {
        w.write_record([
            cell(&row.month).as_ref(),
            &cell(&row.user_id),
            &cell(&row.session_id),
            &cell(&row.api_key_id),
            &cell(&row.metric),
            &row.count.to_string(),
        ])
        .map_err(|e| failed(&e))?;
    }
    let body = w.into_inner().map_err(|e| failed(&e))?;
    let mut response = Response::new(axum::body::Body::from(body));
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"usage-{}.csv\"", r.month)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    let total = r.pagination.as_ref().map_or(0, |p| p.total);
    h.insert("x-total-count", HeaderValue::from(total));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_export_has_its_header_and_rows() {
        let rows = v1::ListUsageResponse {
            month: "2026-11".into(),
            rows: vec![v1::UsageRow {
                user_id: "u1".into(),
                session_id: String::new(),
                api_key_id: String::new(),
                metric: "api_calls".into(),
                count: 3,
                month: "2026-11".into(),
            }],
            pagination: Some(v1::Pagination { total: 1, page: 1, limit: 100 }),
        };
        let r = csv_response(&rows).unwrap();
        assert_eq!(r.headers()[header::CONTENT_TYPE], "text/csv; charset=utf-8");
        assert_eq!(r.headers()["x-total-count"], "1");
    }

    #[tokio::test]
    async fn formula_cells_are_neutralised() {
        let row = |session_id: &str| v1::UsageRow {
            user_id: "u1".into(),
            session_id: session_id.into(),
            api_key_id: "@SUM(A1)".into(),
            metric: "api_calls".into(),
            count: 3,
            month: "2026-11".into(),
        };
        let rows = v1::ListUsageResponse {
            month: "2026-11".into(),
            rows: ["-cmd|' /C calc'!A0", "=1+1", "+1", "\tx", "\rx", "plain-id"].map(row).to_vec(),
            pagination: None,
        };
        let r = csv_response(&rows).unwrap();
        let body = axum::body::to_bytes(r.into_body(), usize::MAX).await.unwrap();
        let mut reader = csv::Reader::from_reader(&body[..]);
        let cells: Vec<(String, String)> =
            reader.records().map(|r| r.unwrap()).map(|r| (r[2].to_owned(), r[3].to_owned())).collect();
        let sessions: Vec<&str> = cells.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(sessions, ["'-cmd|' /C calc'!A0", "'=1+1", "'+1", "'\tx", "'\rx", "plain-id"]);
        assert!(cells.iter().all(|(_, key)| key == "'@SUM(A1)"));
        assert_eq!(cell("2026-11"), "2026-11");
    }
}
