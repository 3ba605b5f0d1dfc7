//! Share links: read-only access to one object of a workspace for whoever
//! holds the link's token — one conversation, one answer, or one saved
//! analysis's latest result. The token is shown once, when the link is made;
//! only its hash is stored. A link may expire and may be revoked; either way
//! it then opens nothing.

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::{random_id, token_hash, unix_now, Result, Store, StoreError, User};

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS shares (
  id TEXT PRIMARY KEY, token_hash TEXT NOT NULL UNIQUE, workspace TEXT NOT NULL REFERENCES workspaces(id),
  kind TEXT NOT NULL, target TEXT NOT NULL, question INTEGER, show_code INTEGER NOT NULL,
  created_by TEXT NOT NULL, created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')),
  expires_unix INTEGER, revoked INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS shares_by_workspace ON shares (workspace);
";

/// What a link shows. Named once: the API and the page use these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShareKind {
    /// Every answer of one conversation.
    Conversation,
    /// One question's answer.
    Answer,
    /// A saved analysis's latest result.
    Analysis,
}

impl ShareKind {
    pub const ALL: [ShareKind; 3] = [ShareKind::Conversation, ShareKind::Answer, ShareKind::Analysis];

    pub fn as_str(self) -> &'static str {
        match self {
            ShareKind::Conversation => "conversation",
            ShareKind::Answer => "answer",
            ShareKind::Analysis => "analysis",
        }
    }

    pub fn parse(s: &str) -> Option<ShareKind> {
        ShareKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A link as stored (never its token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    pub id: String,
    pub workspace: String,
    pub kind: ShareKind,
    /// The conversation's id, or the analysis's name.
    pub target: String,
    /// The question, for an answer.
    pub question: Option<i64>,
    /// Whether the link shows the code behind the answers.
    pub show_code: bool,
    pub created_by: String,
    pub created_at: String,
    pub expires_unix: Option<i64>,
    pub revoked: bool,
}

impl Share {
    /// True while the link opens its object: not revoked, not expired.
    pub fn is_open(&self) -> bool {
        !self.revoked && self.expires_unix.is_none_or(|e| unix_now() < e)
    }
}

/// What a new link is to show.
pub struct NewShare<'a> {
    pub kind: ShareKind,
    pub target: &'a str,
    pub question: Option<i64>,
    pub show_code: bool,
    /// How long it opens; `None`: until revoked.
    pub expires_in: Option<std::time::Duration>,
}

const SHARE: &str = "SELECT id, workspace, kind, target, question, show_code, created_by, created_at, \
    expires_unix, revoked FROM shares";

fn share_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Share, String)> {
    let kind: String = r.get(2)?;
    let share = Share {
        id: r.get(0)?,
        workspace: r.get(1)?,
        kind: ShareKind::Conversation,
        target: r.get(3)?,
        question: r.get(4)?,
        show_code: r.get(5)?,
        created_by: r.get(6)?,
        created_at: r.get(7)?,
        expires_unix: r.get(8)?,
        revoked: r.get(9)?,
    };
    Ok((share, kind))
}

fn with_kind((mut s, kind): (Share, String)) -> Result<Share> {
    s.kind = ShareKind::parse(&kind).ok_or_else(|| StoreError(format!("share {}: unknown kind '{kind}'", s.id)))?;
    Ok(s)
}

impl Store {
    /// Make a link to `new` in `workspace`; returns it and its token (shown once).
    pub fn create_share(&self, workspace: &str, by: &User, new: &NewShare<'_>) -> Result<(Share, String)> {
        let id = random_id(8);
        let token = format!("ql_{}", random_id(24));
        let expires = new.expires_in.map(|d| unix_now().saturating_add(d.as_secs().min(i64::MAX as u64) as i64));
        self.db().execute(
            "INSERT INTO shares (id, token_hash, workspace, kind, target, question, show_code, created_by, expires_unix)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                id,
                token_hash(&token),
                workspace,
                new.kind.as_str(),
                new.target,
                new.question,
                new.show_code,
                by.name,
                expires
            ],
        )?;
        let share = self.share(workspace, &id)?.ok_or_else(|| StoreError("the new link was not stored".into()))?;
        Ok((share, token))
    }

    /// One link of `workspace` by id.
    pub fn share(&self, workspace: &str, id: &str) -> Result<Option<Share>> {
        let db = self.db();
        let row = db
            .query_row(&format!("{SHARE} WHERE workspace = ?1 AND id = ?2"), [workspace, id], share_row)
            .optional()?;
        row.map(with_kind).transpose()
    }

    /// The workspace's links, newest first, revoked and expired ones too.
    pub fn shares(&self, workspace: &str) -> Result<Vec<Share>> {
        let db = self.db();
        let mut q = db.prepare(&format!("{SHARE} WHERE workspace = ?1 ORDER BY created_at DESC, id"))?;
        let rows = q.query_map([workspace], share_row)?;
        rows.map(|r| with_kind(r?)).collect()
    }

    /// Revoke a link of `workspace`; false when there is no such link.
    pub fn revoke_share(&self, workspace: &str, id: &str) -> Result<bool> {
        let n = self
            .db()
            .execute("UPDATE shares SET revoked = 1 WHERE workspace = ?1 AND id = ?2", params![workspace, id])?;
        Ok(n > 0)
    }

    /// The link a token opens, while it is open.
    pub fn share_for_token(&self, token: &str) -> Result<Option<Share>> {
        let db = self.db();
        let row = db.query_row(&format!("{SHARE} WHERE token_hash = ?1"), [token_hash(token)], share_row).optional()?;
        Ok(row.map(with_kind).transpose()?.filter(Share::is_open))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_open_until_revoked_or_expired_and_keep_no_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.sqlite");
        let st = Store::open(&path).unwrap();
        let ada = st.create_user("ada", None, false).unwrap();
        let ws = st.create_workspace(ada.id, "w").unwrap();
        let new = |expires_in| NewShare {
            kind: ShareKind::Answer,
            target: "c1",
            question: Some(2),
            show_code: false,
            expires_in,
        };
        let (s, token) = st.create_share(&ws.id, &ada, &new(None)).unwrap();
        assert!(token.starts_with("ql_") && token.len() > 40);
        let open = st.share_for_token(&token).unwrap().unwrap();
        assert_eq!(
            (open.kind, open.target.as_str(), open.question, open.show_code),
            (ShareKind::Answer, "c1", Some(2), false)
        );
        assert_eq!(st.share_for_token("ql_guess").unwrap(), None);
        assert!(!st.revoke_share("other", &s.id).unwrap(), "only the link's own workspace revokes it");
        assert!(st.revoke_share(&ws.id, &s.id).unwrap());
        assert_eq!(st.share_for_token(&token).unwrap(), None);
        let (_, gone) = st.create_share(&ws.id, &ada, &new(Some(std::time::Duration::ZERO))).unwrap();
        assert_eq!(st.share_for_token(&gone).unwrap(), None, "expired");
        let listed = st.shares(&ws.id).unwrap();
        assert_eq!(listed.len(), 2);
        assert!(listed.iter().all(|s| !s.is_open()));
        drop(st);
        let raw = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).to_string()
            + &String::from_utf8_lossy(&std::fs::read(dir.path().join("q.sqlite-wal")).unwrap_or_default());
        assert!(!raw.contains(&token[3..]), "only the token's hash is stored");
    }
}
