//! A session's pairing QR code rendered for people: SVG and PNG for a
//! browser (the docs page shows it), Unicode blocks for a terminal.

use qrcode::QrCode;
use qrcode::render::{svg, unicode};
use wagate_proto::error::{ApiError, ErrorCode};

/// How `GET …/qr` answers (`?format=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QrFormat {
    /// The JSON envelope with the code's text (the default).
    Json,
    Png,
    Svg,
    Text,
}

impl QrFormat {
    pub fn parse(raw: &str) -> Result<QrFormat, ApiError> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "" | "json" => Ok(QrFormat::Json),
            "png" => Ok(QrFormat::Png),
            "svg" => Ok(QrFormat::Svg),
            "text" | "txt" => Ok(QrFormat::Text),
            _ => Err(ApiError::invalid("format", "format must be json, png, svg or text")),
        }
    }
}

/// Pixels per module of the PNG, and modules of quiet zone around it.
const PNG_SCALE: usize = 8;
const QUIET_ZONE: usize = 4;

/// The code rendered as `format` (not `Json`): its content type and bytes.
pub fn render(code: &str, format: QrFormat) -> Result<(&'static str, Vec<u8>), ApiError> {
    let qr = QrCode::new(code.as_bytes())
        .map_err(|e| ApiError::new(ErrorCode::WorkerError, format!("the QR code cannot be rendered: {e}")))?;
    match format {
        QrFormat::Svg => {
            let image = qr.render::<svg::Color<'_>>().min_dimensions(256, 256).build();
            Ok(("image/svg+xml", image.into_bytes()))
        }
        QrFormat::Text => {
            let text = qr.render::<unicode::Dense1x2>().quiet_zone(true).build();
            Ok(("text/plain; charset=utf-8", text.into_bytes()))
        }
        QrFormat::Png | QrFormat::Json => png(&qr),
    }
}

/// 8-bit greyscale PNG: black modules on white, with the quiet zone.
fn png(qr: &QrCode) -> Result<(&'static str, Vec<u8>), ApiError> {
    let modules = qr.width();
    let side = (modules + 2 * QUIET_ZONE) * PNG_SCALE;
    let colors = qr.to_colors();
    let mut pixels = vec![255u8; side * side];
    for (i, color) in colors.iter().enumerate() {
        if *color != qrcode::Color::Dark {
            continue;
        }
        let (mx, my) = (i % modules + QUIET_ZONE, i / modules + QUIET_ZONE);
        for y in my * PNG_SCALE..(my + 1) * PNG_SCALE {
            pixels[y * side + mx * PNG_SCALE..y * side + (mx + 1) * PNG_SCALE].fill(0);
        }
    }
    let failed = |e: png::EncodingError| ApiError::new(ErrorCode::Internal, format!("png encoding: {e}"));
    let mut out = Vec::with_capacity(side * side / 8);
    let side_u32 =
        u32::try_from(side).map_err(|_| ApiError::new(ErrorCode::Internal, "QR code too large"))?;
    let mut encoder = png::Encoder::new(&mut out, side_u32, side_u32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(failed)?;
    writer.write_image_data(&pixels).map_err(failed)?;
    writer.finish().map_err(failed)?;
    Ok(("image/png", out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_and_render() {
        assert_eq!(QrFormat::parse("").unwrap(), QrFormat::Json);
        assert_eq!(QrFormat::parse("PNG").unwrap(), QrFormat::Png);
        assert_eq!(QrFormat::parse("gif").unwrap_err().field.as_deref(), Some("format"));
        let code = "2@AbCdEf,ghIJ==,kl+MN/op=,qR";
        let (ct, png) = render(code, QrFormat::Png).unwrap();
        assert_eq!(ct, "image/png");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        // Decodes to an image of the expected side with dark and light pixels.
        let decoder = png::Decoder::new(std::io::Cursor::new(png));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        let side = (QrCode::new(code).unwrap().width() + 2 * QUIET_ZONE) * PNG_SCALE;
        assert_eq!((info.width as usize, info.height as usize), (side, side));
        assert!(buf.contains(&0) && buf.contains(&255));
        let (ct, svg) = render(code, QrFormat::Svg).unwrap();
        assert_eq!(ct, "image/svg+xml");
        assert!(String::from_utf8(svg).unwrap().contains("<svg"));
        let (_, text) = render(code, QrFormat::Text).unwrap();
        assert!(String::from_utf8(text).unwrap().contains('█'));
    }
}
