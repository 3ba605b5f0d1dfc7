//! Who may do what in a workspace: its owner (the `workspaces.owner`
//! column), and the members the owner added as editors or viewers. Plus the
//! workspace's one setting about members: whether viewers may use the SQL
//! console.

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::{ws_row, Result, Store, StoreError, Workspace};

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS members (
  workspace TEXT NOT NULL REFERENCES workspaces(id), user_id INTEGER NOT NULL REFERENCES users(id),
  role TEXT NOT NULL, added_at TEXT NOT NULL DEFAULT (datetime('now')), PRIMARY KEY (workspace, user_id));
CREATE INDEX IF NOT EXISTS members_by_user ON members (user_id);
CREATE TABLE IF NOT EXISTS workspace_settings (
  workspace TEXT PRIMARY KEY REFERENCES workspaces(id), viewers_sql INTEGER NOT NULL DEFAULT 0);
";

/// A person's role in a workspace, weakest first. Named once: the API, the
/// page and the audit trail use these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads tables, conversations, analyses and reports; asks nothing, uploads nothing.
    Viewer,
    /// Uploads, asks, saves analyses, edits definitions and connections.
    Editor,
    /// All of that, and members, share links, the audit trail and settings.
    Owner,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Editor, Role::Owner];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Owner => "owner",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s.trim().to_ascii_lowercase())
    }

    /// What the role allows, for people.
    pub fn describe(self) -> &'static str {
        match self {
            Role::Viewer => "reads tables, conversations, analyses and reports",
            Role::Editor => "also uploads, asks, saves analyses and edits definitions and databases",
            Role::Owner => "also manages members, share links and settings, and reads the audit trail",
        }
    }
}

/// One member as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub user_id: i64,
    pub name: String,
    pub role: Role,
}

impl Store {
    /// `user`'s role in `ws`, or `None` when they are not in it.
    pub fn role(&self, ws: &Workspace, user: i64) -> Result<Option<Role>> {
        if ws.owner == user {
            return Ok(Some(Role::Owner));
        }
        let role: Option<String> = self
            .db()
            .query_row("SELECT role FROM members WHERE workspace = ?1 AND user_id = ?2", params![ws.id, user], |r| {
                r.get(0)
            })
            .optional()?;
        role.map(|r| Role::parse(&r).ok_or_else(|| StoreError(format!("unknown role '{r}' in workspace {}", ws.id))))
            .transpose()
    }

    /// Every workspace `user` is in, with their role: owned ones first.
    pub fn workspaces_of(&self, user: i64) -> Result<Vec<(Workspace, Role)>> {
        let mut out: Vec<(Workspace, Role)> = self.workspaces(user)?.into_iter().map(|w| (w, Role::Owner)).collect();
        let db = self.db();
        let mut q = db.prepare(
            "SELECT w.id, w.owner, w.name, w.created_at, m.role FROM members m JOIN workspaces w ON w.id = m.workspace
             WHERE m.user_id = ?1 ORDER BY w.created_at, w.id",
        )?;
        let rows = q.query_map([user], |r| Ok((ws_row(r)?, r.get::<_, String>(4)?)))?;
        for row in rows {
            let (w, role) = row?;
            out.extend(Role::parse(&role).map(|role| (w, role)));
        }
        Ok(out)
    }

    /// The owner, then the members by name.
    pub fn members(&self, ws: &Workspace) -> Result<Vec<Member>> {
        let db = self.db();
        let owner: String = db.query_row("SELECT name FROM users WHERE id = ?1", [ws.owner], |r| r.get(0))?;
        let mut out = vec![Member { user_id: ws.owner, name: owner, role: Role::Owner }];
        let mut q = db.prepare(
            "SELECT u.id, u.name, m.role FROM members m JOIN users u ON u.id = m.user_id
             WHERE m.workspace = ?1 ORDER BY u.name",
        )?;
        let rows = q.query_map([&ws.id], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, String>(2)?)))?;
        for row in rows {
            let (user_id, name, role) = row?;
            out.extend(Role::parse(&role).map(|role| Member { user_id, name, role }));
        }
        Ok(out)
    }

    /// Add `user` to `ws` as `role`, or change their role. The owner stays
    /// owner: a workspace has one, and it is not changed here.
    pub fn set_member(&self, ws: &Workspace, user: i64, role: Role) -> Result<()> {
        if user == ws.owner || role == Role::Owner {
            return Err(StoreError("a workspace has one owner, who stays owner: choose editor or viewer".into()));
        }
        self.db().execute(
            "INSERT INTO members (workspace, user_id, role) VALUES (?1, ?2, ?3)
             ON CONFLICT (workspace, user_id) DO UPDATE SET role = excluded.role",
            params![ws.id, user, role.as_str()],
        )?;
        Ok(())
    }

    /// Take `user` out of `ws`; false when they were not a member.
    pub fn remove_member(&self, ws: &Workspace, user: i64) -> Result<bool> {
        let n = self.db().execute("DELETE FROM members WHERE workspace = ?1 AND user_id = ?2", params![ws.id, user])?;
        Ok(n > 0)
    }

    /// Whether viewers of `ws` may use its SQL console (off unless the owner says so).
    pub fn viewers_sql(&self, ws: &str) -> Result<bool> {
        let v: Option<bool> = self
            .db()
            .query_row("SELECT viewers_sql FROM workspace_settings WHERE workspace = ?1", [ws], |r| r.get(0))
            .optional()?;
        Ok(v.unwrap_or(false))
    }

    pub fn set_viewers_sql(&self, ws: &str, allowed: bool) -> Result<()> {
        self.db().execute(
            "INSERT INTO workspace_settings (workspace, viewers_sql) VALUES (?1, ?2)
             ON CONFLICT (workspace) DO UPDATE SET viewers_sql = excluded.viewers_sql",
            params![ws, allowed],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_roles_and_the_one_owner() {
        let dir = tempfile::tempdir().unwrap();
        let st = Store::open(&dir.path().join("q.sqlite")).unwrap();
        let ada = st.create_user("ada", None, false).unwrap();
        let bo = st.create_user("bo", None, false).unwrap();
        let cy = st.create_user("cy", None, false).unwrap();
        let ws = st.create_workspace(ada.id, "malaria").unwrap();
        assert_eq!(st.role(&ws, ada.id).unwrap(), Some(Role::Owner));
        assert_eq!(st.role(&ws, bo.id).unwrap(), None);
        st.set_member(&ws, bo.id, Role::Viewer).unwrap();
        st.set_member(&ws, bo.id, Role::Editor).unwrap();
        assert_eq!(st.role(&ws, bo.id).unwrap(), Some(Role::Editor));
        assert!(st.set_member(&ws, cy.id, Role::Owner).is_err());
        assert!(st.set_member(&ws, ada.id, Role::Viewer).is_err(), "the owner stays owner");
        let names: Vec<(String, Role)> = st.members(&ws).unwrap().into_iter().map(|m| (m.name, m.role)).collect();
        assert_eq!(names, [("ada".to_string(), Role::Owner), ("bo".to_string(), Role::Editor)]);
        let of_bo = st.workspaces_of(bo.id).unwrap();
        assert_eq!(of_bo.len(), 1);
        assert_eq!((of_bo[0].0.id.as_str(), of_bo[0].1), (ws.id.as_str(), Role::Editor));
        assert!(st.remove_member(&ws, bo.id).unwrap());
        assert!(!st.remove_member(&ws, bo.id).unwrap());
        assert_eq!(st.role(&ws, bo.id).unwrap(), None);
        assert!(!st.viewers_sql(&ws.id).unwrap());
        st.set_viewers_sql(&ws.id, true).unwrap();
        assert!(st.viewers_sql(&ws.id).unwrap());
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
        assert!(Role::Viewer < Role::Editor && Role::Editor < Role::Owner);
    }
}
