//! Dotenv files as frameworks read them, for `beam env check`: the local
//! values a developer's app really sees, and which file each came from.
//!
//! # What is understood
//! - `NAME=value`, `export NAME=value`, `NAME: value`; blank lines and lines
//!   starting with `#` are skipped.
//! - Unquoted values end at ` #` (a comment) and are trimmed.
//! - `'single'` quotes: literal, may span lines, no expansion.
//! - `"double"` quotes: may span lines; `\n`, `\r`, `\t`, `\"`, `\\` and `\$`
//!   are escapes; `${NAME}` expands.
//! - `` `backticks` ``: literal escapes, may span lines, `${NAME}` expands.
//! - Expansion (as dotenv-expand does): `${NAME}`, `$NAME`, `${NAME:-default}`
//!   (default when unset or empty) and `${NAME-default}` (default when unset);
//!   a name resolves to the process environment first, then to what the files
//!   read so far defined; an unknown name expands to nothing.
//!
//! # Precedence
//! The files are read in order and a later one overrides an earlier one; the
//! process environment overrides every file. Without `--env-file`, the files
//! are `.env` then `.env.local`, the order and precedence Next.js and Vite
//! use (their `NODE_ENV`/mode-specific files are not guessed).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why a dotenv file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DotenvError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not `NAME=value`.
    #[error("{path}:{line}: {reason}")]
    Syntax {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong, in words.
        reason: String,
    },
}

/// Where a local value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The process environment (it overrides every file).
    Environment,
    /// This dotenv file.
    File(PathBuf),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Environment => f.write_str("environment"),
            Source::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// The local variables: the files' values with the process environment on
/// top, each with where it came from.
#[derive(Debug, Default)]
pub struct LocalEnv {
    files: BTreeMap<String, (String, PathBuf)>,
}

impl LocalEnv {
    /// Reads `files` in order (later overrides earlier). A missing file is an
    /// error unless `optional` (the defaults are optional; files a user named
    /// are not).
    pub fn read(files: &[PathBuf], optional: bool) -> Result<Self, DotenvError> {
        let mut env = LocalEnv::default();
        for path in files {
            let text = match std::fs::read_to_string(path) {
                Ok(t) => t,
                Err(e) if optional && e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(DotenvError::Io {
                        path: path.display().to_string(),
                        source,
                    });
                }
            };
            let lookup = |name: &str| -> Option<String> {
                std::env::var(name)
                    .ok()
                    .or_else(|| env.files.get(name).map(|(v, _)| v.clone()))
            };
            let parsed = parse(&text, lookup).map_err(|(line, reason)| DotenvError::Syntax {
                path: path.display().to_string(),
                line,
                reason,
            })?;
            for (name, value) in parsed {
                env.files.insert(name, (value, path.clone()));
            }
        }
        Ok(env)
    }

    /// The value the app would see for `name`, and where it came from.
    pub fn get(&self, name: &str) -> Option<(String, Source)> {
        if let Ok(v) = std::env::var(name) {
            return Some((v, Source::Environment));
        }
        self.files
            .get(name)
            .map(|(v, p)| (v.clone(), Source::File(p.clone())))
    }
}

/// The files read when none is named: `.env`, then `.env.local`, in `dir`.
pub fn default_files(dir: &Path) -> Vec<PathBuf> {
    vec![dir.join(".env"), dir.join(".env.local")]
}

/// Parses one file's text. Names used in `${…}` resolve through `outer`
/// first (the process environment and earlier files), then through names
/// this file defined above. Errors are `(line, reason)`.
pub fn parse(
    text: &str,
    outer: impl Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>, (usize, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut here: BTreeMap<String, String> = BTreeMap::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let start = i + 1;
        let line = lines[i].trim_start();
        i += 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line
            .strip_prefix("export")
            .filter(|r| r.starts_with([' ', '\t']))
            .map_or(line, str::trim_start);
        let name_end = line
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
            .unwrap_or(line.len());
        let (name, rest) = line.split_at(name_end);
        if name.is_empty() {
            return Err((start, "expected NAME=value".into()));
        }
        let rest = rest.trim_start();
        let rest = if let Some(r) = rest.strip_prefix('=') {
            r
        } else if let Some(r) = rest.strip_prefix(':') {
            r
        } else {
            return Err((start, format!("expected '=' after {name}")));
        };
        let rest = rest.trim_start();
        let lookup = |n: &str| outer(n).or_else(|| here.get(n).cloned());
        let value = match rest.chars().next() {
            Some(q @ ('\'' | '"' | '`')) => {
                // The value runs to the matching quote, across lines if need be.
                let mut body = String::new();
                let mut tail = &rest[1..];
                let closed = loop {
                    if let Some(end) = closing_quote(tail, q) {
                        body.push_str(&tail[..end]);
                        let after = tail[end + 1..].trim_start();
                        if !(after.is_empty() || after.starts_with('#')) {
                            return Err((
                                i,
                                format!("unexpected '{after}' after the closing {q} of {name}"),
                            ));
                        }
                        break true;
                    }
                    body.push_str(tail);
                    if i >= lines.len() {
                        break false;
                    }
                    body.push('\n');
                    tail = lines[i];
                    i += 1;
                };
                if !closed {
                    return Err((
                        start,
                        format!("the {q} that opens {name}'s value is never closed"),
                    ));
                }
                match q {
                    '\'' => body,
                    '"' => expand(&unescape(&body), &lookup),
                    _ => expand(&body, &lookup),
                }
            }
            _ => {
                let unquoted = match rest.find(" #").or_else(|| rest.find("\t#")) {
                    Some(c) => &rest[..c],
                    None => rest,
                };
                expand(unquoted.trim(), &lookup)
            }
        };
        here.insert(name.to_string(), value.clone());
        out.retain(|(n, _)| n != name);
        out.push((name.to_string(), value));
    }
    Ok(out)
}

/// Where the quote `q` closing a value is in `s` (a backslash escapes it
/// inside double quotes only).
fn closing_quote(s: &str, q: char) -> Option<usize> {
    let mut escaped = false;
    for (at, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' && q == '"' {
            escaped = true;
        } else if c == q {
            return Some(at);
        }
    }
    None
}

/// Double-quoted escapes; `\$` is kept so that [`expand`] leaves a literal `$`.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('$') => out.push_str("\\$"),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// `${NAME}`, `$NAME`, `${NAME:-default}`, `${NAME-default}`; `\$` is a
/// literal dollar.
fn expand(s: &str, lookup: &impl Fn(&str) -> Option<String>) -> String {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find(['$', '\\']) {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(t) = tail.strip_prefix("\\$") {
            out.push('$');
            rest = t;
        } else if let Some(t) = tail.strip_prefix('\\') {
            out.push('\\');
            rest = t;
        } else if let Some(braced) = tail.strip_prefix("${")
            && let Some(close) = braced.find('}')
        {
            let inner = &braced[..close];
            let (name, default, empty_too) = if let Some((n, d)) = inner.split_once(":-") {
                (n, Some(d), true)
            } else if let Some((n, d)) = inner.split_once('-') {
                (n, Some(d), false)
            } else {
                (inner, None, false)
            };
            let value = lookup(name);
            let use_default = match &value {
                None => true,
                Some(v) => empty_too && v.is_empty(),
            };
            match (use_default, default) {
                (true, Some(d)) => out.push_str(&expand(d, lookup)),
                _ => out.push_str(&value.unwrap_or_default()),
            }
            rest = &braced[close + 1..];
        } else {
            let t = &tail[1..];
            let end = t.find(|c: char| !is_name(c)).unwrap_or(t.len());
            if end == 0 {
                out.push('$');
            } else {
                out.push_str(&lookup(&t[..end]).unwrap_or_default());
            }
            rest = &t[end..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(text: &str) -> BTreeMap<String, String> {
        parse(text, |n| (n == "OUTER").then(|| "from-outside".to_string()))
            .unwrap()
            .into_iter()
            .collect()
    }

    #[test]
    fn quoting_export_comments_and_multiline() {
        let v = vars(concat!(
            "# a comment\n",
            "\n",
            "PLAIN=hello world   # trailing comment\n",
            "export EXPORTED=yes\n",
            "  INDENTED = spaced  \n",
            "SINGLE='no $OUTER \\n expansion' # c\n",
            "DOUBLE=\"line1\\nline2 \\\"q\\\" #not-a-comment\"\n",
            "MULTI=\"first\n",
            "second\n",
            "third\"\n",
            "SMULTI='a\n",
            "b'\n",
            "BACK=`it's \"mixed\"`\n",
            "EMPTY=\n",
            "HASH=abc#def\n",
            "COLON: value\n",
            "URL=postgres://u:p@h/db?x=1\n",
            "PLAIN=overridden later\n",
        ));
        assert_eq!(v["PLAIN"], "overridden later");
        assert_eq!(v["EXPORTED"], "yes");
        assert_eq!(v["INDENTED"], "spaced");
        assert_eq!(v["SINGLE"], "no $OUTER \\n expansion");
        assert_eq!(v["DOUBLE"], "line1\nline2 \"q\" #not-a-comment");
        assert_eq!(v["MULTI"], "first\nsecond\nthird");
        assert_eq!(v["SMULTI"], "a\nb");
        assert_eq!(v["BACK"], "it's \"mixed\"");
        assert_eq!(v["EMPTY"], "");
        assert_eq!(v["HASH"], "abc#def", "# without a space before is data");
        assert_eq!(v["COLON"], "value");
        assert_eq!(v["URL"], "postgres://u:p@h/db?x=1");
    }

    #[test]
    fn interpolation() {
        let v = vars(concat!(
            "HOST=db.local\n",
            "URL=postgres://${HOST}:5432/$HOST\n",
            "QUOTED=\"at ${HOST}\"\n",
            "OUT=${OUTER}\n",
            "UNKNOWN=[${NOPE}]\n",
            "DEF=${NOPE:-fallback}\n",
            "EMPTYV=\n",
            "DEF_EMPTY=${EMPTYV:-used}\n",
            "DASH_EMPTY=${EMPTYV-unused}\n",
            "ESCAPED=\"cost \\$5 \\${HOST}\"\n",
            "RAW=price $ 5\n",
        ));
        assert_eq!(v["URL"], "postgres://db.local:5432/db.local");
        assert_eq!(v["QUOTED"], "at db.local");
        assert_eq!(v["OUT"], "from-outside");
        assert_eq!(v["UNKNOWN"], "[]");
        assert_eq!(v["DEF"], "fallback");
        assert_eq!(v["DEF_EMPTY"], "used");
        assert_eq!(v["DASH_EMPTY"], "");
        assert_eq!(v["ESCAPED"], "cost $5 ${HOST}");
        assert_eq!(v["RAW"], "price $ 5");
    }

    #[test]
    fn errors_name_the_line() {
        let err = parse("A=1\nB=\"open\nC=2\n", |_| None).unwrap_err();
        assert_eq!(err.0, 2);
        assert!(err.1.contains("never closed"), "{}", err.1);
        let err = parse("A=1\nnot a line\n", |_| None).unwrap_err();
        assert_eq!(err, (2, "expected '=' after not".to_string()));
        let err = parse("A='x' y\n", |_| None).unwrap_err();
        assert!(err.1.contains("unexpected 'y'"), "{}", err.1);
        let err = parse("=x\n", |_| None).unwrap_err();
        assert_eq!(err.0, 1);
    }

    #[test]
    fn later_files_override_earlier_and_say_where() {
        let dir = tempfile::tempdir().unwrap();
        let files = default_files(dir.path());
        std::fs::write(&files[0], "BEAM_DOTENV_T_A=base\nBEAM_DOTENV_T_B=base\n").unwrap();
        std::fs::write(&files[1], "BEAM_DOTENV_T_B=local-${BEAM_DOTENV_T_A}\n").unwrap();
        let env = LocalEnv::read(&files, true).unwrap();
        assert_eq!(
            env.get("BEAM_DOTENV_T_A"),
            Some(("base".into(), Source::File(files[0].clone())))
        );
        assert_eq!(
            env.get("BEAM_DOTENV_T_B"),
            Some(("local-base".into(), Source::File(files[1].clone())))
        );
        assert_eq!(env.get("BEAM_DOTENV_T_NONE"), None);
        // A named file that does not exist is an error; a default one is not.
        let missing = [dir.path().join("nope.env")];
        assert!(LocalEnv::read(&missing, true).is_ok());
        let err = LocalEnv::read(&missing, false).unwrap_err().to_string();
        assert!(err.contains("nope.env"), "{err}");
    }
}
