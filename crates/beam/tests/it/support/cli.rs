//! Running the real `beam` binary from tests, with a private HOME and no colour.

use std::process::{Child, Command};

pub const BEAM: &str = env!("CARGO_BIN_EXE_beam");

pub struct Kill(pub Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `c` to completion without stalling the test's runtime: exit code,
/// stdout, stderr.
pub fn output(mut c: Command) -> (i32, String, String) {
    tokio::task::block_in_place(move || {
        let o = c.output().unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    })
}

pub fn beam(home: &std::path::Path) -> Command {
    let mut c = Command::new(BEAM);
    c.env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("NO_COLOR", "1");
    c
}

/// The first line a child writes on stdout (e.g. `beam http --json`'s
/// connected event), without stalling the test's runtime.
pub async fn first_line(child: &mut std::process::Child) -> String {
    let mut lines = stdout_lines(child);
    super::within("the child's first line", lines.recv())
        .await
        .unwrap_or_default()
}

/// The child's stdout, line by line, read on a thread.
pub fn stdout_lines(
    child: &mut std::process::Child,
) -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let stdout = child.stdout.take().expect("stdout piped");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}
