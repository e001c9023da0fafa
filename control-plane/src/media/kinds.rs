//! What WhatsApp accepts per message type: the size limit (configurable,
//! `WAGATE_MEDIA_MAX_*_BYTES`) and the types, judged on the bytes (the
//! `infer` crate reads the magic numbers), never on the client's word.

use wagate_proto::v1::MessageType;

use super::MediaError;

/// Bytes read before the type is decided (enough for every signature `infer` knows).
pub const SNIFF_BYTES: usize = 8192;

/// Size limits per kind, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub image: u64,
    pub audio: u64,
    pub video: u64,
    pub document: u64,
    pub sticker: u64,
}

/// A media kind: the message type it is sent as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Image,
    Audio,
    Video,
    Document,
    Sticker,
}

impl Kind {
    pub fn of(t: MessageType) -> Option<Kind> {
        Some(match t {
            MessageType::Image => Kind::Image,
            MessageType::Audio => Kind::Audio,
            MessageType::Video => Kind::Video,
            MessageType::Document => Kind::Document,
            MessageType::Sticker => Kind::Sticker,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Image => "image",
            Kind::Audio => "audio",
            Kind::Video => "video",
            Kind::Document => "document",
            Kind::Sticker => "sticker",
        }
    }

    pub fn limit(self, l: &Limits) -> u64 {
        match self {
            Kind::Image => l.image,
            Kind::Audio => l.audio,
            Kind::Video => l.video,
            Kind::Document => l.document,
            Kind::Sticker => l.sticker,
        }
    }

    /// The types WhatsApp takes for this kind (`None`: any, documents).
    pub fn accepted(self) -> Option<&'static [&'static str]> {
        match self {
            Kind::Image => Some(&["image/jpeg", "image/png"]),
            Kind::Sticker => Some(&["image/webp"]),
            Kind::Audio => Some(&[
                "audio/aac",
                "audio/mp4",
                "audio/m4a",
                "audio/x-m4a",
                "audio/mpeg",
                "audio/amr",
                "audio/ogg",
            ]),
            Kind::Video => Some(&["video/mp4", "video/3gpp"]),
            Kind::Document => None,
        }
    }
}

/// Human size: `5 MB`, `500 KB`, `1234 bytes`.
pub fn human(bytes: u64) -> String {
    if bytes >= 1024 * 1024 && bytes.is_multiple_of(1024 * 1024) {
        format!("{} MB", bytes / (1024 * 1024))
    } else if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}

/// The 413 of a file above its kind's limit.
pub fn too_large(kind: Kind, limits: &Limits) -> MediaError {
    let limit = kind.limit(limits);
    MediaError::TooLarge(format!(
        "{} is larger than the limit of {} ({limit} bytes)",
        kind.name(),
        human(limit)
    ))
}

/// The type of a file from its first bytes (`head`), checked against what
/// `kind` accepts. A document whose bytes say nothing keeps the declared
/// type (or `application/octet-stream`).
pub fn decide(kind: Kind, head: &[u8], declared: &str) -> Result<String, MediaError> {
    let sniffed = infer::get(head).map(|t| t.mime_type());
    match (kind.accepted(), sniffed) {
        (None, Some(m)) => Ok(m.to_owned()),
        (None, None) => Ok(declared_or_binary(declared)),
        (Some(list), Some(m)) if list.contains(&m) => Ok(m.to_owned()),
        (Some(list), found) => Err(MediaError::Unsupported(format!(
            "{} must be one of {} (the file is {})",
            kind.name(),
            list.join(", "),
            found.unwrap_or("of an unknown type")
        ))),
    }
}

/// A declared type that looks like one (`type/subtype`, printable), else binary.
fn declared_or_binary(declared: &str) -> String {
    let d = declared.trim().to_ascii_lowercase();
    let sane = d.len() <= 127
        && d.split_once('/').is_some_and(|(a, b)| !a.is_empty() && !b.is_empty())
        && d.bytes().all(|c| c.is_ascii_alphanumeric() || b"/.+-_".contains(&c));
    if sane { d } else { "application/octet-stream".to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";

    #[test]
    fn bytes_decide_the_type() {
        assert_eq!(decide(Kind::Image, PNG, "text/plain").unwrap(), "image/png");
        let e = decide(Kind::Image, b"hello world", "image/png").unwrap_err();
        assert!(matches!(&e, MediaError::Unsupported(m) if m.contains("image/jpeg, image/png")), "{e}");
        assert!(decide(Kind::Sticker, PNG, "").is_err());
        assert_eq!(decide(Kind::Document, b"%PDF-1.7\n", "").unwrap(), "application/pdf");
        assert_eq!(decide(Kind::Document, b"a,b\n1,2\n", "text/csv").unwrap(), "text/csv");
        assert_eq!(decide(Kind::Document, b"a,b", "not a type").unwrap(), "application/octet-stream");
    }

    #[test]
    fn limits_are_named() {
        let l = Limits {
            image: 5 << 20,
            audio: 16 << 20,
            video: 16 << 20,
            document: 100 << 20,
            sticker: 500 << 10,
        };
        assert_eq!(
            too_large(Kind::Sticker, &l).to_string(),
            "sticker is larger than the limit of 500 KB (512000 bytes)"
        );
        assert_eq!(human(1234), "1234 bytes");
    }
}
