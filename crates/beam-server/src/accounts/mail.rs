//! Outgoing mail through a sendmail-compatible program (`sendmail -t -i`: the
//! message, headers included, on stdin). Used for password resets. The message
//! carries a secret, so it goes to stdin, never to argv or logs.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

/// Why a message was not handed over.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The program could not be started or fed.
    #[error("cannot run the mail program: {0}")]
    Spawn(std::io::Error),
    /// The program failed.
    #[error("the mail program exited with {0}")]
    Failed(std::process::ExitStatus),
    /// The program did not finish in time.
    #[error("the mail program did not finish within 30 s")]
    Timeout,
}

/// A sendmail-compatible transport.
#[derive(Debug, Clone)]
pub struct Mailer {
    /// Path of the program, e.g. `/usr/sbin/sendmail`.
    pub command: PathBuf,
    /// `From:` address.
    pub from: String,
}

impl Mailer {
    /// Sends a plain-text message. `to` must be a validated address (no line
    /// breaks), which the API guarantees before anything is stored.
    pub async fn send(&self, to: &str, subject: &str, body: &str) -> Result<(), MailError> {
        let message = format!(
            "From: {}\r\nTo: {to}\r\nSubject: {subject}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{}",
            self.from,
            body.replace('\n', "\r\n")
        );
        let mut child = tokio::process::Command::new(&self.command)
            .args(["-t", "-i"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(MailError::Spawn)?;
        let run = async {
            if let Some(mut stdin) = child.stdin.take() {
                stdin
                    .write_all(message.as_bytes())
                    .await
                    .map_err(MailError::Spawn)?;
            }
            child.wait().await.map_err(MailError::Spawn)
        };
        match tokio::time::timeout(Duration::from_secs(30), run).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(MailError::Failed(status)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(MailError::Timeout),
        }
    }
}
