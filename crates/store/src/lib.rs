//! # quarry-store: what the web app remembers
//!
//! Owns the server's SQLite database (`<data>/quarry.sqlite`, beside the
//! workspaces' catalogs): users with hashed passwords, API tokens (stored as
//! hashes), workspaces and their owners, uploaded datasets, conversations
//! with their analyst state, every event of every question — appended as
//! it happens, so a crash loses at most the step in flight and a reload
//! replays everything — each workspace's [`members`] and their roles, its
//! read-only [`shares`] links, and its append-only [`audit`] trail.
//!
//! Events are stored as the JSON the agent's `Event` serialises to; the store
//! does not interpret them beyond their `type`. No HTTP, no analysis here.

use std::path::Path;
use std::sync::Mutex;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use quarry_types::Event;
use rand_core::{OsRng, RngCore};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub mod audit;
pub mod members;
pub mod shares;
pub use audit::{AuditAction, AuditEntry};
pub use members::{Member, Role};
pub use shares::{NewShare, Share, ShareKind};

/// A store failure, with what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        StoreError(format!("the store's database failed: {e}"))
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub admin: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workspace {
    pub id: String,
    pub owner: i64,
    pub name: String,
    pub created_at: String,
}

/// An uploaded file and the tables it became.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    pub id: String,
    pub workspace: String,
    pub file_name: String,
    pub size: u64,
    pub tables: Vec<String>,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationRow {
    pub id: String,
    pub workspace: String,
    pub title: String,
    pub created_at: String,
    /// The analyst's conversation state (turns), as JSON.
    pub state: Value,
}

/// One stored event: `seq` orders a conversation's events; `question`
/// numbers the question it belongs to (1, 2, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    pub seq: i64,
    pub question: i64,
    pub event: Event,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
  id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, password_hash TEXT,
  admin INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL DEFAULT (datetime('now')));
CREATE TABLE IF NOT EXISTS tokens (
  token_hash TEXT PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id),
  label TEXT, created_at TEXT NOT NULL DEFAULT (datetime('now')));
CREATE TABLE IF NOT EXISTS workspaces (
  id TEXT PRIMARY KEY, owner INTEGER NOT NULL REFERENCES users(id), name TEXT NOT NULL,
  created_at TEXT NOT NULL DEFAULT (datetime('now')));
CREATE TABLE IF NOT EXISTS datasets (
  id TEXT PRIMARY KEY, workspace TEXT NOT NULL REFERENCES workspaces(id), file_name TEXT NOT NULL,
  size INTEGER NOT NULL, tables TEXT NOT NULL, created_at TEXT NOT NULL DEFAULT (datetime('now')));
CREATE TABLE IF NOT EXISTS conversations (
  id TEXT PRIMARY KEY, workspace TEXT NOT NULL REFERENCES workspaces(id), title TEXT NOT NULL,
  state TEXT NOT NULL DEFAULT '{}', created_at TEXT NOT NULL DEFAULT (datetime('now')));
CREATE TABLE IF NOT EXISTS events (
  conversation TEXT NOT NULL REFERENCES conversations(id), seq INTEGER NOT NULL,
  question INTEGER NOT NULL, kind TEXT NOT NULL, body TEXT NOT NULL,
  at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')), PRIMARY KEY (conversation, seq));
";

/// The server's database. One connection behind a mutex: every call is a
/// short statement, and SQLite in WAL mode keeps readers off writers' backs.
pub struct Store {
    conn: Mutex<Connection>,
}

/// A random identifier (hex) from the OS's generator.
pub fn random_id(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub(crate) fn token_hash(token: &str) -> String {
    blake3::hash(token.as_bytes()).to_hex().to_string()
}

impl Store {
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError(format!("{}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path).map_err(|e| StoreError(format!("{}: {e}", path.display())))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(audit::SCHEMA)?;
        conn.execute_batch(members::SCHEMA)?;
        conn.execute_batch(shares::SCHEMA)?;
        migrate_tokens(&conn)?;
        Ok(Store { conn: Mutex::new(conn) })
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    // ------------------------------------------------------------ users

    /// The single local user of a loopback server (created once).
    pub fn local_user(&self) -> Result<User> {
        if let Some(u) = self.user_by_name("local")? {
            return Ok(u);
        }
        self.create_user("local", None, true)
    }

    pub fn create_user(&self, name: &str, password: Option<&str>, admin: bool) -> Result<User> {
        let name = name.trim();
        if name.is_empty() || name.len() > 64 {
            return Err(StoreError("a user name needs 1 to 64 characters".into()));
        }
        let hash = match password {
            Some(p) if p.len() < 8 => return Err(StoreError("a password needs at least 8 characters".into())),
            Some(p) => Some(
                Argon2::default()
                    .hash_password(p.as_bytes(), &SaltString::generate(&mut OsRng))
                    .map_err(|e| StoreError(format!("hashing the password failed: {e}")))?
                    .to_string(),
            ),
            None => None,
        };
        let db = self.db();
        db.execute("INSERT INTO users (name, password_hash, admin) VALUES (?1, ?2, ?3)", params![name, hash, admin])
            .map_err(|e| match e {
                rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
                    StoreError(format!("a user named '{name}' already exists"))
                }
                e => e.into(),
            })?;
        Ok(User { id: db.last_insert_rowid(), name: name.to_string(), admin })
    }

    pub fn user_by_name(&self, name: &str) -> Result<Option<User>> {
        Ok(self
            .db()
            .query_row("SELECT id, name, admin FROM users WHERE name = ?1", [name], |r| {
                Ok(User { id: r.get(0)?, name: r.get(1)?, admin: r.get(2)? })
            })
            .optional()?)
    }

    pub fn users(&self) -> Result<Vec<User>> {
        let db = self.db();
        let mut st = db.prepare("SELECT id, name, admin FROM users ORDER BY id")?;
        let rows = st.query_map([], |r| Ok(User { id: r.get(0)?, name: r.get(1)?, admin: r.get(2)? }))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The user, when the password matches (constant-time comparison by
    /// argon2). Unknown users and users without a password cost the same
    /// argon2 work as known ones, so timing does not tell which names exist.
    pub fn check_password(&self, name: &str, password: &str) -> Result<Option<User>> {
        let row: Option<(i64, String, bool, Option<String>)> = self
            .db()
            .query_row("SELECT id, name, admin, password_hash FROM users WHERE name = ?1", [name], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()?;
        let Some((id, name, admin, Some(hash))) = row else {
            let _ = PasswordHash::new(dummy_hash())
                .map(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok());
            return Ok(None);
        };
        let Ok(parsed) = PasswordHash::new(&hash) else { return Ok(None) };
        Ok(Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok().then_some(User { id, name, admin }))
    }

    /// A new login session for the user: it ends `max` after it began, or
    /// earlier when unused for longer than the idle limit given to
    /// [`Store::user_for_token`]. Only its hash is stored.
    pub fn issue_session(&self, user: i64, max: std::time::Duration) -> Result<String> {
        let token = format!("qs_{}", random_id(24));
        let now = unix_now();
        self.db().execute(
            "INSERT INTO tokens (token_hash, user_id, label, kind, created_unix, last_used_unix, expires_unix)
             VALUES (?1, ?2, 'login', 'session', ?3, ?3, ?4)",
            params![token_hash(&token), user, now, now.saturating_add(max.as_secs() as i64)],
        )?;
        Ok(token)
    }

    /// The caller's sessions and API tokens (never the tokens themselves).
    pub fn tokens(&self, user: i64) -> Result<Vec<TokenInfo>> {
        let db = self.db();
        let mut st = db.prepare(
            "SELECT substr(token_hash, 1, 16), label, kind, created_at, last_used_unix, expires_unix
             FROM tokens WHERE user_id = ?1 ORDER BY rowid",
        )?;
        let rows = st.query_map([user], |r| {
            Ok(TokenInfo {
                id: r.get(0)?,
                label: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                kind: r.get(2)?,
                created_at: r.get(3)?,
                last_used_unix: r.get(4)?,
                expires_unix: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Revoke one of the user's tokens by the id [`Store::tokens`] lists;
    /// false when the user has no such token.
    pub fn revoke_token_id(&self, user: i64, id: &str) -> Result<bool> {
        if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(false);
        }
        let n = self.db().execute(
            "DELETE FROM tokens WHERE user_id = ?1 AND substr(token_hash, 1, 16) = ?2",
            params![user, id.to_ascii_lowercase()],
        )?;
        Ok(n > 0)
    }

    /// A new API/session token for the user; only its hash is stored.
    pub fn issue_token(&self, user: i64, label: &str) -> Result<String> {
        let token = format!("qt_{}", random_id(24));
        self.db().execute(
            "INSERT INTO tokens (token_hash, user_id, label) VALUES (?1, ?2, ?3)",
            params![token_hash(&token), user, label],
        )?;
        Ok(token)
    }

    /// The token's user. A session past its end, or unused for longer than
    /// `idle`, is deleted and answers `None`; API tokens last until revoked.
    pub fn user_for_token(&self, token: &str, idle: std::time::Duration) -> Result<Option<User>> {
        let hash = token_hash(token);
        let db = self.db();
        let row: Option<(User, String, Option<i64>, Option<i64>)> = db
            .query_row(
                "SELECT u.id, u.name, u.admin, t.kind, t.last_used_unix, t.expires_unix
                 FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = ?1",
                [&hash],
                |r| Ok((User { id: r.get(0)?, name: r.get(1)?, admin: r.get(2)? }, r.get(3)?, r.get(4)?, r.get(5)?)),
            )
            .optional()?;
        let Some((user, kind, last_used, expires)) = row else { return Ok(None) };
        let now = unix_now();
        let idle_for = now - last_used.unwrap_or(now);
        if kind == "session" && (expires.is_some_and(|e| now >= e) || idle_for > idle.as_secs() as i64) {
            db.execute("DELETE FROM tokens WHERE token_hash = ?1", [&hash])?;
            return Ok(None);
        }
        // One write a minute at most per token, not one per request.
        if last_used.is_none_or(|t| now - t >= 60) {
            db.execute("UPDATE tokens SET last_used_unix = ?2 WHERE token_hash = ?1", params![hash, now])?;
        }
        Ok(Some(user))
    }

    pub fn revoke_token(&self, token: &str) -> Result<()> {
        self.db().execute("DELETE FROM tokens WHERE token_hash = ?1", [token_hash(token)])?;
        Ok(())
    }

    // ------------------------------------------------------------ workspaces

    pub fn create_workspace(&self, owner: i64, name: &str) -> Result<Workspace> {
        let id = random_id(8);
        let db = self.db();
        db.execute("INSERT INTO workspaces (id, owner, name) VALUES (?1, ?2, ?3)", params![id, owner, name])?;
        Ok(db.query_row("SELECT id, owner, name, created_at FROM workspaces WHERE id = ?1", [&id], ws_row)?)
    }

    pub fn workspaces(&self, owner: i64) -> Result<Vec<Workspace>> {
        let db = self.db();
        let mut st =
            db.prepare("SELECT id, owner, name, created_at FROM workspaces WHERE owner = ?1 ORDER BY created_at, id")?;
        let rows = st.query_map([owner], ws_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn workspace(&self, id: &str) -> Result<Option<Workspace>> {
        Ok(self
            .db()
            .query_row("SELECT id, owner, name, created_at FROM workspaces WHERE id = ?1", [id], ws_row)
            .optional()?)
    }

    // ------------------------------------------------------------ datasets

    pub fn add_dataset(&self, workspace: &str, file_name: &str, size: u64, tables: &[String]) -> Result<Dataset> {
        let id = random_id(8);
        let db = self.db();
        db.execute(
            "INSERT INTO datasets (id, workspace, file_name, size, tables) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id, workspace, file_name, size as i64, serde_json::to_string(tables).unwrap_or_default()],
        )?;
        Ok(db.query_row(&format!("{DATASET} WHERE id = ?1"), [&id], ds_row)?)
    }

    pub fn datasets(&self, workspace: &str) -> Result<Vec<Dataset>> {
        let db = self.db();
        let mut st = db.prepare(&format!("{DATASET} WHERE workspace = ?1 ORDER BY created_at, id"))?;
        let rows = st.query_map([workspace], ds_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn dataset(&self, id: &str) -> Result<Option<Dataset>> {
        Ok(self.db().query_row(&format!("{DATASET} WHERE id = ?1"), [id], ds_row).optional()?)
    }

    // ------------------------------------------------------------ conversations

    pub fn create_conversation(&self, workspace: &str, title: &str) -> Result<ConversationRow> {
        let id = random_id(8);
        let db = self.db();
        db.execute(
            "INSERT INTO conversations (id, workspace, title) VALUES (?1, ?2, ?3)",
            params![id, workspace, title],
        )?;
        Ok(db.query_row(&format!("{CONV} WHERE id = ?1"), [&id], conv_row)?)
    }

    pub fn conversations(&self, workspace: &str) -> Result<Vec<ConversationRow>> {
        let db = self.db();
        let mut st = db.prepare(&format!("{CONV} WHERE workspace = ?1 ORDER BY created_at DESC, id"))?;
        let rows = st.query_map([workspace], conv_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn conversation(&self, id: &str) -> Result<Option<ConversationRow>> {
        Ok(self.db().query_row(&format!("{CONV} WHERE id = ?1"), [id], conv_row).optional()?)
    }

    pub fn set_title(&self, id: &str, title: &str) -> Result<()> {
        self.db().execute("UPDATE conversations SET title = ?2 WHERE id = ?1", params![id, title])?;
        Ok(())
    }

    /// The analyst's state after a question (its turns, its kernel id).
    pub fn save_state(&self, id: &str, state: &Value) -> Result<()> {
        self.db().execute("UPDATE conversations SET state = ?2 WHERE id = ?1", params![id, state.to_string()])?;
        Ok(())
    }

    /// Append one event (written now, durable once this returns); its `seq`.
    pub fn append_event(&self, conversation: &str, question: i64, event: &Event) -> Result<i64> {
        let kind = event.kind();
        let body =
            serde_json::to_string(event).map_err(|e| StoreError(format!("an event could not be written: {e}")))?;
        let db = self.db();
        let seq: i64 = db.query_row(
            "SELECT coalesce(max(seq), 0) + 1 FROM events WHERE conversation = ?1",
            [conversation],
            |r| r.get(0),
        )?;
        db.execute(
            "INSERT INTO events (conversation, seq, question, kind, body) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![conversation, seq, question, kind, body],
        )?;
        Ok(seq)
    }

    /// Events after `after`, in order. A row this version cannot read as an
    /// [`Event`] (written by a newer Quarry) is left out, not an error.
    pub fn events(&self, conversation: &str, after: i64) -> Result<Vec<StoredEvent>> {
        let db = self.db();
        let mut st =
            db.prepare("SELECT seq, question, body FROM events WHERE conversation = ?1 AND seq > ?2 ORDER BY seq")?;
        let rows = st.query_map(params![conversation, after], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, question, body) = row?;
            if let Ok(event) = serde_json::from_str(&body) {
                out.push(StoredEvent { seq, question, event });
            }
        }
        Ok(out)
    }

    /// The number the next question of a conversation gets.
    pub fn next_question(&self, conversation: &str) -> Result<i64> {
        Ok(self.db().query_row(
            "SELECT coalesce(max(question), 0) + 1 FROM events WHERE conversation = ?1",
            [conversation],
            |r| r.get(0),
        )?)
    }

    /// Questions whose run ended without a `done` event (the server stopped
    /// mid-run): each gets an interrupted [`Event::Done`] so the page shows
    /// what happened.
    pub fn close_interrupted(&self) -> Result<usize> {
        let done = Event::Done { ok: false, input_tokens: 0, output_tokens: 0, elapsed_ms: 0, interrupted: true };
        let open: Vec<(String, i64)> = {
            let db = self.db();
            let mut st = db.prepare(
                "SELECT conversation, question FROM events GROUP BY conversation, question \
                 HAVING sum(kind = 'done') = 0",
            )?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        for (c, q) in &open {
            self.append_event(c, *q, &done)?;
        }
        Ok(open.len())
    }
}

/// One of a user's tokens as listed to them: an id to revoke it by, never
/// the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    pub id: String,
    pub label: String,
    /// `session` (a login; expires) or `api` (issued for scripts; lasts until revoked).
    pub kind: String,
    pub created_at: String,
    pub last_used_unix: Option<i64>,
    pub expires_unix: Option<i64>,
}

pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// A valid argon2 hash of a random password, computed once: unknown users
/// are checked against it so they cost what known ones do.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        Argon2::default()
            .hash_password(random_id(16).as_bytes(), &SaltString::generate(&mut OsRng))
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

/// Tokens gained a kind, use and expiry times; stores made before get the
/// columns (their login tokens become sessions that expire like new ones).
fn migrate_tokens(conn: &Connection) -> Result<()> {
    let has_kind: bool = conn.prepare("SELECT 1 FROM pragma_table_info('tokens') WHERE name = 'kind'")?.exists([])?;
    if !has_kind {
        conn.execute_batch(
            "ALTER TABLE tokens ADD COLUMN kind TEXT NOT NULL DEFAULT 'api';
             ALTER TABLE tokens ADD COLUMN created_unix INTEGER;
             ALTER TABLE tokens ADD COLUMN last_used_unix INTEGER;
             ALTER TABLE tokens ADD COLUMN expires_unix INTEGER;
             UPDATE tokens SET kind = 'session', expires_unix = CAST(strftime('%s','now') AS INTEGER) + 604800
               WHERE label = 'login';",
        )?;
    }
    Ok(())
}

const DATASET: &str = "SELECT id, workspace, file_name, size, tables, created_at FROM datasets";
const CONV: &str = "SELECT id, workspace, title, created_at, state FROM conversations";

pub(crate) fn ws_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Workspace> {
    Ok(Workspace { id: r.get(0)?, owner: r.get(1)?, name: r.get(2)?, created_at: r.get(3)? })
}

fn ds_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Dataset> {
    let tables: String = r.get(4)?;
    Ok(Dataset {
        id: r.get(0)?,
        workspace: r.get(1)?,
        file_name: r.get(2)?,
        size: r.get::<_, i64>(3)? as u64,
        tables: serde_json::from_str(&tables).unwrap_or_default(),
        created_at: r.get(5)?,
    })
}

fn conv_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ConversationRow> {
    let state: String = r.get(4)?;
    Ok(ConversationRow {
        id: r.get(0)?,
        workspace: r.get(1)?,
        title: r.get(2)?,
        created_at: r.get(3)?,
        state: serde_json::from_str(&state).unwrap_or(Value::Null),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use quarry_types::Privacy;

    #[test]
    fn users_tokens_and_passwords() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("q.sqlite")).unwrap();
        let ada = s.create_user("ada", Some("correct horse"), false).unwrap();
        assert!(s.create_user("ada", Some("another pass"), false).is_err());
        assert!(s.create_user("bob", Some("short"), false).is_err());
        assert_eq!(s.check_password("ada", "correct horse").unwrap(), Some(ada.clone()));
        assert_eq!(s.check_password("ada", "wrong horse").unwrap(), None);
        assert_eq!(s.check_password("nobody", "correct horse").unwrap(), None);
        let t = s.issue_token(ada.id, "login").unwrap();
        let idle = std::time::Duration::from_secs(3600);
        assert_eq!(s.user_for_token(&t, idle).unwrap(), Some(ada.clone()));
        s.revoke_token(&t).unwrap();
        assert_eq!(s.user_for_token(&t, idle).unwrap(), None);
        // Sessions end: past their lifetime, or idle too long; they are listed and revocable by id.
        let gone = s.issue_session(ada.id, std::time::Duration::ZERO).unwrap();
        assert_eq!(s.user_for_token(&gone, idle).unwrap(), None);
        let live = s.issue_session(ada.id, std::time::Duration::from_secs(3600)).unwrap();
        assert_eq!(s.user_for_token(&live, idle).unwrap(), Some(ada.clone()));
        let listed = s.tokens(ada.id).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].kind, "session");
        assert!(!s.revoke_token_id(ada.id + 1, &listed[0].id).unwrap(), "not another user's");
        assert!(s.revoke_token_id(ada.id, &listed[0].id).unwrap());
        assert_eq!(s.user_for_token(&live, idle).unwrap(), None);
        // Only hashes are stored.
        let raw = std::fs::read(dir.path().join("q.sqlite")).unwrap_or_default();
        assert!(!String::from_utf8_lossy(&raw).contains("correct horse"));
    }

    #[test]
    fn events_are_appended_in_order_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.sqlite");
        let conv_id = {
            let s = Store::open(&path).unwrap();
            let u = s.local_user().unwrap();
            let ws = s.create_workspace(u.id, "demo").unwrap();
            let c = s.create_conversation(&ws.id, "TPR").unwrap();
            assert_eq!(s.next_question(&c.id).unwrap(), 1);
            let started = Event::Started { question: "TPR?".into(), privacy: Privacy::Strict, model: "m".into() };
            s.append_event(&c.id, 1, &started).unwrap();
            s.append_event(&c.id, 1, &Event::Cancelled).unwrap();
            c.id
        };
        let s = Store::open(&path).unwrap();
        let ev = s.events(&conv_id, 0).unwrap();
        assert_eq!(ev.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(s.events(&conv_id, 1).unwrap().len(), 1);
        assert_eq!(s.next_question(&conv_id).unwrap(), 2);
        // A question cut off by a restart gets a closing event.
        assert_eq!(s.close_interrupted().unwrap(), 1);
        assert_eq!(s.close_interrupted().unwrap(), 0);
        let last = s.events(&conv_id, 0).unwrap().pop().unwrap().event;
        assert!(matches!(last, Event::Done { interrupted: true, ok: false, .. }), "{last:?}");
        assert_eq!(s.local_user().unwrap().name, "local");
    }
}
