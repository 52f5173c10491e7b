//! The commands `compare` and `timeline` as the binary runs them: arguments in, reports
//! printed and written, gates applied. The top layer: it uses analysis (`compare`,
//! `timeline`) and render (`report`), which never call back up.

pub mod compare;
pub mod timeline;
