//! `GET /api-docs` (a self-contained page, its assets served from the
//! binary: nothing is fetched from elsewhere) and `GET /api-docs/openapi.json`.

use std::sync::{Arc, OnceLock};

use axum::extract::Path;
use axum::routing::get;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::envelope::{Error, Reply, route_not_found};
use crate::state::AppState;

const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
    img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const HTML: &[u8] = include_bytes!("../../assets/docs.html");
const JS: &[u8] = include_bytes!("../../assets/docs.js");
const CSS: &[u8] = include_bytes!("../../assets/docs.css");

/// The page, the document, and the page's assets (undocumented).
pub(crate) fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(page))
        .routes(routes!(openapi_json))
        .route("/api-docs/{asset}", get(asset))
}

#[utoipa::path(get, path = "/api-docs", tag = "docs", summary = "This documentation (HTML)",
    responses((status = 200, description = "HTML page", content_type = "text/html")))]
async fn page() -> Reply {
    Reply::asset("text/html; charset=utf-8", PAGE_CSP, HTML)
}

async fn asset(Path(name): Path<String>) -> Result<Reply, Error> {
    match name.as_str() {
        "docs.js" => Ok(Reply::asset("text/javascript; charset=utf-8", PAGE_CSP, JS)),
        "docs.css" => Ok(Reply::asset("text/css; charset=utf-8", PAGE_CSP, CSS)),
        _ => Err(route_not_found().into()),
    }
}

#[utoipa::path(get, path = "/api-docs/openapi.json", tag = "docs", summary = "This OpenAPI document",
    responses((status = 200, description = "OpenAPI 3 document", content_type = "application/json")))]
async fn openapi_json() -> Reply {
    static JSON: OnceLock<String> = OnceLock::new();
    let json = JSON.get_or_init(crate::openapi::json);
    Reply::asset("application/json", "default-src 'none'; frame-ancestors 'none'", json.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The page pairs a phone: the session's QR image and its live events
    /// (fetched with the token as a header, resumed with Last-Event-ID). The
    /// script itself is checked by hand in a browser (README, "Pairing from the browser").
    #[test]
    fn the_page_has_the_pairing_panel() {
        let html = std::str::from_utf8(HTML).unwrap();
        for id in ["pair-session", "pair-start", "pair-qr", "pair-events"] {
            assert!(html.contains(&format!("id=\"{id}\"")), "{id}");
        }
        let js = std::str::from_utf8(JS).unwrap();
        for needle in ["/qr?format=png", "/events", "Last-Event-ID", "session.qr", "readAsDataURL"] {
            assert!(js.contains(needle), "{needle}");
        }
        // The QR arrives as a data: URL, which the page's CSP allows (no blob:).
        assert!(PAGE_CSP.contains("img-src 'self' data:"));
    }
}
