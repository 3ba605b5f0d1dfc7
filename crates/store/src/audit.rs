//! The audit trail: who did what in a workspace, and when — appended by the
//! server as each thing happens. Append-only by construction: the database
//! itself refuses to change or delete an entry (triggers), and nothing in
//! the API writes anything but a new one.

use rusqlite::params;
use serde::{Deserialize, Serialize};

use crate::{Result, Store, StoreError, User};

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, workspace TEXT NOT NULL, user_id INTEGER NOT NULL,
  user_name TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL,
  at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')));
CREATE INDEX IF NOT EXISTS audit_by_workspace ON audit (workspace, seq);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
  BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
  BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
";

/// What was done. Named once: the API, the CSV export and the page use these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    /// A file uploaded (its tables loaded).
    Upload,
    /// A question asked of the analyst.
    Ask,
    /// SQL run in the console.
    Sql,
    /// A saved analysis created.
    SaveAnalysis,
    /// A saved analysis run by hand.
    RunAnalysis,
    /// A saved analysis removed.
    RemoveAnalysis,
    /// Answers exported (CSV, XLSX, report, PDF, notebook, JSON).
    Export,
    /// A definition added or changed.
    Define,
    /// A definition removed.
    Undefine,
    /// A database connected.
    Connect,
    /// A database connection removed.
    Disconnect,
    /// A live table copied into the catalog.
    Snapshot,
    /// A member added, or their role changed (target: `name: role`).
    Member,
    /// A member taken out of the workspace.
    RemoveMember,
    /// A share link made (target: what it shows).
    Share,
    /// A share link revoked.
    Unshare,
    /// A workspace setting changed.
    Settings,
}

impl AuditAction {
    pub const ALL: [AuditAction; 17] = [
        AuditAction::Upload,
        AuditAction::Ask,
        AuditAction::Sql,
        AuditAction::SaveAnalysis,
        AuditAction::RunAnalysis,
        AuditAction::RemoveAnalysis,
        AuditAction::Export,
        AuditAction::Define,
        AuditAction::Undefine,
        AuditAction::Connect,
        AuditAction::Disconnect,
        AuditAction::Snapshot,
        AuditAction::Member,
        AuditAction::RemoveMember,
        AuditAction::Share,
        AuditAction::Unshare,
        AuditAction::Settings,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Upload => "upload",
            AuditAction::Ask => "ask",
            AuditAction::Sql => "sql",
            AuditAction::SaveAnalysis => "save_analysis",
            AuditAction::RunAnalysis => "run_analysis",
            AuditAction::RemoveAnalysis => "remove_analysis",
            AuditAction::Export => "export",
            AuditAction::Define => "define",
            AuditAction::Undefine => "undefine",
            AuditAction::Connect => "connect",
            AuditAction::Disconnect => "disconnect",
            AuditAction::Snapshot => "snapshot",
            AuditAction::Member => "member",
            AuditAction::RemoveMember => "remove_member",
            AuditAction::Share => "share",
            AuditAction::Unshare => "unshare",
            AuditAction::Settings => "settings",
        }
    }

    fn parse(s: &str) -> Option<AuditAction> {
        AuditAction::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// One entry: `seq` orders a store's entries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: String,
    pub user: String,
    pub action: AuditAction,
    /// What it was done to: a file, a question, a table, a connection's
    /// name, a format — never a password or a cell value.
    pub target: String,
}

impl Store {
    /// Append that `user` did `action` to `target` in `workspace`, now.
    pub fn audit(&self, workspace: &str, user: &User, action: AuditAction, target: &str) -> Result<()> {
        self.db().execute(
            "INSERT INTO audit (workspace, user_id, user_name, action, target) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![workspace, user.id, user.name, action.as_str(), target],
        )?;
        Ok(())
    }

    /// The workspace's trail, oldest first.
    pub fn audit_log(&self, workspace: &str) -> Result<Vec<AuditEntry>> {
        let db = self.db();
        let mut q =
            db.prepare("SELECT seq, at, user_name, action, target FROM audit WHERE workspace = ?1 ORDER BY seq")?;
        let rows = q.query_map([workspace], |r| {
            Ok((r.get::<_, i64>(0)?, r.get(1)?, r.get(2)?, r.get::<_, String>(3)?, r.get(4)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, at, user, action, target) = row?;
            let action = AuditAction::parse(&action)
                .ok_or_else(|| StoreError(format!("audit entry {seq}: unknown action '{action}'")))?;
            out.push(AuditEntry { seq, at, user, action, target });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trail_is_kept_in_order_and_cannot_be_changed() {
        let dir = tempfile::tempdir().unwrap();
        let st = Store::open(&dir.path().join("q.sqlite")).unwrap();
        let u = st.create_user("ada", None, false).unwrap();
        st.audit("w1", &u, AuditAction::Upload, "report.xlsx").unwrap();
        st.audit("w2", &u, AuditAction::Ask, "elsewhere").unwrap();
        st.audit("w1", &u, AuditAction::Export, "pdf").unwrap();
        let log = st.audit_log("w1").unwrap();
        let got: Vec<(AuditAction, &str, &str)> =
            log.iter().map(|e| (e.action, e.user.as_str(), e.target.as_str())).collect();
        assert_eq!(got, [(AuditAction::Upload, "ada", "report.xlsx"), (AuditAction::Export, "ada", "pdf")]);
        let db = st.db();
        for change in ["UPDATE audit SET target = 'x'", "DELETE FROM audit"] {
            let e = db.execute(change, []).unwrap_err().to_string();
            assert!(e.contains("append-only"), "{change}: {e}");
        }
    }

    #[test]
    fn every_action_reads_back_as_itself() {
        for a in AuditAction::ALL {
            assert_eq!(AuditAction::parse(a.as_str()), Some(a));
            assert_eq!(serde_json::to_value(a).unwrap(), a.as_str());
        }
    }
}
