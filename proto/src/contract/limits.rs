//! Limits of what a caller sends: the send body (`POST …/send`,
//! `MessageService.Send`, and the inbound messages workers report, checked
//! by the same rules) and a webhook's settings. The control plane enforces
//! them; the edge checks what it can early and documents them in its
//! OpenAPI document.

/// `message` of a text message, in characters.
pub const MAX_TEXT: usize = 4096;
/// `caption` of a media message, in characters.
pub const MAX_CAPTION: usize = 1024;
/// `mediaUrl` of a media message, in bytes (an http(s) URL).
pub const MAX_MEDIA_URL: usize = 2048;
/// `filename` of a media message, in bytes.
pub const MAX_FILENAME: usize = 255;
/// `name` of a location or contact message (and every display name), in characters.
pub const MAX_NAME: usize = 100;
/// `vcard` of a contact message, in bytes.
pub const MAX_VCARD: usize = 4096;
/// The `Idempotency-Key` of a send (`len()`).
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

/// A webhook's `url`, in bytes.
pub const MAX_WEBHOOK_URL: usize = 2048;
/// Entries of a webhook's `events`.
pub const MAX_WEBHOOK_EVENTS: usize = 16;

/// Numbers in one number check (`POST …/contacts/check`, `MessageService.CheckNumbers`).
pub const MAX_CHECK_NUMBERS: usize = 50;
/// Message ids in one read receipt (`POST …/read`, `MessageService.MarkRead`).
pub const MAX_READ_IDS: usize = 100;
/// Bytes of a reaction's emoji (one emoji with its modifiers and joiners).
pub const MAX_EMOJI: usize = 64;

/// Seconds after sending during which WhatsApp lets a message be edited.
pub const EDIT_WINDOW_SECS: i64 = 15 * 60;

/// Seconds after sending during which WhatsApp lets a message be deleted for
/// everyone (WhatsApp's own limit is about two and a half days; wagate
/// refuses earlier rather than have the phone ignore it).
pub const DELETE_WINDOW_SECS: i64 = 48 * 3600;

/// People a message may mention.
pub const MAX_MENTIONS: usize = 50;

/// Characters of a group's subject (WhatsApp's own limit).
pub const MAX_GROUP_SUBJECT: usize = 100;

/// Participants one group call names (a WhatsApp group holds up to 1,024).
pub const MAX_GROUP_PARTICIPANTS: usize = 256;
