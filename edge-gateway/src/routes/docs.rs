//! `GET /api-docs` (a self-contained page, its assets served from the
//! binary: nothing is fetched from elsewhere) and `GET /api-docs/openapi.json`.

use std::sync::OnceLock;

use wagate_proto::error::ApiError;

use crate::envelope::{Reply, route_not_found};

const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
    img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const HTML: &[u8] = include_bytes!("../../assets/docs.html");
const JS: &[u8] = include_bytes!("../../assets/docs.js");
const CSS: &[u8] = include_bytes!("../../assets/docs.css");

pub(crate) fn page() -> Reply {
    Reply::asset("text/html; charset=utf-8", PAGE_CSP, HTML)
}

pub(crate) fn asset(name: &str) -> Result<Reply, ApiError> {
    match name {
        "docs.js" => Ok(Reply::asset("text/javascript; charset=utf-8", PAGE_CSP, JS)),
        "docs.css" => Ok(Reply::asset("text/css; charset=utf-8", PAGE_CSP, CSS)),
        _ => Err(route_not_found()),
    }
}

pub(crate) fn openapi_json() -> Reply {
    static JSON: OnceLock<String> = OnceLock::new();
    let json = JSON.get_or_init(crate::openapi::json);
    Reply::asset("application/json", "default-src 'none'; frame-ancestors 'none'", json.as_bytes())
}
