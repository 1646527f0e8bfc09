//! A sendmail stand-in that keeps what the server mails.

use tempfile::TempDir;

/// A sendmail stand-in: a script that stores each message it gets on stdin as a
/// file, so tests read what the server mailed.
pub struct MailCatcher {
    pub program: std::path::PathBuf,
    dir: TempDir,
}

impl MailCatcher {
    pub fn new() -> Self {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let program = dir.path().join("sendmail");
        // Written under a temporary name and renamed, so readers never see half a message.
        std::fs::write(
            &program,
            "#!/bin/sh\nd=$(dirname \"$0\")\ncat > \"$d/part.$$\" && mv \"$d/part.$$\" \"$d/mail.$$\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        Self { program, dir }
    }

    /// Every message received so far.
    pub fn messages(&self) -> Vec<String> {
        std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("mail."))
            .map(|e| std::fs::read_to_string(e.path()).unwrap())
            .collect()
    }

    /// The one message with `subject`, once it is there.
    pub fn read_subject(&self, subject: &str) -> Option<String> {
        self.read_to("", subject)
    }

    /// The one message to `to` (any recipient when empty) with `subject`.
    pub fn read_to(&self, to: &str, subject: &str) -> Option<String> {
        let mut all: Vec<String> = self
            .messages()
            .into_iter()
            .filter(|m| m.contains(&format!("Subject: {subject}\r\n")))
            .filter(|m| to.is_empty() || m.contains(&format!("To: {to}\r\n")))
            .collect();
        assert!(all.len() <= 1, "more than one '{subject}' message: {all:?}");
        all.pop()
    }
}
