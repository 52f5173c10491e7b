//! Where a replay goes: the target URL, its credentials and database renames.

use std::collections::HashMap;
use std::str::FromStr;

use mysql_async::{Opts, OptsBuilder};

use crate::error::Error;

/// How fast to replay: a factor on the captured timeline, or back to back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    Factor(f64),
    Max,
}

impl Speed {
    /// The factor, `None` for `max` (as the results file records it).
    pub fn factor(self) -> Option<f64> {
        match self {
            Speed::Factor(f) => Some(f),
            Speed::Max => None,
        }
    }
}

impl FromStr for Speed {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        if s.eq_ignore_ascii_case("max") {
            return Ok(Speed::Max);
        }
        match s.trim_end_matches(['x', 'X']).parse::<f64>() {
            Ok(f) if f.is_finite() && f > 0.0 => Ok(Speed::Factor(f)),
            _ => Err(Error::Speed(s.to_string())),
        }
    }
}

impl std::fmt::Display for Speed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Speed::Factor(x) => write!(f, "{x}×"),
            Speed::Max => f.write_str("max"),
        }
    }
}

/// A parsed target: connection options without a database (each replay connection picks
/// its own, from the capture through the db map) plus the URL's database as fallback.
#[derive(Debug, Clone)]
pub struct Target {
    base: Opts,
    default_db: Option<String>,
    display: String,
    db_map: HashMap<String, Option<String>>,
}

impl Target {
    /// Parses `mysql://USER[:PASS]@HOST:PORT[/DB]`. The password may also come from
    /// `MYSQL_PWD` (so it stays out of shell history and `ps`); credentials never come
    /// from the capture.
    pub fn parse(
        url: &str,
        env_password: Option<String>,
        db_map: &[String],
    ) -> Result<Self, Error> {
        let opts = Opts::from_url(url).map_err(|e| Error::Target {
            url: redact_url(url),
            reason: e.to_string(),
        })?;
        let default_db = opts.db_name().map(str::to_string);
        let mut builder = OptsBuilder::from_opts(opts.clone())
            .db_name(None::<String>)
            // We own statement lifetimes: a replayed PREPARE is a real prepare and a
            // replayed CLOSE a real close, as captured.
            .stmt_cache_size(0)
            .tcp_nodelay(true)
            .prefer_socket(false);
        if opts.pass().is_none()
            && let Some(pass) = env_password
        {
            builder = builder.pass(Some(pass));
        }
        let mut map = HashMap::new();
        for entry in db_map {
            let (old, new) = entry
                .split_once('=')
                .ok_or_else(|| Error::DbMap(entry.clone()))?;
            if old.is_empty() {
                return Err(Error::DbMap(entry.clone()));
            }
            let new = (!new.is_empty()).then(|| new.to_string());
            map.insert(old.to_string(), new);
        }
        Ok(Target {
            display: format!(
                "{}@{}:{}",
                opts.user().unwrap_or(""),
                opts.ip_or_hostname(),
                opts.tcp_port()
            ),
            base: builder.into(),
            default_db,
            db_map: map,
        })
    }

    /// `user@host:port`, for messages and metadata (never the password).
    pub fn display(&self) -> &str {
        &self.display
    }

    /// The database a captured database name becomes on the target.
    pub fn map_db(&self, captured: Option<&str>) -> Option<String> {
        match captured {
            Some(db) => match self.db_map.get(db) {
                Some(mapped) => mapped.clone(),
                None => Some(db.to_string()),
            },
            None => self.default_db.clone(),
        }
    }

    /// Options for one replay connection with `db` as its default database.
    pub fn opts_for(&self, db: Option<String>) -> Opts {
        OptsBuilder::from_opts(self.base.clone()).db_name(db).into()
    }
}

/// The URL with any password replaced, for error messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speeds_parse_as_floats_or_max() {
        assert_eq!("2.5".parse::<Speed>().unwrap(), Speed::Factor(2.5));
        assert_eq!("4x".parse::<Speed>().unwrap(), Speed::Factor(4.0));
        assert_eq!("MAX".parse::<Speed>().unwrap(), Speed::Max);
        assert!("0".parse::<Speed>().is_err());
        assert!("-1".parse::<Speed>().is_err());
        assert!("fast".parse::<Speed>().is_err());
    }

    #[test]
    fn db_map_renames_and_clears() {
        let t = Target::parse(
            "mysql://u:p@127.0.0.1:3306/fallback",
            None,
            &["shop=shop_copy".into(), "old=".into()],
        )
        .unwrap();
        assert_eq!(t.map_db(Some("shop")).as_deref(), Some("shop_copy"));
        assert_eq!(t.map_db(Some("old")), None);
        assert_eq!(t.map_db(Some("other")).as_deref(), Some("other"));
        assert_eq!(t.map_db(None).as_deref(), Some("fallback"));
        assert_eq!(t.display(), "u@127.0.0.1:3306");
        assert!(Target::parse("mysql://h", None, &["nope".into()]).is_err());
    }

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(
            redact_url("mysql://root:secret@h:1/db"),
            "mysql://root:***@h:1/db"
        );
        assert_eq!(redact_url("mysql://root@h:1"), "mysql://root@h:1");
    }
}
