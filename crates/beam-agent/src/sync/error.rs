//! Why a sync failed, in words a developer can act on.

/// Why a sync was refused. Messages name tables and columns, never values.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The request is not acceptable (policy, unknown column, …).
    #[error("{0}")]
    Refused(String),
    /// The database failed.
    #[error("database: {0}")]
    Db(String),
    /// A statement ran past the agent's statement timeout.
    #[error(
        "the production database took longer than the agent's statement timeout; narrow the sync with --where or --limit"
    )]
    TimedOut,
}
