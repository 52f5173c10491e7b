//! Text, JSON and HTML reports of a comparison, and the ramp's capacity page.

pub mod answers;
pub mod html;
pub mod ramp;
pub mod text;
pub mod timeline;

/// Shortens a fingerprint for a table cell, on a character boundary.
pub fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}
