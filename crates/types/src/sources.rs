//! Live sources: a database a workspace reads beside its files, named once
//! ([`Source::name`] is the schema its tables appear under in SQL:
//! `dhis.analytics_rawdata`). The connection URL may hold a password; it is
//! never shown: `Debug` and [`Source::redacted_url`] print `***` in its
//! place, and [`Source::password_env`] lets the password live in the
//! environment instead of the stored file.

use serde::{Deserialize, Serialize};

/// The kinds of database Quarry reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Postgres,
    /// MySQL and MariaDB (`mysql://` or `mariadb://`).
    Mysql,
    Sqlite,
}

impl SourceKind {
    pub const ALL: [SourceKind; 3] = [SourceKind::Postgres, SourceKind::Mysql, SourceKind::Sqlite];

    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Postgres => "postgres",
            SourceKind::Mysql => "mysql",
            SourceKind::Sqlite => "sqlite",
        }
    }

    /// The port a server of this kind listens on unless the URL says.
    pub fn default_port(self) -> u16 {
        match self {
            SourceKind::Postgres => 5432,
            SourceKind::Mysql => 3306,
            SourceKind::Sqlite => 0,
        }
    }

    /// How a URL of this kind is written.
    pub fn example(self) -> &'static str {
        match self {
            SourceKind::Postgres => "postgres://USER@HOST:5432/DATABASE",
            SourceKind::Mysql => "mysql://USER@HOST:3306/DATABASE",
            SourceKind::Sqlite => "sqlite:/path/to/file.db",
        }
    }
}

/// A table of a source as introspected when it was connected: its name in
/// SQL (`dhis.facility_months`) and its columns' names and types — never
/// values, so it may reach the model in every privacy mode.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveTable {
    pub name: String,
    /// (name, type); a type Quarry does not read is left out.
    pub columns: Vec<(String, crate::ColumnType)>,
    /// The database's own estimate of its rows, where it keeps one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_estimate: Option<u64>,
    /// The columns of its primary key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub primary_key: Vec<String>,
    /// Its foreign keys: (column, `table.column` it refers to in the same database).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<(String, String)>,
}

/// A connection, as stored in the workspace.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// Letters, digits and `_`: the SQL schema of its tables.
    pub name: String,
    pub kind: SourceKind,
    /// `postgres://user[:password]@host[:port]/database[?sslmode=…]`, the
    /// same with `mysql://`, or `sqlite:PATH`.
    url: String,
    /// The environment variable that holds the password (not stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// That password, when the process serving the user handed it over
    /// ([`Passwords`]): workers start with an empty environment.
    #[serde(skip)]
    password: Option<String>,
}

/// The file in a workspace's data directory that lists its sources.
pub const CONNECTIONS_FILE: &str = "connections.json";

/// The passwords of sources that keep theirs in the environment
/// (`--password-env`), read where the user started Quarry and handed to the
/// SQL worker with each query, since a worker's environment is cleared.
/// Never printed: `Debug` shows only how many there are.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Passwords(Vec<(String, String)>);

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Passwords({} source(s))", self.0.len())
    }
}

impl Passwords {
    /// For each of `sources` whose password is in a variable that is set here: (source, password).
    pub fn from_env(sources: &[Source]) -> Passwords {
        let found = sources.iter().filter_map(|s| {
            let v = std::env::var(s.password_env.as_deref()?).ok()?;
            Some((s.name.clone(), v))
        });
        Passwords(found.collect())
    }

    /// The sources listed in `data`'s connections file, as [`Passwords::from_env`] reads them.
    pub fn for_workspace(data: &std::path::Path) -> Passwords {
        let sources: Vec<Source> = std::fs::read(data.join(CONNECTIONS_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Passwords::from_env(&sources)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `s` with its handed-over password, if there is one for it.
    pub fn apply(&self, mut s: Source) -> Source {
        if let Some((_, p)) = self.0.iter().find(|(n, _)| *n == s.name) {
            s.password = Some(p.clone());
        }
        s
    }
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &self.redacted_url())
            .field("password_env", &self.password_env)
            .finish()
    }
}

/// The parts of a server URL (`scheme://user:password@host:port/database?k=v`).
#[derive(Clone, PartialEq)]
pub struct ServerAddress {
    pub user: String,
    pub password: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    pub database: String,
    pub options: Vec<(String, String)>,
}

impl std::fmt::Debug for ServerAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerAddress")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .finish()
    }
}

fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or("a % in the URL must be followed by two hex digits")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| "a % in the URL must be followed by two hex digits")?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the URL decodes to something that is not UTF-8".to_string())
}

impl Source {
    /// A source from what a person typed, checked (not yet connected).
    pub fn parse(name: &str, url: &str, password_env: Option<String>) -> Result<Source, String> {
        let named = !name.is_empty()
            && name.len() <= 63
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !named {
            return Err(format!(
                "connection name '{name}': use lower-case letters, digits and _ (it becomes the SQL schema, e.g. dhis.table)"
            ));
        }
        if matches!(name, "datafusion" | "public" | "versions" | "information_schema") {
            return Err(format!("connection name '{name}' is taken by Quarry's own tables: choose another"));
        }
        let url = url.trim().to_string();
        let kind = match url.split_once(':').map(|(s, _)| s.to_ascii_lowercase()) {
            Some(s) if s == "postgres" || s == "postgresql" => SourceKind::Postgres,
            Some(s) if s == "mysql" || s == "mariadb" => SourceKind::Mysql,
            Some(s) if s == "sqlite" => SourceKind::Sqlite,
            _ => {
                let kinds: Vec<&str> = SourceKind::ALL.iter().map(|k| k.example()).collect();
                return Err(format!("not a database URL Quarry reads: write {}", kinds.join(" or ")));
            }
        };
        if let Some(v) = &password_env {
            if v.is_empty() || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("--password-env '{v}': name an environment variable (letters, digits, _)"));
            }
        }
        let s = Source { name: name.to_string(), kind, url, password_env, password: None };
        match kind {
            SourceKind::Postgres | SourceKind::Mysql => s.address().map(|_| ())?,
            SourceKind::Sqlite => s.sqlite_path().map(|_| ())?,
        }
        Ok(s)
    }

    /// The URL with its password, if any, written `***`.
    pub fn redacted_url(&self) -> String {
        let Some((scheme, rest)) = self.url.split_once("://") else { return self.url.clone() };
        let Some((userinfo, host)) = rest.split_once('@') else { return self.url.clone() };
        match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => self.url.clone(),
        }
    }

    /// The file of a `sqlite:` source.
    pub fn sqlite_path(&self) -> Result<String, String> {
        let rest = self.url.split_once(':').map(|(_, r)| r).unwrap_or_default();
        let path = rest.strip_prefix("//").unwrap_or(rest);
        if path.is_empty() {
            return Err(format!("{}: write sqlite:/path/to/file.db", self.name));
        }
        Ok(path.to_string())
    }

    /// A server source's address, its password from the URL or the environment.
    pub fn server(&self) -> Result<ServerAddress, String> {
        let mut a = self.address()?;
        if let Some(p) = &self.password {
            a.password = Some(p.clone());
        } else if let Some(var) = &self.password_env {
            a.password = Some(
                std::env::var(var)
                    .map_err(|_| format!("{}: the password is to come from ${var}, which is not set", self.name))?,
            );
        }
        Ok(a)
    }

    /// The address as the URL writes it.
    fn address(&self) -> Result<ServerAddress, String> {
        let bad = |why: &str| format!("{}: {why} (write {})", self.name, self.kind.example());
        let rest = self.url.split_once("://").map(|(_, r)| r).ok_or_else(|| bad("no // after the scheme"))?;
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (userinfo, hostpart) = rest.rsplit_once('@').ok_or_else(|| bad("no user@ before the host"))?;
        let (user, password) = match userinfo.split_once(':') {
            Some((u, p)) => (percent_decode(u)?, Some(percent_decode(p)?)),
            None => (percent_decode(userinfo)?, None),
        };
        let (hostport, database) = hostpart.split_once('/').ok_or_else(|| bad("no /DATABASE after the host"))?;
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => {
                (h.to_string(), Some(p.parse::<u16>().map_err(|_| bad("the port is not a number"))?))
            }
            _ => (hostport.to_string(), None),
        };
        if user.is_empty() || host.is_empty() || database.is_empty() {
            return Err(bad("a user, a host and a database are needed"));
        }
        let options = query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| Ok((percent_decode(k)?, percent_decode(v)?)))
            .collect::<Result<_, String>>()?;
        Ok(ServerAddress { user, password, host, port, database: percent_decode(database)?, options })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_read_and_passwords_never_shown() {
        let s = Source::parse("dhis", "postgres://ro:s3cr%40t@db.local:5433/dhis2?sslmode=require", None).unwrap();
        assert_eq!(s.kind, SourceKind::Postgres);
        let a = s.server().unwrap();
        assert_eq!((a.user.as_str(), a.password.as_deref(), a.host.as_str()), ("ro", Some("s3cr@t"), "db.local"));
        assert_eq!((a.port, a.database.as_str()), (Some(5433), "dhis2"));
        assert_eq!(a.options, [("sslmode".to_string(), "require".to_string())]);
        assert_eq!(s.redacted_url(), "postgres://ro:***@db.local:5433/dhis2?sslmode=require");
        let debug = format!("{s:?}");
        assert!(!debug.contains("s3cr") && debug.contains("***"), "{debug}");
        let f = Source::parse("field", "sqlite:/data/app.db", None).unwrap();
        assert_eq!(f.sqlite_path().unwrap(), "/data/app.db");
        assert!(Source::parse("Bad-Name", "sqlite:/x", None).unwrap_err().contains("lower-case"));
        assert!(Source::parse("versions", "sqlite:/x", None).unwrap_err().contains("taken"));
        assert!(Source::parse("x", "mongodb://h/d", None).unwrap_err().contains("postgres://USER@HOST"));
        assert!(Source::parse("x", "postgres://host/db", None).unwrap_err().contains("no user@"));
        let m = Source::parse("district", "mariadb://ro:pw@10.0.0.5/hmis", None).unwrap();
        assert_eq!((m.kind, m.server().unwrap().port, m.kind.default_port()), (SourceKind::Mysql, None, 3306));
        assert_eq!(m.redacted_url(), "mariadb://ro:***@10.0.0.5/hmis");
        let env = Source::parse("e", "postgres://ro@h/d", Some("QUARRY_TEST_UNSET_PW".into())).unwrap();
        assert!(env.server().unwrap_err().contains("$QUARRY_TEST_UNSET_PW, which is not set"));
        // Handed over to a worker: used, never printed or stored.
        let handed = Passwords(vec![("e".into(), "from-env-pw".into())]);
        let env = handed.apply(env);
        assert_eq!(env.server().unwrap().password.as_deref(), Some("from-env-pw"));
        assert!(!format!("{env:?}{handed:?}").contains("from-env-pw"));
        assert!(!serde_json::to_string(&env).unwrap().contains("from-env-pw"));
    }
}
