//! Schema fragments for constraints the derive attributes cannot say: the
//! display-name rule (trimmed, 1-100 characters, no control characters),
//! the recipient of a send, and the send body whose `type` decides which
//! fields are required (one `oneOf` branch per type).
//!
//! Patterns are written without inline flags or `\s` (whose meaning differs
//! between ECMA, Python and Rust): whitespace is exactly what Rust's
//! `str::trim` removes ([`WS`]), control characters are Unicode `Cc`, as
//! `char::is_control` and the control plane's `validation` module see them.

use utoipa::openapi::schema::{
    AllOfBuilder, AnyOfBuilder, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::{RefOr, schema::Object};
use wagate_proto::contract::limits::{
    MAX_CAPTION, MAX_FILENAME, MAX_MEDIA_URL, MAX_MENTIONS, MAX_NAME, MAX_TEXT, MAX_VCARD,
};

/// The characters Rust's `char::is_whitespace` (so `str::trim`) knows, as a class body.
pub const WS: &str = r"\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
/// Not whitespace and not a control character, as a class body to negate.
const NOT_PRINTABLE: &str = r"\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

/// A display name: after trimming, 1-100 characters, none a control character.
pub fn name_pattern() -> String {
    format!(r"^[{WS}]*[^{NOT_PRINTABLE}](?:[^\x00-\x1f\x7f-\x9f]{{0,98}}[^{NOT_PRINTABLE}])?[{WS}]*$")
}

/// A display name that may also be blank (register: blank means "use the email's local part").
pub fn optional_name_pattern() -> String {
    format!(r"^[{WS}]*(?:[^{NOT_PRINTABLE}](?:[^\x00-\x1f\x7f-\x9f]{{0,98}}[^{NOT_PRINTABLE}])?[{WS}]*)?$")
}

/// A worker's `description`: after trimming at most 500 characters, none a
/// control character; blank or null clears it.
pub fn worker_description() -> Object {
    let body = format!(r"[^{NOT_PRINTABLE}](?:[^\x00-\x1f\x7f-\x9f]{{0,498}}[^{NOT_PRINTABLE}])?");
    string(Some(format!(r"^[{WS}]*(?:{body}[{WS}]*)?$")), None, None, true)
        .description(Some("Free text, at most 500 characters after trimming, no control characters."))
        .examples(["rack 2"])
        .build()
}

/// Has at least one character that is not whitespace (the server trims).
pub fn not_blank_pattern() -> String {
    format!("[^{WS}]")
}

/// `[Tt][Ee][Xx][Tt]`: `word` in any ASCII case, without the `(?i)` flag ECMA lacks.
pub fn any_case(word: &str) -> String {
    word.chars()
        .map(|c| {
            if c.is_ascii_alphabetic() {
                format!("[{}{}]", c.to_ascii_uppercase(), c.to_ascii_lowercase())
            } else if c == '.' {
                r"\.".to_owned()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// One of `words` in any case, with surrounding whitespace (the server trims).
fn words_pattern(words: &[&str]) -> String {
    let alternatives: Vec<String> = words.iter().map(|w| any_case(w)).collect();
    format!("^[{WS}]*(?:{})[{WS}]*$", alternatives.join("|"))
}

/// A query value: one of `words` in any case, or blank (the query parser
/// trims every value and takes a blank one as absent).
pub fn query_words_pattern(words: &[&str]) -> String {
    let alternatives: Vec<String> = words.iter().map(|w| any_case(w)).collect();
    format!("^[{WS}]*(?:{})?[{WS}]*$", alternatives.join("|"))
}

/// A nullable string that is one of `words` in any case, surrounding whitespace allowed.
fn words_or_null(words: &[&str], description: &str) -> Object {
    string(Some(words_pattern(words)), None, None, true).description(Some(description)).build()
}

/// `tier` of `PATCH /admin/users/{userId}`.
pub fn tier() -> Object {
    words_or_null(&["basic", "pro", "max"], "BASIC, PRO or MAX (any case).")
}

/// `role` of `PATCH /admin/users/{userId}`.
pub fn role() -> Object {
    words_or_null(&["user", "administrator"], "USER or ADMINISTRATOR (any case).")
}

/// `status` of `PATCH /admin/workers/{workerId}`.
pub fn worker_status() -> Object {
    words_or_null(&["maintenance", "online"], "MAINTENANCE or ONLINE (any case).")
}

/// `workerId` of `POST /admin/workers`: 1-64 of `[A-Za-z0-9._-]` after trimming; blank or absent: generated.
pub fn new_worker_id() -> Object {
    string(Some(format!("^[{WS}]*(?:[A-Za-z0-9._-]{{1,64}}[{WS}]*)?$")), None, None, true)
        .description(Some(
            "Optional id: 1-64 letters, digits, '.', '-' or '_' (generated when absent or blank).",
        ))
        .build()
}

/// `endpoint` of `POST /admin/workers`: after trimming, at most 512 characters, no whitespace or control characters.
pub fn worker_endpoint() -> Object {
    string(Some(format!(r"^[{WS}]*(?:[^{NOT_PRINTABLE}]{{1,512}}[{WS}]*)?$")), None, None, true)
        .description(Some(
            "Informational address (default `stream://<workerId>`): at most 512 characters, no spaces.",
        ))
        .build()
}

/// `month` of the usage routes: `YYYY-MM` from 2000 on; blank: the current month
/// (the query parser trims, so padding is no part of the 7-character limit).
pub fn month() -> Object {
    string(Some(format!("^[{WS}]*(?:[2-9][0-9]{{3}}-(?:0[1-9]|1[0-2])[{WS}]*)?$")), None, None, false)
        .description(Some("Billing month `YYYY-MM` (UTC); default the current month."))
        .examples(["2026-11"])
        .build()
}

/// A phone number as the control plane reads one: an optional leading `+`,
/// 7-15 digits (the first not 0), spaces, dashes, dots and parentheses between.
const PHONE: &str = r"\+?[ .()-]*[1-9](?:[ .()-]*[0-9]){6,14}[ .()-]*";

/// A recipient: a phone number, `<phone>@s.whatsapp.net`, `<phone>@c.us` or `<digits and dashes>@g.us`.
pub fn recipient_pattern() -> String {
    format!(
        r"^[{WS}]*(?:{PHONE}(?:@(?:{}|{}))?|[0-9-]{{1,64}}@{})[{WS}]*$",
        any_case("s.whatsapp.net"),
        any_case("c.us"),
        any_case("g.us")
    )
}

/// A query filter on a user id (`userId`): 1-64 of `[A-Za-z0-9_-]`, or
/// blank (no filter; the query parser trims).
pub fn query_id() -> Object {
    string(Some(format!("^[{WS}]*(?:[A-Za-z0-9_-]{{1,64}}[{WS}]*)?$")), None, None, false)
        .description(Some("Only this user's rows (a user id); blank: every user."))
        .build()
}

/// The `peer` filter of the history: a recipient as `to` of a send takes
/// it, or blank (no filter).
pub fn query_peer() -> Object {
    let recipient = recipient_pattern();
    let inner = &recipient[1..recipient.len() - 1];
    string(Some(format!("^(?:{inner}|[{WS}]*)$")), None, Some(128), false)
        .description(Some(
            "Phone number or JID of the other party (to or from), as `to` of a send; blank: every party.",
        ))
        .build()
}

/// A phone number, or blank (a contact's `phone`).
fn optional_phone_pattern() -> String {
    format!(r"^[{WS}]*(?:{PHONE}[{WS}]*)?$")
}

fn string(pattern: Option<String>, min: Option<usize>, max: Option<usize>, nullable: bool) -> ObjectBuilder {
    let t = if nullable { SchemaType::from_iter([Type::String, Type::Null]) } else { Type::String.into() };
    ObjectBuilder::new().schema_type(t).pattern(pattern).min_length(min).max_length(max)
}

/// `name` of a session, and of a user in PATCH bodies (`nullable`).
pub fn name(nullable: bool) -> Object {
    string(Some(name_pattern()), None, None, nullable)
        .description(Some("1-100 characters after trimming, no control characters"))
        .build()
}

/// For `#[schema(schema_with = …)]`.
pub fn name_required() -> Object {
    name(false)
}

/// For `#[schema(schema_with = …)]`.
pub fn name_or_null() -> Object {
    name(true)
}

/// `name` of `POST /auth/register`: may be blank (then the email's local part).
pub fn register_name() -> Object {
    string(Some(optional_name_pattern()), None, None, true)
        .description(Some(
            "1-100 characters after trimming, no control characters; blank or absent: the email's local part",
        ))
        .build()
}

/// `refreshToken` of `POST /auth/refresh`: not blank, at most 256 characters.
pub fn refresh_token() -> Object {
    string(Some(not_blank_pattern()), Some(1), Some(256), false).build()
}

/// `email` of `POST /auth/login`: not blank (any other text is only a wrong login).
pub fn login_email() -> Object {
    string(Some(not_blank_pattern()), Some(1), None, false).build()
}

/// `sessionId` of `POST /sessions`: 3-64 of `[A-Za-z0-9_-]` after trimming; blank or absent: generated.
pub fn new_session_id() -> Object {
    string(Some(format!("^[{WS}]*(?:[A-Za-z0-9_-]{{3,64}}[{WS}]*)?$")), None, None, true)
        .description(Some("Optional id: 3-64 letters, digits, '-' or '_' (generated when absent or blank)."))
        .build()
}

const MEDIA_TYPES: [&str; 5] = ["image", "document", "audio", "video", "sticker"];

/// The `POST /sessions/{sessionId}/send` body: one branch per message type,
/// each saying which fields that type requires and how they are checked.
pub fn send_body() -> RefOr<Schema> {
    let ws = WS;
    let to = string(Some(recipient_pattern()), None, None, false)
        .description(Some(
            "Phone number in international format (7-15 digits, country code first; `+`, spaces, \
         dashes, dots and parentheses allowed) or a JID (…@s.whatsapp.net, …@c.us, …@g.us).",
        ))
        .build();
    let text = || string(Some(not_blank_pattern()), None, Some(MAX_TEXT), false);
    let opt = |max: Option<usize>| string(None, None, max, true);
    let number = || ObjectBuilder::new().schema_type(SchemaType::from_iter([Type::Number, Type::Null]));
    let media_url =
        string(Some(format!(r"^[{ws}]*https?://[^{ws}]*[{ws}]*$")), None, Some(MAX_MEDIA_URL), false)
            .description(Some(format!("http(s) URL, at most {MAX_MEDIA_URL} characters, no whitespace")));
    let filename = string(Some(r"^[^/\\\x00]*$".to_owned()), None, Some(MAX_FILENAME), true)
        .description(Some(format!("a plain file name: no '/', '\\' or NUL, at most {MAX_FILENAME} bytes")));
    // Fields every branch declares with their JSON types (unused ones are ignored).
    let base = |kind: ObjectBuilder, title: &str, description: &str| {
        ObjectBuilder::new()
            .title(Some(title))
            .description(Some(description))
            .property("to", to.clone())
            .property("type", kind)
            .property("message", opt(Some(MAX_TEXT)))
            .property("mediaUrl", opt(None))
            .property("caption", opt(Some(MAX_CAPTION)))
            .property("filename", opt(None))
            .property("latitude", number())
            .property("longitude", number())
            .property("name", opt(None))
            .property("phone", opt(None))
            .property("vcard", opt(None))
            .property(
                "quotedMessageId",
                string(Some(r"^[A-Za-z0-9._-]{1,64}$".to_owned()), None, Some(64), true).description(Some(
                    "Reply to this message of the session: its wagate id or WhatsApp id (404 when unknown).",
                )),
            )
            .property(
                "mentions",
                ObjectBuilder::new()
                    .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
                    .description(Some(format!(
                        "People mentioned (phone numbers or JIDs, at most {MAX_MENTIONS}); write `@<number>` in the text."
                    ))),
            )
            .required("to")
    };
    let text_branch = base(
        string(Some(words_pattern(&["text"])), None, None, true),
        "text",
        &format!("`type` text (any case) or absent: `message` (not blank, at most {MAX_TEXT} characters)."),
    )
    .property("message", text())
    .required("message")
    .build();
    let media_branch = base(
        string(Some(words_pattern(&MEDIA_TYPES)), None, None, false),
        "media",
        "`type` image, document, audio, video or sticker (any case): `mediaUrl`, optional `caption` and `filename`.",
    )
    .property("mediaUrl", media_url)
    .property("filename", filename)
    .required("type")
    .required("mediaUrl")
    .build();
    let location_branch = base(
        string(Some(words_pattern(&["location"])), None, None, false),
        "location",
        &format!(
            "`type` location (any case): `latitude` and `longitude`, optional `name` (at most {MAX_NAME} characters)."
        ),
    )
    .property("latitude", ObjectBuilder::new().schema_type(Type::Number).minimum(Some(-90)).maximum(Some(90)))
    .property(
        "longitude",
        ObjectBuilder::new().schema_type(Type::Number).minimum(Some(-180)).maximum(Some(180)),
    )
    .property("name", opt(Some(MAX_NAME)))
    .required("type")
    .required("latitude")
    .required("longitude")
    .build();
    let contact_fields = base(
        string(Some(words_pattern(&["contact"])), None, None, false),
        "contact",
        &format!("`type` contact (any case): `name`, and `phone` or `vcard` (at most {MAX_VCARD} bytes)."),
    )
    .property("name", name(false))
    .property("phone", string(Some(optional_phone_pattern()), None, None, true))
    .required("type")
    .required("name")
    .build();
    let present = |field: &str| {
        ObjectBuilder::new()
            .property(field, string(Some(not_blank_pattern()), None, None, false))
            .required(field)
            .build()
    };
    let phone_or_vcard =
        Schema::AnyOf(AnyOfBuilder::new().item(present("phone")).item(present("vcard")).build());
    let contact_branch = Schema::AllOf(AllOfBuilder::new().item(contact_fields).item(phone_or_vcard).build());
    let example = serde_json::json!({"to": "6281234567890", "type": "text", "message": "Hello from wagate"});
    OneOfBuilder::new()
        .description(Some(
            "`POST sessions/{sessionId}/send`. `type` (any case, default text) decides the required fields: \
             exactly one branch applies.",
        ))
        .item(text_branch)
        .item(media_branch)
        .item(location_branch)
        .item(contact_branch)
        .examples([example])
        .into()
}

/// `PATCH /me`'s rule: a new `password` needs a non-empty `currentPassword`.
pub fn password_needs_current() -> Schema {
    let no_password =
        ObjectBuilder::new().property("password", ObjectBuilder::new().schema_type(Type::Null)).build();
    let with_current = ObjectBuilder::new()
        .property("currentPassword", string(None, Some(1), Some(1024), false))
        .required("currentPassword")
        .build();
    AnyOfBuilder::new()
        .description(Some("a new `password` needs `currentPassword` (not empty)"))
        .item(no_password)
        .item(with_current)
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The patterns compile (as Rust regexes, a dialect close to ECMA's and Python's).
    fn re(p: &str) -> regex::Regex {
        regex::Regex::new(p).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    #[test]
    fn name_pattern_is_the_control_planes_rule() {
        let r = re(&name_pattern());
        for ok in
            ["Ann", " Ann Smith ", "\tAnn\n", "A", &"x".repeat(100), &format!("  {}  ", "é".repeat(100))]
        {
            assert!(r.is_match(ok), "{ok:?}");
        }
        for bad in ["", "   ", "\t", "An\u{1}n", "Ann\u{7f}x", "A\u{85}B", &"x".repeat(101)] {
            assert!(!r.is_match(bad), "{bad:?}");
        }
        let r = re(&optional_name_pattern());
        for ok in ["", "  ", "\t", "Ann"] {
            assert!(r.is_match(ok), "{ok:?}");
        }
        assert!(!r.is_match("A\u{0}nn"));
    }

    #[test]
    fn recipient_pattern_is_the_control_planes_rule() {
        let r = re(&recipient_pattern());
        for ok in
            ["6281234567890", "+62 812-3456-7890", "6281234567890@C.us", "120363-1234@g.us", " 1234567 "]
        {
            assert!(r.is_match(ok), "{ok:?}");
        }
        for bad in ["", "abc", "123", "+0812345678", "62812@evil.com", "628123456789012345", "62a81234567"] {
            assert!(!r.is_match(bad), "{bad:?}");
        }
    }

    #[test]
    fn type_patterns_take_any_case_and_nothing_else() {
        let r = re(&words_pattern(&MEDIA_TYPES));
        assert!(
            r.is_match("IMAGE") && r.is_match(" Sticker ") && !r.is_match("text") && !r.is_match("images")
        );
        // Query values: trimmed, and blank means absent.
        let q = re(&query_words_pattern(&["1h", "24h"]));
        assert!(q.is_match("") && q.is_match(" 24H ") && q.is_match("\u{85}") && !q.is_match("2h"));
        let id = re(query_id().pattern.as_deref().unwrap());
        assert!(
            id.is_match("") && id.is_match(" u_1-x ") && !id.is_match("a.b") && !id.is_match(&"a".repeat(65))
        );
        let peer = re(query_peer().pattern.as_deref().unwrap());
        assert!(peer.is_match("") && peer.is_match(" +62 812-3456-7890 ") && peer.is_match("1203-1@g.us"));
        assert!(!peer.is_match("abc") && !peer.is_match("123"));
        let d = re(worker_description().pattern.as_deref().unwrap());
        assert!(d.is_match("") && d.is_match(" rack 2 ") && d.is_match(&"x".repeat(500)));
        assert!(!d.is_match("a\u{7}b") && !d.is_match(&"x".repeat(501)));
        let m = re(month().pattern.as_deref().unwrap());
        assert!(
            m.is_match("2026-11") && m.is_match("  ") && !m.is_match("2026-13") && !m.is_match("1999-01")
        );
    }
}
