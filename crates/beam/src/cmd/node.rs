//! `beam server --node-addr`: the node listener other nodes of a cluster
//! dial, and the cluster secret, read from the environment or a file (never
//! argv, where `ps` would show it).

use anyhow::{Context, bail};
use beam_proto::Secret;
use beam_server::config::ClusterConfig;
use tokio::net::TcpListener;

use crate::cli::ServerArgs;

/// Shortest cluster secret accepted: the HMAC key proving membership.
const MIN_SECRET: usize = 16;

/// The node listener and cluster settings when `--node-addr` is given.
pub async fn listener(
    args: &ServerArgs,
    db_url: &str,
) -> anyhow::Result<Option<(TcpListener, ClusterConfig)>> {
    let Some(addr) = args.node_addr.as_deref() else {
        return Ok(None);
    };
    if !db_url.starts_with("postgres") {
        bail!(
            "--node-addr: a cluster shares one PostgreSQL database; give every node --database postgres://… (SQLite serves one node)"
        );
    }
    let (host, port) = addr
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse::<u16>().ok()?)))
        .with_context(|| format!("--node-addr {addr}: expected HOST:PORT"))?;
    if host
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_unspecified())
    {
        bail!(
            "--node-addr {addr}: other nodes dial this address, so it must be one they can reach; to listen on every interface, add --node-bind {addr}"
        );
    }
    let secret = secret()?;
    let listener = match args.node_bind {
        Some(bind) => TcpListener::bind(bind).await,
        None => TcpListener::bind(addr).await,
    }
    .with_context(|| {
        format!("cannot listen for other nodes on {addr} (in use? choose another with --node-addr)")
    })?;
    // With port 0 the OS picks: other nodes must dial the real one.
    let advertised = match port {
        0 => format!(
            "{}:{}",
            addr.rsplit_once(':').map_or(addr, |(h, _)| h),
            listener.local_addr()?.port()
        ),
        _ => addr.to_string(),
    };
    Ok(Some((listener, ClusterConfig::new(advertised, secret))))
}

/// The cluster secret from `BEAM_CLUSTER_SECRET` or the file named by
/// `BEAM_CLUSTER_SECRET_FILE` (trailing newline ignored).
fn secret() -> anyhow::Result<Secret> {
    let inline = std::env::var("BEAM_CLUSTER_SECRET")
        .ok()
        .filter(|s| !s.is_empty());
    let file = std::env::var_os("BEAM_CLUSTER_SECRET_FILE").filter(|s| !s.is_empty());
    let value = match (inline, file) {
        (Some(_), Some(_)) => {
            bail!("set BEAM_CLUSTER_SECRET or BEAM_CLUSTER_SECRET_FILE, not both")
        }
        (Some(v), None) => v,
        (None, Some(path)) => std::fs::read_to_string(&path)
            .with_context(|| {
                format!(
                    "cannot read the cluster secret from BEAM_CLUSTER_SECRET_FILE={}",
                    std::path::Path::new(&path).display()
                )
            })?
            .trim_end_matches(['\n', '\r'])
            .to_string(),
        (None, None) => bail!(
            "--node-addr needs the cluster secret: set BEAM_CLUSTER_SECRET or BEAM_CLUSTER_SECRET_FILE to the same value on every node (e.g. `openssl rand -hex 32`)"
        ),
    };
    if value.len() < MIN_SECRET {
        bail!(
            "the cluster secret is too short: use at least {MIN_SECRET} characters (e.g. `openssl rand -hex 32`)"
        );
    }
    Ok(Secret::new(value))
}
