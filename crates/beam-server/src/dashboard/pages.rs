//! The dashboard's pages. Each reads through the REST API's handlers with the
//! viewer's principal (so a page shows what the API would show that person)
//! and renders a compiled template; charts and the live list are filled in
//! by the page's script from the JSON API and the SSE stream.

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use super::render::{Flash, api_error_page, html};
use super::session::Viewer;
use super::view::{self, Can, Nav, TunnelLine};
use crate::accounts::scope::{Role, Scope};
use crate::api::analytics::{self, Period, PeriodQuery};
use crate::api::error::ApiError;
use crate::api::extract::{Path, Query};
use crate::api::invitations::InvitationView;
use crate::api::tokens::CreatedToken;
use crate::api::{deliveries, domains, invitations, org, projects, tokens, tunnels};
use crate::state::State;
use crate::store::{DomainKind, DomainStatus, now_ms};

/// A page's chrome: navigation and the flash a previous post left.
fn chrome(
    viewer: &Viewer,
    headers: &HeaderMap,
    page: &'static str,
) -> (Option<Nav>, Option<Flash>) {
    (Some(viewer.nav(page)), Flash::take(headers))
}

/// Renders or, on an API refusal, shows the refusal.
macro_rules! try_api {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return api_error_page(&e),
        }
    };
}

/// Something on the overview that needs a person.
pub(crate) struct Attention {
    /// `warn` or `error`.
    pub level: &'static str,
    /// What it is.
    pub text: String,
    /// Where to fix it.
    pub link: &'static str,
}

#[derive(Template)]
#[template(path = "dashboard/overview.html")]
struct OverviewPage {
    nav: Option<Nav>,
    flash: Option<Flash>,
    online: i64,
    requests: String,
    bandwidth: String,
    error_rate: String,
    p95: String,
    attention: Vec<Attention>,
}

/// `GET /`: the organization at a glance.
pub(crate) async fn overview(
    AxumState(state): AxumState<Arc<State>>,
    viewer: Viewer,
    headers: HeaderMap,
) -> Response {
    let (nav, flash) = chrome(&viewer, &headers, "overview");
    let shown = flash.is_some();
    let details = try_api!(org::get(AxumState(state.clone()), viewer.auth()).await).0;
    let mut requests = "—".to_string();
    let mut bandwidth = "—".to_string();
    let mut error_rate = "—".to_string();
    let mut p95 = "—".to_string();
    if viewer.principal.allows(Scope::TunnelsRead) {
        let a = try_api!(analytics::org_summary(&state, &viewer.auth(), Period::Day).await);
        requests = view::count(a.requests);
        bandwidth = view::bytes(a.bytes_in + a.bytes_out);
        if a.requests > 0 {
            error_rate = format!("{:.1}%", a.errors as f64 * 100.0 / a.requests as f64);
        }
        if let Some(ms) = a.p95_ms {
            p95 = format!("{} ms", ms.ceil());
        }
    }
    let attention = try_api!(attention(&state, &viewer).await);
    let page = OverviewPage {
        nav,
        flash,
        online: details.usage.tunnels_connected,
        requests,
        bandwidth,
        error_rate,
        p95,
        attention,
    };
    html(StatusCode::OK, &page, shown)
}

/// Domains failing verification, certificates expiring within 14 days, and
/// environments with no agent connected.
async fn attention(state: &Arc<State>, viewer: &Viewer) -> Result<Vec<Attention>, ApiError> {
    let mut out = Vec::new();
    let now = now_ms();
    if viewer.principal.allows(Scope::DomainsRead) {
        let list = domains::list(AxumState(state.clone()), viewer.auth())
            .await?
            .0;
        for d in list {
            let d = d.domain;
            match d.status {
                DomainStatus::Pending | DomainStatus::Suspended => out.push(Attention {
                    level: if d.status == DomainStatus::Suspended {
                        "error"
                    } else {
                        "warn"
                    },
                    text: format!(
                        "{} is {}{}",
                        d.hostname,
                        d.status.as_str(),
                        d.last_error.map(|e| format!(": {e}")).unwrap_or_default()
                    ),
                    link: "/domains",
                }),
                DomainStatus::Active if d.kind == DomainKind::Custom => {
                    if let Some(exp) = state.store.certificate_expiry(&d.hostname).await?
                        && exp < now + 14 * 86_400_000
                    {
                        out.push(Attention {
                            level: if exp < now { "error" } else { "warn" },
                            text: format!(
                                "the certificate of {} expires {}",
                                d.hostname,
                                view::time(exp)
                            ),
                            link: "/domains",
                        });
                    }
                }
                _ => {}
            }
        }
    }
    if viewer.principal.allows(Scope::OrgRead) {
        for env in projects::list(AxumState(state.clone()), viewer.auth())
            .await?
            .0
        {
            if crate::parity::replicas::replicas(state, env.id)
                .await
                .is_empty()
            {
                out.push(Attention {
                    level: "warn",
                    text: format!("no agent is connected for {}/{}", env.project, env.name),
                    link: "/production",
                });
            }
        }
    }
    Ok(out)
}

/// `?all=1` on the tunnel list.
#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    #[serde(default)]
    all: Option<String>,
}

#[derive(Template)]
#[template(path = "dashboard/tunnels.html")]
struct TunnelsPage {
    nav: Option<Nav>,
    flash: Option<Flash>,
    lines: Vec<TunnelLine>,
    all: bool,
    can: Can,
    csrf: String,
}

/// The e-mail of every member, by user id.
pub(crate) async fn emails(
    state: &Arc<State>,
    viewer: &Viewer,
) -> Result<HashMap<i64, String>, ApiError> {
    Ok(org::members(AxumState(state.clone()), viewer.auth())
        .await?
        .0
        .into_iter()
        .map(|m| (m.user_id, m.email))
        .collect())
}

/// The lines of the organization's tunnels (live ones, or all).
pub(crate) async fn tunnel_lines(
    state: &Arc<State>,
    viewer: &Viewer,
    all: bool,
) -> Result<Vec<TunnelLine>, ApiError> {
    let rows = tunnels::list(AxumState(state.clone()), viewer.auth())
        .await?
        .0;
    let emails = emails(state, viewer).await?;
    Ok(rows
        .iter()
        .map(|t| {
            TunnelLine::of(
                t,
                t.user_id.and_then(|u| emails.get(&u)).map(String::as_str),
            )
        })
        .filter(|l| all || l.live)
        .collect())
}

/// `GET /tunnels`: the live list (the script keeps it current).
pub(crate) async fn tunnels(
    AxumState(state): AxumState<Arc<State>>,
    viewer: Viewer,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<ListQuery>,
) -> Response {
    let (nav, flash) = chrome(&viewer, &headers, "tunnels");
    let shown = flash.is_some();
    let all = q.all.is_some_and(|a| a == "1");
    let lines = try_api!(tunnel_lines(&state, &viewer, all).await);
    let page = TunnelsPage {
        nav,
        flash,
        lines,
        all,
        can: viewer.can(),
        csrf: viewer.csrf.clone(),
    };
    html(StatusCode::OK, &page, shown)
}

/// `?period=` of a tunnel's page.
#[derive(Debug, Deserialize)]
pub(crate) struct TunnelQuery {
    #[serde(default)]
    period: Option<String>,
}

/// A row of a small two-column table.
pub(crate) struct Pair {
    /// Left.
    pub key: String,
    /// Right.
    pub value: String,
}

/// A recent request.
pub(crate) struct RecentRequest {
    pub time: String,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub class: &'static str,
    pub ms: String,
    pub bytes: String,
}

#[derive(Template)]
#[template(path = "dashboard/tunnel.html")]
struct TunnelPage {
    nav: Option<Nav>,
    flash: Option<Flash>,
    line: TunnelLine,
    period: &'static str,
    periods: Vec<(&'static str, &'static str, &'static str)>,
    requests: String,
    errors: String,
    bandwidth: String,
    p50: String,
    p95: String,
    codes: Vec<Pair>,
    paths: Vec<Pair>,
    recent: Vec<RecentRequest>,
    can: Can,
    csrf: String,
}

/// `GET /tunnels/{id}`: charts, status codes, top paths, recent requests.
pub(crate) async fn tunnel(
    AxumState(state): AxumState<Arc<State>>,
    viewer: Viewer,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<i64>,
    axum::extract::Query(q): axum::extract::Query<TunnelQuery>,
) -> Response {
    let (nav, flash) = chrome(&viewer, &headers, "tunnels");
    let shown = flash.is_some();
    let (period, p) = match q.period.as_deref() {
        Some("24h") => ("24h", Period::Day),
        Some("7d") => ("7d", Period::Week),
        _ => ("1h", Period::Hour),
    };
    let row = try_api!(tunnels::get(AxumState(state.clone()), viewer.auth(), Path(id)).await).0;
    let a = try_api!(
        analytics::tunnel(
            AxumState(state.clone()),
            viewer.auth(),
            Path(id),
            Query(PeriodQuery { period: Some(p) }),
        )
        .await
    )
    .0;
    let emails = try_api!(emails(&state, &viewer).await);
    // The tunnel is the organization's (checked by the API call above).
    let recent = try_api!(
        state
            .store
            .recent_requests(id, 20)
            .await
            .map_err(ApiError::from)
    )
    .into_iter()
    .map(|r| RecentRequest {
        time: view::time(r.ts),
        method: r.method,
        path: r.path,
        status: r.status,
        class: match r.status {
            200..=299 => "s2",
            300..=399 => "s3",
            400..=499 => "s4",
            _ => "s5",
        },
        ms: format!("{:.1} ms", r.duration_us as f64 / 1000.0),
        bytes: view::bytes(r.bytes_out),
    })
    .collect();
    let page = TunnelPage {
        nav,
        flash,
        line: TunnelLine::of(
            &row,
            row.user_id.and_then(|u| emails.get(&u)).map(String::as_str),
        ),
        period,
        periods: [
            ("1h", "Last hour"),
            ("24h", "Last day"),
            ("7d", "Last week"),
        ]
        .into_iter()
        .map(|(k, l)| (k, l, if k == period { "page" } else { "false" }))
        .collect(),
        requests: view::count(a.requests),
        errors: format!("{} ({:.1}%)", view::count(a.errors), a.error_rate * 100.0),
        bandwidth: view::bytes(a.bytes_in + a.bytes_out),
        p50: format!("{} ms", a.latency_p50_ms),
        p95: format!("{} ms", a.latency_p95_ms),
        codes: a
            .status_codes
            .iter()
            .map(|(c, n)| Pair {
                key: c.to_string(),
                value: view::count(*n),
            })
            .collect(),
        paths: a
            .top_paths
            .iter()
            .map(|p| Pair {
                key: p.path.clone(),
                value: view::count(p.requests),
            })
            .collect(),
        recent,
        can: viewer.can(),
        csrf: viewer.csrf.clone(),
    };
    html(StatusCode::OK, &page, shown)
}

/// A domain as the page shows it.
pub(crate) struct DomainLine {
    pub id: i64,
    pub hostname: String,
    pub kind: &'static str,
    pub status: &'static str,
    pub class: &'static str,
    pub checked: String,
    pub error: String,
    pub records: Vec<Pair>,
    pub cert: String,
}

#[derive(Template)]
#[template(path = "dashboard/domains.html")]
struct DomainsPage {
    nav: Option<Nav>,
    flash: Option<Flash>,
    lines: Vec<DomainLine>,
    base: String,
    can: Can,
    csrf: String,
}

/// `GET /domains`: custom domains and reserved subdomains, with the DNS
/// records to publish and certificate state.
pub(crate) async fn domains(
    AxumState(state): AxumState<Arc<State>>,
    viewer: Viewer,
    headers: HeaderMap,
) -> Response {
    let (nav, flash) = chrome(&viewer, &headers, "domains");
    let shown = flash.is_some();
    let list = try_api!(domains::list(AxumState(state.clone()), viewer.auth()).await).0;
    let mut lines = Vec::with_capacity(list.len());
    for d in list {
        let custom = d.domain.kind == DomainKind::Custom;
        let cert = if custom {
            match try_api!(
                state
                    .store
                    .certificate_expiry(&d.domain.hostname)
                    .await
                    .map_err(ApiError::from)
            ) {
                Some(exp) => format!("valid until {}", view::time(exp)),
                None if d.domain.status == DomainStatus::Active => {
                    "none yet: issued on the first HTTPS visit".into()
                }
                None => "after verification".into(),
            }
        } else {
            "the server's certificate".into()
        };
        let records = d
            .dns
            .map(|dns| {
                vec![
                    Pair {
                        key: format!("TXT {}", dns.txt_name),
                        value: dns.txt_value,
                    },
                    Pair {
                        key: format!("CNAME {}", d.domain.hostname),
                        value: dns.cname_target,
                    },
                ]
            })
            .unwrap_or_default();
        lines.push(DomainLine {
            id: d.domain.id,
            kind: if custom {
                "custom domain"
            } else {
                "reserved subdomain"
            },
            status: d.domain.status.as_str(),
            class: match d.domain.status {
                DomainStatus::Active => "s2",
                DomainStatus::Pending => "s4",
                _ => "s5",
            },
            checked: view::time_or(d.domain.checked_at, "not yet"),
            error: d.domain.last_error.clone().unwrap_or_default(),
            hostname: d.domain.hostname,
            records,
            cert,
        });
    }
    let page = DomainsPage {
        nav,
        flash,
        lines,
        base: state.cfg.domain.clone(),
        can: viewer.can(),
        csrf: viewer.csrf.clone(),
    };
    html(StatusCode::OK, &page, shown)
}

/// A token as the page shows it.
pub(crate) struct TokenLine {
    pub id: i64,
    pub description: String,
    pub scopes: String,
    pub created: String,
    pub expires: String,
    pub last_used: String,
    pub revoked: bool,
}

/// A scope checkbox.
pub(crate) struct ScopeBox {
    pub name: &'static str,
    pub checked: bool,
}

#[derive(Template)]
#[template(path = "dashboard/tokens.html")]
struct TokensPage {
    nav: Option<Nav>,
    flash: Option<Flash>,
    lines: Vec<TokenLine>,
    scopes: Vec<ScopeBox>,
    created: Option<CreatedToken>,
    csrf: String,
}

/// `GET /tokens`.
pub(crate) async fn tokens(
    AxumState(state): AxumState<Arc<State>>,
    viewer: Viewer,
    headers: HeaderMap,
) -> Response {
    tokens_page(&state, &viewer, Some(&headers), None).await
}

/// The tokens page, with a just-created token shown once.
pub(crate) async fn tokens_page(
    state: &Arc<State>,
    viewer: &Viewer,
    headers: Option<&HeaderMap>,
    created: Option<CreatedToken>,
) -> Response {
    let (nav, flash) = match headers {
        Some(h) => chrome(viewer, h, "tokens"),
        None => (Some(viewer.nav("tokens")), None),
    };
    let shown = flash.is_some();
    let list = try_api!(tokens::list(AxumState(state.clone()), viewer.auth()).await).0;
    let lines = list
        .into_iter()
        .map(|t| TokenLine {
            id: t.id,
            description: t.description,
            scopes: t
                .scopes
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            created: view::time(t.created_at),
            expires: view::time_or(t.expires_at, "never"),
            last_used: view::time_or(t.last_used_at, "never"),
            revoked: t.revoked_at.is_some(),
        })
        .collect();
    // Only scopes the viewer holds: nobody can grant more than they have.
    let scopes = Scope::ALL
        .iter()
        .filter(|s| viewer.principal.scopes.contains(**s))
        .map(|s| ScopeBox {
            name: s.as_str(),
            checked: Scope::CLI_DEFAULT.contains(s),
        })
        .collect();
    let page = TokensPage {
        nav,
        flash,
        lines,
        scopes,
        created,
        csrf: viewer.csrf.clone(),
    };
    html(
        if page.created.is_some() {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        &page,
        shown,
    )
}

/// A member as the page shows them.
pub(crate) struct MemberLine {
    pub user_id: i64,
    pub email: String,
    pub role: &'static str,
    pub me: bool,
}

/// An open invitation.
pub(crate) struct InvitationLine {
    pub id: i64,
    pub email: String,
    pub role: &'static str,
    pub expires: String,
}

#[derive(Template)]
#[template(path = "dashboard/team.html")]
struct TeamPage {
    nav: Option<Nav>,
    flash: Option<Flash>,
    members: Vec<MemberLine>,
    invitations: Vec<InvitationLine>,
    roles: [&'static str; 4],
    created: Option<InvitationView>,
    can: Can,
    csrf: String,
}

/// `GET /team`.
pub(crate) async fn team(
    AxumState(state): AxumState<Arc<State>>,
    viewer: Viewer,
    headers: HeaderMap,
) -> Response {
    team_page(&state, &viewer, Some(&headers), None).await
}

/// The team page, with a just-created invitation shown once.
pub(crate) async fn team_page(
    state: &Arc<State>,
    viewer: &Viewer,
    headers: Option<&HeaderMap>,
    created: Option<InvitationView>,
) -> Response {
    let (nav, flash) = match headers {
        Some(h) => chrome(viewer, h, "team"),
        None => (Some(viewer.nav("team")), None),
    };
    let shown = flash.is_some();
    let can = viewer.can();
    let members = try_api!(org::members(AxumState(state.clone()), viewer.auth()).await)
        .0
        .into_iter()
        .map(|m| MemberLine {
            me: m.user_id == viewer.principal.user_id,
            user_id: m.user_id,
            email: m.email,
            role: m.role.as_str(),
        })
        .collect();
    // Invitations are the administrators' business (the API says so too).
    let invitations = if can.admin {
        try_api!(invitations::list(AxumState(state.clone()), viewer.auth()).await)
            .0
            .into_iter()
            .map(|i| InvitationLine {
                id: i.id,
                email: i.email,
                role: i.role.as_str(),
                expires: view::time(i.expires_at),
            })
            .collect()
    } else {
        Vec::new()
    };
    let page = TeamPage {
        nav,
        flash,
        members,
        invitations,
        roles: [
            Role::Owner.as_str(),
            Role::Admin.as_str(),
            Role::Member.as_str(),
            Role::Viewer.as_str(),
        ],
        created,
        can,
        csrf: viewer.csrf.clone(),
    };
    html(StatusCode::OK, &page, shown)
}

/// An agent instance of an environment.
pub(crate) struct AgentLine {
    pub instance: String,
    pub status: String,
    pub class: &'static str,
    pub version: String,
    pub uptime: String,
    pub node: String,
    pub checks: String,
}

/// A stored production webhook.
pub(crate) struct EventLine {
    pub id: i64,
    pub received: String,
    pub provider: String,
    pub kind: String,
    pub verified: bool,
    pub delivery: String,
    pub replay: String,
}

/// One audit entry on the production page.
pub(crate) struct AccessLine {
    pub at: String,
    pub who: String,
    pub kind: String,
    pub outcome: String,
    pub class: &'static str,
    pub detail: String,
}

/// One environment on the production page.
pub(crate) struct EnvBlock {
    pub name: String,
    pub summary: String,
    pub agents: Vec<AgentLine>,
    pub events: Vec<EventLine>,
    pub events_shown: bool,
    /// Who looked at what here (the viewer's own entries unless an admin).
    pub access: Vec<AccessLine>,
}

/// The last audit entries of one environment, as the audit API gives them
/// to the viewer (the organization's for an admin, otherwise their own).
async fn recent_access(state: &Arc<State>, viewer: &Viewer, env: &str) -> Vec<AccessLine> {
    let q = Query(crate::api::audit::AuditParams {
        environment: Some(env.to_string()),
        limit: Some(10),
        ..Default::default()
    });
    let Ok(page) = crate::api::audit::list(AxumState(state.clone()), viewer.auth(), q).await else {
        return Vec::new();
    };
    page.0
        .entries
        .into_iter()
        .map(|e| AccessLine {
            at: view::time(e.at),
            who: e.user_email.unwrap_or_else(|| "—".into()),
            class: match e.outcome.as_str() {
                "ok" => "s2",
                "failed" => "s5",
                _ => "s4",
            },
            outcome: e.outcome,
            kind: e.kind,
            detail: crate::audit::summary(&e.detail),
        })
        .collect()
}

#[derive(Template)]
#[template(path = "dashboard/production.html")]
struct ProductionPage {
    nav: Option<Nav>,
    flash: Option<Flash>,
    envs: Vec<EnvBlock>,
}

/// `GET /production`: environments, their agents, health and webhooks.
pub(crate) async fn production(
    AxumState(state): AxumState<Arc<State>>,
    viewer: Viewer,
    headers: HeaderMap,
) -> Response {
    let (nav, flash) = chrome(&viewer, &headers, "production");
    let shown = flash.is_some();
    let envs = try_api!(projects::list(AxumState(state.clone()), viewer.auth()).await).0;
    let mut blocks = Vec::with_capacity(envs.len());
    for env in envs {
        let name = format!("{}/{}", env.project, env.name);
        let path = Path((env.project.clone(), env.name.clone()));
        let (summary, agents) = environment_health(&state, &viewer, path).await;
        let events_shown = viewer.principal.allows(Scope::WebhooksRead);
        let events = if events_shown {
            let q = Query(deliveries::ListParams {
                before: None,
                limit: Some(10),
            });
            let path = Path((env.project.clone(), env.name.clone()));
            try_api!(deliveries::list(AxumState(state.clone()), viewer.auth(), path, q).await)
                .0
                .into_iter()
                .map(|e| EventLine {
                    id: e.id,
                    received: view::time(e.received_at),
                    provider: format!("{:?}", e.provider).to_lowercase(),
                    kind: e.event_type.unwrap_or_else(|| "—".into()),
                    verified: e.verified,
                    delivery: match e.delivered_status {
                        Some(s) => format!("delivered to you, your app answered {s}"),
                        None => "not delivered to you yet".into(),
                    },
                    replay: format!("beam webhook replay {} --project {name}", e.id),
                })
                .collect()
        } else {
            Vec::new()
        };
        let access = recent_access(&state, &viewer, &name).await;
        blocks.push(EnvBlock {
            name,
            summary,
            agents,
            events,
            events_shown,
            access,
        });
    }
    let page = ProductionPage {
        nav,
        flash,
        envs: blocks,
    };
    html(StatusCode::OK, &page, shown)
}

/// The health summary and agent instances of one environment (the API's
/// health call, which asks every instance; bounded by its own timeouts).
async fn environment_health(
    state: &Arc<State>,
    viewer: &Viewer,
    path: Path<(String, String)>,
) -> (String, Vec<AgentLine>) {
    if !viewer.principal.allows(Scope::LogsRead) {
        return ("your role cannot read production health".into(), Vec::new());
    }
    let resp = match crate::api::parity::health(AxumState(state.clone()), viewer.auth(), path).await
    {
        Ok(r) => r,
        Err(e) => return (e.message, Vec::new()),
    };
    let body = match axum::body::to_bytes(resp.into_body(), 1 << 20).await {
        Ok(b) => b,
        Err(_) => return ("the health report could not be read".into(), Vec::new()),
    };
    let report: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let agents = report["instances"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|i| {
                    let status = i["status"].as_str().unwrap_or("unknown").to_string();
                    AgentLine {
                        instance: i["instance"].as_str().unwrap_or("").to_string(),
                        class: match status.as_str() {
                            "pass" => "s2",
                            "warn" => "s4",
                            _ => "s5",
                        },
                        status,
                        version: i["version"].as_str().unwrap_or("—").to_string(),
                        uptime: i["uptime_s"].as_u64().map_or("—".into(), view::uptime),
                        node: i["node"].as_str().unwrap_or("this node").to_string(),
                        checks: i["checks"]
                            .as_array()
                            .map(|c| {
                                c.iter()
                                    .map(|c| {
                                        format!(
                                            "{} {}",
                                            c["name"].as_str().unwrap_or("?"),
                                            c["status"].as_str().unwrap_or("?")
                                        )
                                    })
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            })
                            .or_else(|| i["error"].as_str().map(str::to_string))
                            .unwrap_or_default(),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    (report["summary"].as_str().unwrap_or("").to_string(), agents)
}

/// A live session of the viewer.
pub(crate) struct SessionLine {
    pub id: i64,
    pub created: String,
    pub last_used: String,
    pub expires: String,
    pub this: bool,
}

#[derive(Template)]
#[template(path = "dashboard/account.html")]
struct AccountPage {
    nav: Option<Nav>,
    flash: Option<Flash>,
    sessions: Vec<SessionLine>,
    csrf: String,
}

/// `GET /account`: the viewer's sessions, each of which can be signed out.
pub(crate) async fn account(
    AxumState(state): AxumState<Arc<State>>,
    viewer: Viewer,
    headers: HeaderMap,
) -> Response {
    let (nav, flash) = chrome(&viewer, &headers, "account");
    let shown = flash.is_some();
    let rows = try_api!(
        state
            .store
            .list_sessions(viewer.principal.user_id, now_ms())
            .await
            .map_err(ApiError::from)
    );
    let sessions = rows
        .into_iter()
        .map(|t| SessionLine {
            id: t.id,
            this: t.id == viewer.principal.token_id,
            created: view::time(t.created_at),
            last_used: view::time_or(t.last_used_at, "—"),
            expires: view::time_or(t.expires_at, "never"),
        })
        .collect();
    let page = AccountPage {
        nav,
        flash,
        sessions,
        csrf: viewer.csrf.clone(),
    };
    html(StatusCode::OK, &page, shown)
}
