//! `UsageService`: a user's own usage, and every user's for administrators
//! (the billing export; the edge also renders it as CSV).

use std::collections::BTreeMap;

use tonic::{Request, Response, Status};
use wagate_proto::v1::{self, usage_service_server::UsageService};

use super::{API_CALLS, format_month, parse_month};
use crate::error::{CpResult, invalid};
use crate::persistence::usage::{self, UsageRow};
use crate::services::pagination;
use crate::state::SharedState;
use crate::validation;

pub struct UsageApi {
    state: SharedState,
}

impl UsageApi {
    pub fn new(state: SharedState) -> Self {
        Self { state }
    }

    fn month(raw: &str) -> CpResult<chrono::DateTime<chrono::Utc>> {
        parse_month(raw).ok_or_else(|| invalid("month", "month must be YYYY-MM (e.g. 2026-11)"))
    }

    async fn my_usage(&self, user_id: &str, req: v1::GetUsageRequest) -> CpResult<v1::UsageReport> {
        let month = Self::month(&req.month)?;
        let rows = usage::of_user(&self.state.db, user_id, month).await?;
        let rows: Vec<_> = rows.iter().map(|r| row(r, month)).collect();
        Ok(v1::UsageReport {
            month: format_month(month),
            user_id: user_id.to_owned(),
            totals: Some(totals(&rows)),
            rows,
        })
    }

    async fn list_usage(&self, req: v1::ListUsageRequest) -> CpResult<v1::ListUsageResponse> {
        let month = Self::month(&req.month)?;
        let page = req.page.max(1);
        let limit = if req.limit == 0 { 100 } else { req.limit.min(1000) };
        let db = &self.state.db;
        let mut user = None;
        if !req.user_id.trim().is_empty() {
            let Some(id) = validation::lookup_id(&req.user_id) else {
                return Err(invalid("userId", "userId is not a valid id"));
            };
            user = Some(id);
        }
        let total = usage::count_of_month(db, month, user).await?;
        let offset = u64::from(page - 1) * u64::from(limit);
        let rows = usage::page_of_month(db, month, user, limit, offset).await?;
        Ok(v1::ListUsageResponse {
            month: format_month(month),
            rows: rows.iter().map(|r| row(r, month)).collect(),
            pagination: Some(pagination(u64::try_from(total).unwrap_or(0), page, limit)),
        })
    }
}

fn row(r: &UsageRow, month: chrono::DateTime<chrono::Utc>) -> v1::UsageRow {
    v1::UsageRow {
        user_id: r.user_id.clone(),
        session_id: r.session_id.clone(),
        api_key_id: r.api_key_id.clone(),
        metric: r.metric.clone(),
        count: u64::try_from(r.usage_count).unwrap_or(0),
        month: format_month(month),
    }
}

fn totals(rows: &[v1::UsageRow]) -> v1::UsageTotals {
    let mut t = v1::UsageTotals::default();
    let mut by_type = BTreeMap::new();
    for r in rows {
        if r.metric == API_CALLS {
            t.api_calls += r.count;
        } else if let Some(kind) = r.metric.strip_prefix("messages.") {
            t.messages += r.count;
            *by_type.entry(kind.to_owned()).or_insert(0) += r.count;
        }
    }
    t.messages_by_type = by_type.into_iter().collect();
    t
}

#[tonic::async_trait]
impl UsageService for UsageApi {
    async fn get_my_usage(
        &self,
        request: Request<v1::GetUsageRequest>,
    ) -> Result<Response<v1::UsageReport>, Status> {
        let user = self.state.auth.user(request.metadata()).await?;
        Ok(Response::new(self.my_usage(&user.id, request.into_inner()).await?))
    }

    async fn list_usage(
        &self,
        request: Request<v1::ListUsageRequest>,
    ) -> Result<Response<v1::ListUsageResponse>, Status> {
        self.state.auth.admin(request.metadata()).await?;
        Ok(Response::new(self.list_usage(request.into_inner()).await?))
    }
}
