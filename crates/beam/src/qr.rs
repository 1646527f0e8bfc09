//! A QR code of a URL for the terminal (`beam dev`), to open the tunnel on a
//! phone: two modules per character cell with half blocks, light modules
//! drawn, as `qrencode -t UTF8` does (terminals are mostly dark).

use qrcodegen::{QrCode, QrCodeEcc};

/// Modules of quiet zone around the code (the spec asks for 4; 2 scans fine
/// on a screen and saves lines).
const QUIET: i32 = 2;

/// The QR code of `text`, as lines of text; empty when it cannot be encoded.
pub fn render(text: &str) -> String {
    let Ok(qr) = QrCode::encode_text(text, QrCodeEcc::Low) else {
        return String::new();
    };
    let size = qr.size();
    // Light is drawn: outside the code and its light modules.
    let light =
        |x: i32, y: i32| !(0..size).contains(&x) || !(0..size).contains(&y) || !qr.get_module(x, y);
    let mut out = String::new();
    let mut y = -QUIET;
    while y < size + QUIET {
        for x in -QUIET..size + QUIET {
            out.push(match (light(x, y), light(x, y + 1)) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
        out.push('\n');
        y += 2;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_becomes_a_square_of_half_blocks_that_decodes_back() {
        let url = "https://swift-bridge-4k2.tunnels.example.com";
        let text = render(url);
        let qr = QrCode::encode_text(url, QrCodeEcc::Low).unwrap();
        let width = (qr.size() + 2 * QUIET) as usize;
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), width.div_ceil(2));
        assert!(lines.iter().all(|l| l.chars().count() == width));
        // The top-left finder pattern after the quiet zone: its top row is
        // dark across, its second row dark only at both ends (light drawn).
        let row: String = lines[1].chars().skip(QUIET as usize).take(7).collect();
        assert_eq!(row, " ▄▄▄▄▄ ", "{text}");
        assert!(lines[0].chars().all(|c| c == '█'), "quiet zone: {text}");
    }
}
