//! `beam agent -- CMD ARGS…`: runs the app as a child, reads its stdout and
//! stderr line by line into the log buffer *and* passes every byte through to
//! the agent's own stdout and stderr (the platform's log collection keeps
//! working), forwards the usual signals, and ends with the child's exit code
//! (128 + signal number when a signal ended it, as shells report).

use std::ffi::OsString;
use std::process::Stdio;
use std::sync::Arc;

use beam_proto::logs::Source;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::process::Command;

use super::buffer::LogBuffer;
use super::parse::parse_line;

/// Signals passed on to the child.
#[cfg(unix)]
const FORWARDED: &[nix::sys::signal::Signal] = {
    use nix::sys::signal::Signal::*;
    &[SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2]
};

/// Runs `program args…` until it exits; returns the exit code to exit with.
pub async fn run_child(
    program: OsString,
    args: Vec<OsString>,
    buffer: Arc<LogBuffer>,
) -> std::io::Result<i32> {
    // Handlers go in before the child starts, so a signal that arrives while it
    // boots is forwarded rather than ending the agent.
    #[cfg(unix)]
    let signals = listen_for_signals();
    let mut child = Command::new(&program)
        .args(&args)
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot start {}: {e}", program.to_string_lossy()),
            )
        })?;
    let out = child
        .stdout
        .take()
        .map(|o| tokio::spawn(pump(o, tokio::io::stdout(), buffer.clone(), Source::Stdout)));
    let err = child
        .stderr
        .take()
        .map(|e| tokio::spawn(pump(e, tokio::io::stderr(), buffer.clone(), Source::Stderr)));
    #[cfg(unix)]
    let forwarder = child
        .id()
        .map(|pid| tokio::spawn(forward_signals(pid, signals)));
    let status = child.wait().await?;
    #[cfg(unix)]
    if let Some(f) = forwarder {
        f.abort();
    }
    // The pipes close when the child (and anything it left holding them) exits.
    for t in [out, err].into_iter().flatten() {
        let _ = t.await;
    }
    Ok(exit_code(status))
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    if let Some(code) = status.code() {
        return code;
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return 128 + sig;
        }
    }
    1
}

/// One stream per forwarded signal.
#[cfg(unix)]
type SignalStreams = Vec<(nix::sys::signal::Signal, tokio::signal::unix::Signal)>;

#[cfg(unix)]
fn listen_for_signals() -> SignalStreams {
    use tokio::signal::unix::{SignalKind, signal};
    FORWARDED
        .iter()
        .filter_map(|sig| Some((*sig, signal(SignalKind::from_raw(*sig as i32)).ok()?)))
        .collect()
}

#[cfg(unix)]
async fn forward_signals(pid: u32, streams: SignalStreams) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut tasks = Vec::new();
    for (sig, mut stream) in streams {
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            while stream.recv().await.is_some() {
                if tx.send(sig).is_err() {
                    return;
                }
            }
        }));
    }
    drop(tx);
    let pid = nix::unistd::Pid::from_raw(pid as i32);
    // Dropping this future (the child exited) stops the listeners too.
    struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.iter().for_each(|t| t.abort());
        }
    }
    let _listeners = AbortOnDrop(tasks);
    while let Some(sig) = rx.recv().await {
        // The child may already be gone; its exit is reported by `wait`.
        let _ = nix::sys::signal::kill(pid, sig);
    }
}

/// Copies `from` to `to` byte for byte and feeds each line to the buffer.
///
/// Output passes through one read chunk at a time (one write and one flush per
/// chunk, not per line): `tokio::io::Stdout` hands every write to a blocking
/// thread, and per-line writes made that hand-off the agent's main cost.
async fn pump<R, W>(from: R, mut to: W, buffer: Arc<LogBuffer>, source: Source)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut reader = BufReader::with_capacity(64 * 1024, from);
    let mut split = super::lines::LineSplitter::default();
    loop {
        let chunk = match reader.fill_buf().await {
            Ok([]) | Err(_) => break,
            Ok(c) => c,
        };
        let n = chunk.len();
        // The app's output first: a full pipe must never wait on parsing.
        let _ = to.write_all(chunk).await;
        let _ = to.flush().await;
        split.feed(chunk, |line| emit(&buffer, line, source));
        reader.consume(n);
    }
    split.finish(|line| emit(&buffer, line, source));
    let _ = to.flush().await;
}

/// Parses one raw line (lossy UTF-8, newline trimmed) into the buffer; blank lines are skipped.
pub(crate) fn emit(buffer: &LogBuffer, line: &[u8], source: Source) {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches(['\n', '\r']);
    if !text.is_empty() {
        buffer.push(parse_line(text), source);
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::logs::buffer::Limits;
    use crate::logs::mask::Masker;
    use beam_proto::logs::{Level, LogLine, LogQuery};

    fn buffer() -> Arc<LogBuffer> {
        Arc::new(LogBuffer::new(Limits::default(), Masker::new(false), None))
    }

    fn sh(script: &str) -> (OsString, Vec<OsString>) {
        ("sh".into(), vec!["-c".into(), script.into()])
    }

    #[tokio::test]
    async fn lines_from_both_streams_are_captured_and_the_exit_code_passes_through() {
        let b = buffer();
        let (p, a) = sh(
            r#"echo '{"level":50,"msg":"boom"}'; echo 'WARN disk' >&2; printf 'no newline'; exit 7"#,
        );
        assert_eq!(run_child(p, a, b.clone()).await.unwrap(), 7);
        let mut r = b
            .reader(&LogQuery {
                follow: false,
                ..LogQuery::default()
            })
            .unwrap();
        let mut got = Vec::new();
        while let Some(LogLine::Entry(e)) = r.next().await {
            got.push((e.level, e.message, e.source));
        }
        got.sort_by(|a, b| a.1.cmp(&b.1));
        assert_eq!(
            got,
            [
                (Level::Warn, "WARN disk".to_string(), Source::Stderr),
                (Level::Error, "boom".to_string(), Source::Stdout),
                (Level::Info, "no newline".to_string(), Source::Stdout),
            ]
        );
    }

    #[tokio::test]
    async fn signals_reach_the_child_and_its_death_by_signal_is_reported() {
        let b = buffer();
        // The child reports SIGTERM and exits 42; then a child killed by SIGKILL → 137.
        let (p, a) =
            sh("trap 'echo got term; exit 42' TERM; echo ready; while :; do sleep 0.05; done");
        let task = tokio::spawn(run_child(p, a, b.clone()));
        let mut r = b
            .reader(&LogQuery {
                tail: 10,
                ..LogQuery::default()
            })
            .unwrap();
        assert!(matches!(r.next().await, Some(LogLine::Entry(e)) if e.message == "ready"));
        nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGTERM)
            .unwrap();
        assert_eq!(task.await.unwrap().unwrap(), 42);
        assert!(matches!(r.next().await, Some(LogLine::Entry(e)) if e.message == "got term"));

        let (p, a) = sh("kill -KILL $$");
        assert_eq!(run_child(p, a, buffer()).await.unwrap(), 137);
        let e = run_child("/nonexistent/app".into(), vec![], buffer())
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("cannot start /nonexistent/app"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_huge_line_without_newline_is_split() {
        let b = buffer();
        let (p, a) = sh("head -c 200000 /dev/zero | tr '\\0' x");
        assert_eq!(run_child(p, a, b.clone()).await.unwrap(), 0);
        assert_eq!(b.len(), 4, "200,000 bytes in 64 KiB pieces");
    }
}
