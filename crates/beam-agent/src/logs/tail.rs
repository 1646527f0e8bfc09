//! `--tail-file`: follows a log file like `tail -F`, from its end at start,
//! across rotation (the path now names a new file: the old one is read to its
//! end first) and truncation (`copytruncate`: reading restarts at 0).

use std::io::SeekFrom;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use beam_proto::logs::Source;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::sync::CancellationToken;

use super::LogBuffer;
use super::capture::emit;
use super::lines::LineSplitter;

#[cfg(unix)]
fn identity(m: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino())
}

#[cfg(not(unix))]
fn identity(_: &std::fs::Metadata) -> (u64, u64) {
    (0, 0)
}

struct Open {
    file: tokio::fs::File,
    id: (u64, u64),
    offset: u64,
}

/// Follows `path` into `buffer` until `stop`, checking every `poll`. A missing
/// file is waited for; errors never end the agent.
pub async fn follow(
    path: PathBuf,
    buffer: Arc<LogBuffer>,
    poll: Duration,
    stop: CancellationToken,
) {
    let mut split = LineSplitter::default();
    let mut open: Option<Open> = None;
    let mut first = true;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        // Drain what the open file has now.
        if let Some(o) = open.as_mut() {
            loop {
                match o.file.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        o.offset += n as u64;
                        split.feed(&chunk[..n], |l| emit(&buffer, l, Source::File));
                    }
                }
            }
        }
        // Then see whether the path still names the same file.
        match tokio::fs::metadata(&path).await {
            Ok(meta) => {
                let id = identity(&meta);
                match open.as_mut() {
                    Some(o) if o.id == id => {
                        if meta.len() < o.offset {
                            // Truncated in place: start over.
                            split.finish(|l| emit(&buffer, l, Source::File));
                            if o.file.seek(SeekFrom::Start(0)).await.is_ok() {
                                o.offset = 0;
                            }
                        }
                    }
                    _ => {
                        // New file (first open or rotated): the old one was read
                        // to its end above.
                        split.finish(|l| emit(&buffer, l, Source::File));
                        if let Ok(mut file) = tokio::fs::File::open(&path).await {
                            // At start, like `tail -F`, only new lines; a file
                            // that appears later is read from its beginning.
                            let offset = if first {
                                file.seek(SeekFrom::End(0)).await.unwrap_or(0)
                            } else {
                                0
                            };
                            open = Some(Open { file, id, offset });
                        }
                        // A file present at start that could not be opened yet
                        // is still "old": keep skipping its history.
                        first = first && open.is_none();
                    }
                }
            }
            Err(_) => {
                // Missing (not yet created, or rotated away and not yet
                // recreated): keep reading the old one; a file created later is
                // new, so it is read from its start.
                first = false;
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(poll) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::lines::MAX_LINE;
    use crate::logs::{Limits, Masker};
    use beam_proto::logs::{LogLine, LogQuery};
    use std::io::Write;

    #[test]
    fn splitter_cuts_lines_and_long_ones() {
        let mut s = LineSplitter::default();
        let mut out: Vec<Vec<u8>> = Vec::new();
        s.feed(b"a\nbc", |l| out.push(l.to_vec()));
        s.feed(b"d\n", |l| out.push(l.to_vec()));
        assert_eq!(out, [b"a\n".to_vec(), b"bcd\n".to_vec()]);
        out.clear();
        let long = vec![b'x'; MAX_LINE + 10];
        s.feed(&long, |l| out.push(l.to_vec()));
        s.finish(|l| out.push(l.to_vec()));
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].len(), MAX_LINE);
        assert_eq!(out[1].len(), 10);
    }

    async fn messages(b: &Arc<LogBuffer>, n: usize) -> Vec<String> {
        let q = LogQuery {
            tail: 1000,
            follow: false,
            ..LogQuery::default()
        };
        let mut r = b.reader(&q).unwrap();
        let mut out = Vec::new();
        while let Some(line) = tokio::time::timeout(Duration::from_secs(5), r.next())
            .await
            .ok()
            .flatten()
        {
            if let LogLine::Entry(e) = line {
                out.push(e.message.clone());
            }
            if out.len() == n {
                break;
            }
        }
        out
    }

    async fn wait_for(b: &Arc<LogBuffer>, n: usize) -> Vec<String> {
        for _ in 0..200 {
            let m = messages(b, n).await;
            if m.len() >= n {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        messages(b, n).await
    }

    #[tokio::test]
    async fn follows_appends_rotation_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        std::fs::write(&path, "old line before start\n").unwrap();
        let b = Arc::new(LogBuffer::new(Limits::default(), Masker::new(false), None));
        let stop = CancellationToken::new();
        let task = tokio::spawn(follow(
            path.clone(),
            b.clone(),
            Duration::from_millis(10),
            stop.clone(),
        ));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let append = |text: &str| {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&path)
                .unwrap();
            f.write_all(text.as_bytes()).unwrap();
        };
        append("INFO one\n");
        assert_eq!(wait_for(&b, 1).await, ["INFO one"]);
        // Rotation: the writer still appends to the renamed file, then a new
        // file appears at the path.
        let rotated = dir.path().join("app.log.1");
        std::fs::rename(&path, &rotated).unwrap();
        let mut old = std::fs::OpenOptions::new()
            .append(true)
            .open(&rotated)
            .unwrap();
        old.write_all(b"INFO two (late write to the old file)\n")
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        append("INFO three\n");
        assert_eq!(
            wait_for(&b, 3).await,
            [
                "INFO one",
                "INFO two (late write to the old file)",
                "INFO three"
            ]
        );
        // copytruncate: the file shrinks to zero and is written again.
        std::fs::write(&path, "").unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        append("INFO four\n");
        assert_eq!(wait_for(&b, 4).await.last().unwrap(), "INFO four");
        stop.cancel();
        task.await.unwrap();
    }
}
