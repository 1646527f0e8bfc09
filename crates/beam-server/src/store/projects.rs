//! Parity projects and their environments (`shop/production`). An environment
//! is what a production agent publishes for and what developers read from.

use serde::Serialize;
// Dynamic SQL here is built only from a constant column list; every value is
// bound, so `AssertSqlSafe` holds.
use sqlx::{AssertSqlSafe, Row};

use super::{Pool, Store, StoreError, on_pool};

/// An environment of a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EnvironmentRow {
    /// Environment id.
    pub id: i64,
    /// Project id.
    pub project_id: i64,
    /// Project name.
    pub project: String,
    /// Environment name.
    pub name: String,
    /// Unix ms.
    pub created_at: i64,
}

const SELECT: &str = "SELECT e.id, e.project_id, p.name AS project, e.name, e.created_at \
                      FROM environments e JOIN projects p ON p.id = e.project_id";

macro_rules! env_of {
    ($r:expr) => {{
        let r = $r;
        EnvironmentRow {
            id: r.try_get("id")?,
            project_id: r.try_get("project_id")?,
            project: r.try_get("project")?,
            name: r.try_get("name")?,
            created_at: r.try_get("created_at")?,
        }
    }};
}

impl Store {
    /// Creates project and environment when missing; returns the environment.
    /// Concurrent calls agree: both are one upsert followed by a read.
    pub async fn ensure_environment(
        &self,
        org_id: i64,
        project: &str,
        env: &str,
        now: i64,
    ) -> Result<EnvironmentRow, StoreError> {
        on_pool!(self, p => {
            sqlx::query(
                "INSERT INTO projects (org_id, name, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (org_id, name) DO NOTHING")
                .bind(org_id).bind(project).bind(now).execute(p).await?;
            let project_id: i64 = sqlx::query("SELECT id FROM projects WHERE org_id = $1 AND name = $2")
                .bind(org_id).bind(project).fetch_one(p).await?.try_get("id")?;
            sqlx::query(
                "INSERT INTO environments (project_id, name, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (project_id, name) DO NOTHING")
                .bind(project_id).bind(env).bind(now).execute(p).await?;
        });
        self.environment(org_id, project, env)
            .await?
            .ok_or_else(|| StoreError::Corrupt("environment vanished right after creation".into()))
    }

    /// Environment `project/env` of organization `org_id`.
    pub async fn environment(
        &self,
        org_id: i64,
        project: &str,
        env: &str,
    ) -> Result<Option<EnvironmentRow>, StoreError> {
        let sql = format!("{SELECT} WHERE p.org_id = $1 AND p.name = $2 AND e.name = $3");
        let row = on_pool!(self, p => {
            match sqlx::query(AssertSqlSafe(sql.as_str()))
                .bind(org_id).bind(project).bind(env).fetch_optional(p).await? {
                Some(r) => Some(env_of!(r)),
                None => None,
            }
        });
        Ok(row)
    }

    /// Every environment of an organization, by project and name.
    pub async fn environments(&self, org_id: i64) -> Result<Vec<EnvironmentRow>, StoreError> {
        let sql = format!("{SELECT} WHERE p.org_id = $1 ORDER BY p.name, e.name");
        let rows = on_pool!(self, p => {
            let mut out = Vec::new();
            for r in sqlx::query(AssertSqlSafe(sql.as_str())).bind(org_id).fetch_all(p).await? {
                out.push(env_of!(r));
            }
            out
        });
        Ok(rows)
    }
}
