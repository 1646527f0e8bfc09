//! Which dev server a project runs and on which port, for `beam dev`: read
//! from the files in the project directory (never by running anything), the
//! way a developer would tell at a glance.

use std::path::Path;

/// What `beam dev` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    /// The framework, as people call it ("Next.js", "Vite", "Django"…).
    pub framework: &'static str,
    /// The port its dev server listens on.
    pub port: u16,
    /// Where the answer came from ("package.json scripts.dev: --port 4000").
    pub source: String,
    /// Its dev server refuses requests whose `Host` is not its own (Vite's
    /// `allowedHosts`, webpack-dev-server): `beam dev` rewrites `Host`.
    pub checks_host: bool,
}

impl Detected {
    fn new(framework: &'static str, port: u16, source: impl Into<String>) -> Self {
        Self {
            framework,
            port,
            source: source.into(),
            checks_host: false,
        }
    }
}

fn read(dir: &Path, name: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(name)).ok()
}

/// The first file of `names` that exists in `dir`, with its text.
fn first_of(dir: &Path, names: &[&str]) -> Option<(String, String)> {
    names
        .iter()
        .find_map(|n| read(dir, n).map(|t| (n.to_string(), t)))
}

/// A port number after any of `keys` in `text` (`--port 4000`, `-p=4000`,
/// `PORT=4000`, `port: 4000`, `"port": 4000`).
fn port_after(text: &str, keys: &[&str]) -> Option<u16> {
    for key in keys {
        let mut rest = text;
        while let Some(i) = rest.find(key) {
            let after = &rest[i + key.len()..];
            let after = after.trim_start_matches(['"', '\'']);
            let after = after.trim_start_matches([' ', '=', ':', '\t']);
            let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(p) = digits.parse::<u16>()
                && p > 0
            {
                return Some(p);
            }
            rest = &rest[i + key.len()..];
        }
    }
    None
}

/// `PORT=N` in the project's `.env` files (many servers read it).
fn env_port(dir: &Path) -> Option<(u16, String)> {
    for name in [".env.local", ".env.development", ".env"] {
        if let Some(text) = read(dir, name) {
            for line in text.lines() {
                let line = line.trim().trim_start_matches("export ");
                if let Some(v) = line.strip_prefix("PORT=") {
                    let v = v.trim().trim_matches(['"', '\'']);
                    if let Ok(p) = v.parse::<u16>() {
                        return Some((p, format!("{name}: PORT={p}")));
                    }
                }
            }
        }
    }
    None
}

const PORT_FLAGS: &[&str] = &["--port", "-p ", "-p=", "PORT="];

/// What `package.json` says: the framework from its dependencies, the port
/// from its dev script when it names one.
fn node(dir: &Path) -> Option<Detected> {
    let text = read(dir, "package.json")?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    let has = |dep: &str| {
        ["dependencies", "devDependencies"]
            .iter()
            .any(|k| json[k].get(dep).is_some())
    };
    let script = ["dev", "start", "serve"]
        .iter()
        .find_map(|s| json["scripts"][s].as_str().map(|c| (*s, c.to_string())));
    let (framework, port, host_check) = if has("next") {
        ("Next.js", 3000, false)
    } else if has("nuxt") {
        ("Nuxt", 3000, true)
    } else if has("@sveltejs/kit") {
        ("SvelteKit", 5173, true)
    } else if has("astro") {
        ("Astro", 4321, true)
    } else if has("@remix-run/dev") && !has("vite") {
        ("Remix", 3000, false)
    } else if has("@remix-run/dev") || has("@react-router/dev") {
        ("Remix", 5173, true)
    } else if has("react-scripts") {
        ("Create React App", 3000, true)
    } else if has("vite") {
        ("Vite", 5173, true)
    } else if has("express") {
        ("Express", 3000, false)
    } else {
        return None;
    };
    let mut d = Detected::new(
        framework,
        port,
        format!("package.json depends on {}", dep_name(framework)),
    );
    d.checks_host = host_check;
    if let Some((name, cmd)) = &script
        && let Some(p) = port_after(cmd, PORT_FLAGS)
    {
        d.port = p;
        d.source = format!("package.json scripts.{name}: {cmd}");
    } else if let Some(p) = config_port(dir, framework) {
        d.port = p.0;
        d.source = p.1;
    } else if matches!(
        framework,
        "Next.js" | "Express" | "Nuxt" | "Create React App"
    ) && let Some((p, why)) = env_port(dir)
    {
        d.port = p;
        d.source = why;
    }
    Some(d)
}

fn dep_name(framework: &str) -> &'static str {
    match framework {
        "Next.js" => "next",
        "Nuxt" => "nuxt",
        "SvelteKit" => "@sveltejs/kit",
        "Astro" => "astro",
        "Remix" => "@remix-run/dev",
        "Create React App" => "react-scripts",
        "Vite" => "vite",
        _ => "express",
    }
}

/// The port a framework's config file sets (`server: { port: 3001 }`).
fn config_port(dir: &Path, framework: &str) -> Option<(u16, String)> {
    let names: &[&str] = match framework {
        "Vite" | "SvelteKit" | "Remix" => &[
            "vite.config.ts",
            "vite.config.js",
            "vite.config.mjs",
            "vite.config.mts",
        ],
        "Astro" => &["astro.config.mjs", "astro.config.ts", "astro.config.js"],
        "Nuxt" => &["nuxt.config.ts", "nuxt.config.js"],
        _ => &[],
    };
    let (name, text) = first_of(dir, names)?;
    let p = port_after(&text, &["port"])?;
    Some((p, format!("{name}: port {p}")))
}

/// Config files alone, without a package.json that names the framework.
fn config_files(dir: &Path) -> Option<Detected> {
    let checks: [(&[&str], &'static str, u16, bool); 4] = [
        (
            &["next.config.js", "next.config.mjs", "next.config.ts"],
            "Next.js",
            3000,
            false,
        ),
        (
            &[
                "vite.config.ts",
                "vite.config.js",
                "vite.config.mjs",
                "vite.config.mts",
            ],
            "Vite",
            5173,
            true,
        ),
        (
            &["astro.config.mjs", "astro.config.ts", "astro.config.js"],
            "Astro",
            4321,
            true,
        ),
        (&["nuxt.config.ts", "nuxt.config.js"], "Nuxt", 3000, true),
    ];
    for (names, framework, port, host) in checks {
        if let Some((name, text)) = first_of(dir, names) {
            let (port, source) = match port_after(&text, &["port"]) {
                Some(p) => (p, format!("{name}: port {p}")),
                None => (port, format!("{name} (default port)")),
            };
            let mut d = Detected::new(framework, port, source);
            d.checks_host = host;
            return Some(d);
        }
    }
    None
}

/// Python, Ruby, Elixir and PHP projects, by their usual files.
fn other_languages(dir: &Path) -> Option<Detected> {
    let text_of = |names: &[&str]| {
        names
            .iter()
            .filter_map(|n| read(dir, n))
            .collect::<Vec<_>>()
            .join("\n")
    };
    if dir.join("manage.py").is_file() {
        return Some(Detected::new("Django", 8000, "manage.py"));
    }
    if let Some(gemfile) = read(dir, "Gemfile")
        && gemfile.contains("rails")
    {
        let port = port_after(
            &read(dir, "config/puma.rb").unwrap_or_default(),
            &["PORT\", ", "port "],
        );
        return Some(match port {
            Some(p) => Detected::new("Rails", p, format!("config/puma.rb: port {p}")),
            None => Detected::new("Rails", 3000, "Gemfile depends on rails"),
        });
    }
    if let Some(mix) = read(dir, "mix.exs")
        && mix.contains(":phoenix")
    {
        let dev = read(dir, "config/dev.exs").unwrap_or_default();
        return Some(match port_after(&dev, &["port:"]) {
            Some(p) => Detected::new("Phoenix", p, format!("config/dev.exs: port {p}")),
            None => Detected::new("Phoenix", 4000, "mix.exs depends on phoenix"),
        });
    }
    if dir.join("artisan").is_file()
        || read(dir, "composer.json").is_some_and(|c| c.contains("laravel/framework"))
    {
        return Some(Detected::new(
            "Laravel",
            8000,
            "artisan (php artisan serve)",
        ));
    }
    let python = text_of(&["requirements.txt", "pyproject.toml", "Pipfile", "Procfile"])
        .to_ascii_lowercase();
    if python.contains("fastapi") || python.contains("uvicorn") {
        return Some(match port_after(&python, &["--port"]) {
            Some(p) => Detected::new("FastAPI", p, format!("--port {p} in the project files")),
            None => Detected::new("FastAPI", 8000, "fastapi/uvicorn in the dependencies"),
        });
    }
    if python.contains("flask") {
        let flaskenv = read(dir, ".flaskenv").unwrap_or_default();
        return Some(match port_after(&flaskenv, &["FLASK_RUN_PORT="]) {
            Some(p) => Detected::new("Flask", p, format!(".flaskenv: FLASK_RUN_PORT={p}")),
            None => Detected::new("Flask", 5000, "flask in the dependencies"),
        });
    }
    None
}

/// Go and Rust servers: a port in their config (`.env`, `config.*`,
/// `Rocket.toml`) or a listen address in their main file.
fn compiled(dir: &Path) -> Option<Detected> {
    let (framework, mains): (&'static str, &[&str]) = if dir.join("go.mod").is_file() {
        ("Go server", &["main.go", "cmd/server/main.go", "server.go"])
    } else if dir.join("Cargo.toml").is_file() {
        ("Rust server", &["src/main.rs", "src/bin/server.rs"])
    } else {
        return None;
    };
    if let Some((p, why)) = env_port(dir) {
        return Some(Detected::new(framework, p, why));
    }
    for name in [
        "Rocket.toml",
        "config.toml",
        "config.yaml",
        "config.yml",
        "config.json",
    ] {
        if let Some(text) = read(dir, name)
            && let Some(p) = port_after(&text, &["port"])
        {
            return Some(Detected::new(framework, p, format!("{name}: port {p}")));
        }
    }
    for name in mains {
        if let Some(text) = read(dir, name)
            && let Some(p) = port_after(&text, &["\":", "127.0.0.1:", "0.0.0.0:", "localhost:"])
        {
            return Some(Detected::new(
                framework,
                p,
                format!("{name} listens on port {p}"),
            ));
        }
    }
    None
}

/// The dev server of the project in `dir`, if its files say.
pub fn detect(dir: &Path) -> Option<Detected> {
    node(dir)
        .or_else(|| config_files(dir))
        .or_else(|| other_languages(dir))
        .or_else(|| compiled(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_found_after_their_flags() {
        assert_eq!(port_after("next dev -p 4000", PORT_FLAGS), Some(4000));
        assert_eq!(
            port_after("vite --port=5174 --host", PORT_FLAGS),
            Some(5174)
        );
        assert_eq!(
            port_after("PORT=3005 node server.js", PORT_FLAGS),
            Some(3005)
        );
        assert_eq!(port_after("server: { port: 3001 }", &["port"]), Some(3001));
        assert_eq!(port_after("vite --host", PORT_FLAGS), None);
    }

    /// A project directory holding `files`.
    fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    fn pkg(deps: &str, dev_script: &str) -> String {
        format!(r#"{{"name":"app","scripts":{{"dev":"{dev_script}"}},"dependencies":{{{deps}}}}}"#)
    }

    #[test]
    fn every_listed_framework_is_detected_with_its_port() {
        type Case<'a> = (Vec<(&'a str, String)>, &'a str, u16, bool);
        let cases: Vec<Case> = vec![
            (
                vec![("package.json", pkg(r#""next":"15""#, "next dev"))],
                "Next.js",
                3000,
                false,
            ),
            (
                vec![("package.json", pkg(r#""next":"15""#, "next dev -p 4000"))],
                "Next.js",
                4000,
                false,
            ),
            (
                vec![
                    ("package.json", pkg(r#""next":"15""#, "next dev")),
                    (".env", "PORT=3100\n".into()),
                ],
                "Next.js",
                3100,
                false,
            ),
            (
                vec![("package.json", pkg(r#""vite":"6""#, "vite"))],
                "Vite",
                5173,
                true,
            ),
            (
                vec![
                    ("package.json", pkg(r#""vite":"6""#, "vite")),
                    (
                        "vite.config.ts",
                        "export default { server: { port: 5200 } }".into(),
                    ),
                ],
                "Vite",
                5200,
                true,
            ),
            (
                vec![("package.json", pkg(r#""astro":"5""#, "astro dev"))],
                "Astro",
                4321,
                true,
            ),
            (
                vec![("package.json", pkg(r#""nuxt":"3""#, "nuxt dev"))],
                "Nuxt",
                3000,
                true,
            ),
            (
                vec![(
                    "package.json",
                    pkg(r#""@sveltejs/kit":"2","vite":"6""#, "vite dev"),
                )],
                "SvelteKit",
                5173,
                true,
            ),
            (
                vec![(
                    "package.json",
                    pkg(r#""@remix-run/dev":"2","vite":"6""#, "remix vite:dev"),
                )],
                "Remix",
                5173,
                true,
            ),
            (
                vec![("package.json", pkg(r#""@remix-run/dev":"1""#, "remix dev"))],
                "Remix",
                3000,
                false,
            ),
            (
                vec![(
                    "package.json",
                    pkg(r#""react-scripts":"5""#, "react-scripts start"),
                )],
                "Create React App",
                3000,
                true,
            ),
            (
                vec![(
                    "package.json",
                    pkg(r#""express":"4""#, "PORT=8080 node server.js"),
                )],
                "Express",
                8080,
                false,
            ),
            (
                vec![("next.config.mjs", "export default {}".into())],
                "Next.js",
                3000,
                false,
            ),
            (
                vec![(
                    "vite.config.js",
                    "export default { server: { port: 3333 } }".into(),
                )],
                "Vite",
                3333,
                true,
            ),
            (
                vec![("astro.config.mjs", "export default {}".into())],
                "Astro",
                4321,
                true,
            ),
            (
                vec![("Gemfile", "gem \"rails\", \"~> 7.1\"".into())],
                "Rails",
                3000,
                false,
            ),
            (
                vec![("manage.py", "#!/usr/bin/env python".into())],
                "Django",
                8000,
                false,
            ),
            (
                vec![("requirements.txt", "Flask==3.0".into())],
                "Flask",
                5000,
                false,
            ),
            (
                vec![
                    ("requirements.txt", "flask\n".into()),
                    (".flaskenv", "FLASK_RUN_PORT=5050\n".into()),
                ],
                "Flask",
                5050,
                false,
            ),
            (
                vec![("requirements.txt", "fastapi\nuvicorn[standard]".into())],
                "FastAPI",
                8000,
                false,
            ),
            (
                vec![
                    ("pyproject.toml", "dependencies = [\"fastapi\"]".into()),
                    ("Procfile", "web: uvicorn app:app --port 8001".into()),
                ],
                "FastAPI",
                8001,
                false,
            ),
            (
                vec![("mix.exs", "{:phoenix, \"~> 1.7\"}".into())],
                "Phoenix",
                4000,
                false,
            ),
            (
                vec![
                    ("mix.exs", "{:phoenix, \"~> 1.7\"}".into()),
                    (
                        "config/dev.exs",
                        "http: [ip: {127, 0, 0, 1}, port: 4001]".into(),
                    ),
                ],
                "Phoenix",
                4001,
                false,
            ),
            (
                vec![("artisan", "#!/usr/bin/env php".into())],
                "Laravel",
                8000,
                false,
            ),
            (
                vec![
                    ("go.mod", "module app".into()),
                    ("main.go", "http.ListenAndServe(\":8090\", nil)".into()),
                ],
                "Go server",
                8090,
                false,
            ),
            (
                vec![
                    ("go.mod", "module app".into()),
                    (".env", "PORT=9000".into()),
                ],
                "Go server",
                9000,
                false,
            ),
            (
                vec![
                    ("Cargo.toml", "[package]".into()),
                    (
                        "src/main.rs",
                        "TcpListener::bind(\"127.0.0.1:3030\")".into(),
                    ),
                ],
                "Rust server",
                3030,
                false,
            ),
            (
                vec![
                    ("Cargo.toml", "[package]".into()),
                    ("Rocket.toml", "[default]\nport = 8100".into()),
                ],
                "Rust server",
                8100,
                false,
            ),
        ];
        for (files, framework, port, checks_host) in cases {
            let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
            let dir = project(&files);
            let d = detect(dir.path()).unwrap_or_else(|| panic!("nothing found in {files:?}"));
            assert_eq!(
                (d.framework, d.port, d.checks_host),
                (framework, port, checks_host),
                "{files:?}: {d:?}"
            );
            assert!(!d.source.is_empty());
        }
        // Nothing recognisable: nothing claimed.
        let dir = project(&[("README.md", "hello")]);
        assert_eq!(detect(dir.path()), None);
    }
}
