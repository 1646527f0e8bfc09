//! The dashboard over HTTP, as a browser (or an attacker's page) sends it:
//! sign-in and the cookie's flags, sign-out, the one-click `--dev` link,
//! CSRF refusals, a viewer forcing admin actions, and which hosts serve it.

use http::StatusCode;
use serde_json::json;

use crate::support::*;

const PASSWORD: &str = "correct horse battery";

/// The organization id of `session`'s user.
async fn org_of(server: &TestServer, session: &str) -> i64 {
    server
        .api("GET", "/api/org", Some(session), None)
        .await
        .json["id"]
        .as_i64()
        .unwrap()
}

/// `email` as a `role` member of `admin`'s organization (no mail: the admin
/// passes the invitation on); the invitee's session and user id.
pub(super) async fn member_of(
    server: &TestServer,
    admin: &str,
    email: &str,
    role: &str,
) -> (String, i64) {
    let session = server.user(email).await;
    let r = server
        .api(
            "POST",
            "/api/org/invitations",
            Some(admin),
            Some(json!({ "email": email, "role": role })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let invite = r.json["token"].as_str().unwrap().to_string();
    let r = server
        .api(
            "POST",
            "/api/invitations/accept",
            Some(&session),
            Some(json!({ "token": invite })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    (session, r.json["user_id"].as_i64().unwrap())
}

/// A dashboard cookie of `email` acting in organization `org`.
async fn cookie_in(server: &TestServer, email: &str, org: i64) -> String {
    let cookie = dashboard_sign_in(server, email, PASSWORD).await;
    let home = Visit::get(server, "/", Some(&cookie)).send().await;
    let form = format!("csrf={}&org={org}", home.csrf());
    let switched = Visit::post(server, "/switch", Some(&cookie), &form)
        .send()
        .await;
    assert_eq!(switched.status, StatusCode::SEE_OTHER, "{switched:?}");
    switched
        .session_cookie()
        .expect("a session in the other organization")
}

#[tokio::test]
async fn signing_in_sets_a_strict_cookie_and_signing_out_ends_the_session() {
    let server = TestServer::start().await;
    server.user("alice@example.com").await;

    // Without a session every page goes to the sign-in form.
    let page = Visit::get(&server, "/tunnels", None).send().await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/login?reason=signin&next=/tunnels");
    let login = Visit::get(&server, "/login?reason=signin", None)
        .send()
        .await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(login.body.contains("Sign in to beam"), "{}", login.body);
    let csp = login.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(login.headers["x-frame-options"], "DENY");
    assert_eq!(login.headers["x-content-type-options"], "nosniff");

    // A wrong password: the form again, with the error, and no cookie.
    let wrong = Visit::post(
        &server,
        "/login",
        None,
        "email=alice%40example.com&password=wrong+password+here",
    )
    .send()
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(
        wrong.body.contains("Wrong e-mail or password."),
        "{}",
        wrong.body
    );
    assert!(
        wrong.body.contains(r#"value="alice@example.com""#),
        "the address is kept"
    );
    assert!(wrong.session_cookie().is_none());

    // A sign-in posted from another site is refused before the password is looked at.
    let forged = Visit {
        headers: &[("origin", "http://evil.example")],
        ..Visit::post(
            &server,
            "/login",
            None,
            "email=alice%40example.com&password=correct+horse+battery",
        )
    }
    .send()
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(
        forged.body.contains("sent from another site"),
        "{}",
        forged.body
    );

    // The right password: a session cookie, HttpOnly and SameSite=Strict,
    // without Secure over plain HTTP.
    let ok = Visit::post(
        &server,
        "/login",
        None,
        "email=alice%40example.com&password=correct+horse+battery&next=%2Ftokens",
    )
    .send()
    .await;
    assert_eq!(
        (ok.status, ok.location()),
        (StatusCode::SEE_OTHER, "/tokens")
    );
    let set = ok
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("beam_session="))
        .unwrap();
    assert!(set.starts_with("beam_session=beamsess_"), "{set}");
    for flag in ["; Path=/", "; HttpOnly", "; SameSite=Strict", "; Max-Age="] {
        assert!(set.contains(flag), "{flag} missing: {set}");
    }
    assert!(!set.contains("Secure") && !set.contains("Domain"), "{set}");
    let cookie = ok.session_cookie().unwrap();
    let home = Visit::get(&server, "/", Some(&cookie)).send().await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.body.contains("alice@example.com"), "{}", home.body);

    // Over HTTPS the cookie is `__Host-` prefixed and Secure, and the plain
    // one is not accepted there.
    let tls = Visit {
        tls: true,
        ..Visit::post(
            &server,
            "/login",
            None,
            "email=alice%40example.com&password=correct+horse+battery",
        )
    }
    .send()
    .await;
    assert_eq!(tls.status, StatusCode::SEE_OTHER, "{tls:?}");
    let secure = tls
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("__Host-beam_session="))
        .expect("a __Host- cookie over HTTPS");
    assert!(
        secure.ends_with("; Secure") && secure.contains("; HttpOnly; SameSite=Strict"),
        "{secure}"
    );
    let plain_over_tls = Visit {
        tls: true,
        ..Visit::get(&server, "/", Some(&cookie))
    }
    .send()
    .await;
    assert_eq!(plain_over_tls.status, StatusCode::SEE_OTHER);

    // Signing out revokes the session: the old cookie leads to sign-in,
    // which says why.
    let out = Visit::post(
        &server,
        "/logout",
        Some(&cookie),
        &format!("csrf={}", home.csrf()),
    )
    .send()
    .await;
    assert_eq!(
        (out.status, out.location()),
        (StatusCode::SEE_OTHER, "/login?reason=signedout")
    );
    assert!(
        out.set_cookies()
            .iter()
            .any(|c| c.starts_with("beam_session=;") && c.contains("Max-Age=0"))
    );
    let after = Visit::get(&server, "/", Some(&cookie)).send().await;
    assert_eq!(after.location(), "/login?reason=expired");
    let told = Visit::get(&server, after.location(), None).send().await;
    assert!(
        told.body.contains("Your session has ended"),
        "{}",
        told.body
    );
    let bearer = server
        .api(
            "GET",
            "/api/me",
            Some(cookie.split('=').nth(1).unwrap()),
            None,
        )
        .await;
    assert_eq!(
        bearer.status,
        StatusCode::UNAUTHORIZED,
        "the session is revoked for the API too"
    );
}

#[tokio::test]
async fn the_dev_sign_in_link_works_once() {
    let server = TestServer::start().await;
    let first = Visit::get(&server, &server.sign_in, None).send().await;
    assert_eq!(
        (first.status, first.location()),
        (StatusCode::SEE_OTHER, "/")
    );
    let cookie = first.session_cookie().expect("signed in");
    let home = Visit::get(&server, "/", Some(&cookie)).send().await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(
        home.body.contains("operator@beam.invalid") && home.body.contains(">owner<"),
        "{}",
        home.body
    );
    let again = Visit::get(&server, &server.sign_in, None).send().await;
    assert_eq!(again.status, StatusCode::GONE);
    assert!(
        again.body.contains("This sign-in link no longer works"),
        "{}",
        again.body
    );
    assert!(again.session_cookie().is_none());
    let guessed = Visit::get(&server, "/signin/beamlink_guess", None)
        .send()
        .await;
    assert_eq!(guessed.status, StatusCode::GONE);
}

#[tokio::test]
async fn a_post_without_its_csrf_token_changes_nothing() {
    let server = TestServer::start().await;
    let alice = server.user("alice@example.com").await;
    let cookie = dashboard_sign_in(&server, "alice@example.com", PASSWORD).await;
    let other = dashboard_sign_in(&server, "alice@example.com", PASSWORD).await;
    let csrf = Visit::get(&server, "/tokens", Some(&cookie))
        .send()
        .await
        .csrf();
    let other_csrf = Visit::get(&server, "/tokens", Some(&other))
        .send()
        .await
        .csrf();
    assert_ne!(csrf, other_csrf, "each session has its own token");
    let tokens = || async {
        server
            .api("GET", "/api/tokens", Some(&alice), None)
            .await
            .json
            .as_array()
            .unwrap()
            .len()
    };
    let form = |csrf: &str| format!("csrf={csrf}&description=ci&scope=tunnels%3Aread&expires=30");

    for (what, form) in [
        ("no token", form("")),
        ("another session's token", form(&other_csrf)),
    ] {
        let r = Visit::post(&server, "/tokens", Some(&cookie), &form)
            .send()
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{what}");
        assert!(
            r.body.contains("This form has expired") && r.body.contains("nothing was changed"),
            "{what}: {}",
            r.body
        );
    }
    // The right token from another site (a browser says so) is refused too.
    let r = Visit {
        headers: &[("sec-fetch-site", "cross-site")],
        ..Visit::post(&server, "/tokens", Some(&cookie), &form(&csrf))
    }
    .send()
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(tokens().await, 0, "no refused post created a token");

    // With its token the form works: the new token is on this answer only.
    let r = Visit::post(&server, "/tokens", Some(&cookie), &form(&csrf))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let at = r.body.find(r#"<code id="new-token">"#).unwrap() + r#"<code id="new-token">"#.len();
    let token = &r.body[at..at + 48];
    assert!(token.starts_with("beam_"), "{token}");
    assert_eq!(
        server
            .api("GET", "/api/tunnels", Some(token), None)
            .await
            .status,
        StatusCode::OK
    );
    let list = Visit::get(&server, "/tokens", Some(&cookie)).send().await;
    assert!(
        list.body.contains(">ci<") && !list.body.contains(token),
        "shown once"
    );
    assert_eq!(tokens().await, 1);

    // The JSON API reads with the cookie (the charts do), but changes nothing with it.
    let read = Visit::get(&server, "/api/tunnels", Some(&cookie))
        .send()
        .await;
    assert_eq!(read.status, StatusCode::OK);
    let write = Visit {
        headers: &[("content-type", "application/json")],
        method: "POST",
        ..Visit::get(&server, "/api/tokens", Some(&cookie))
    }
    .send()
    .await;
    assert_eq!(write.status, StatusCode::UNAUTHORIZED, "{}", write.body);
    assert_eq!(tokens().await, 1);
}

#[tokio::test]
async fn a_viewer_sees_no_admin_actions_and_is_refused_when_forcing_them() {
    let server = TestServer::start().await;
    let origin = Origin::start().await;
    let alice = server.user("alice@example.com").await;
    let alice_org = org_of(&server, &alice).await;
    let (_, bob_id) = member_of(&server, &alice, "bob@example.com", "viewer").await;
    let alice_id = server.api("GET", "/api/me", Some(&alice), None).await.json["user"]["id"]
        .as_i64()
        .unwrap();
    let t = server
        .api_token(&alice, &["tunnels:write", "tunnels:read"])
        .await;
    let mut client = TestClient::start(server.client_with(
        &t,
        beam_proto::TunnelRequest::Http {
            subdomain: None,
            domain: None,
        },
        origin.addr,
    ));
    let w = client.connected().await;
    let tunnel_id = server.tunnel_row(&t, &w.name).await.unwrap()["id"]
        .as_i64()
        .unwrap();

    let bob = cookie_in(&server, "bob@example.com", alice_org).await;
    let team = Visit::get(&server, "/team", Some(&bob)).send().await;
    assert_eq!(team.status, StatusCode::OK);
    assert!(
        team.body
            .contains(r#"<span class="muted" id="who-role">viewer</span>"#),
        "{}",
        team.body
    );
    assert!(
        team.body.contains("alice@example.com") && team.body.contains("Only owners and admins")
    );
    for button in ["Change role", "Remove", "Invite", "/team/members/"] {
        assert!(!team.body.contains(button), "a viewer sees no '{button}'");
    }
    let tunnels = Visit::get(&server, "/tunnels", Some(&bob)).send().await;
    assert!(tunnels.body.contains(&w.name), "a viewer reads the list");
    assert!(
        !tunnels.body.contains("/stop") && !tunnels.body.contains(">Pause<"),
        "no tunnel actions"
    );

    // Forced posts are refused by the API's own checks and change nothing.
    let csrf = team.csrf();
    let r = Visit::post(
        &server,
        &format!("/team/members/{alice_id}/role"),
        Some(&bob),
        &format!("csrf={csrf}&role=viewer"),
    )
    .send()
    .await;
    assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, "/team"));
    let flash = Visit::get(
        &server,
        "/team",
        Some(&format!(
            "{bob}; {}",
            r.set_cookies()[0].split(';').next().unwrap()
        )),
    )
    .send()
    .await;
    assert!(
        flash.body.contains("lacks the &#39;admin&#39; scope"),
        "{}",
        flash.body
    );
    let members = server
        .api("GET", "/api/org/members", Some(&alice), None)
        .await;
    assert!(
        members
            .json
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["user_id"] == alice_id && m["role"] == "owner")
    );
    let r = Visit::post(
        &server,
        &format!("/tunnels/{tunnel_id}/stop"),
        Some(&bob),
        &format!("csrf={csrf}"),
    )
    .send()
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(
        r.set_cookies()[0].contains("tunnels%3Awrite"),
        "{:?}",
        r.set_cookies()
    );
    assert_eq!(
        server.tunnel_row(&t, &w.name).await.unwrap()["status"],
        "connected"
    );
    let r = Visit::post(
        &server,
        &format!("/team/members/{bob_id}/remove"),
        Some(&bob),
        &format!("csrf={csrf}"),
    )
    .send()
    .await;
    assert!(
        r.set_cookies()[0].contains("admin"),
        "{:?}",
        r.set_cookies()
    );
    client.stop().await;
}

#[tokio::test]
async fn the_dashboard_is_only_on_the_api_host() {
    let server = TestServer::start().await;
    server.user("alice@example.com").await;
    // A tunnel's host (none connected): the edge's answer, not the dashboard.
    let host = server.host("demo");
    let on_tunnel = Visit {
        host: Some(&host),
        ..Visit::get(&server, "/login", None)
    }
    .send()
    .await;
    assert_eq!(on_tunnel.status, StatusCode::NOT_FOUND);
    assert!(
        !on_tunnel.body.contains("Sign in to beam"),
        "{}",
        on_tunnel.body
    );
    let posted = Visit {
        host: Some(&host),
        ..Visit::post(
            &server,
            "/login",
            None,
            "email=alice%40example.com&password=correct+horse+battery",
        )
    }
    .send()
    .await;
    assert!(posted.session_cookie().is_none());
    // `api.<domain>` is the API host too.
    let api_host = format!("api.localhost:{}", server.public.port());
    let on_api = Visit {
        host: Some(&api_host),
        ..Visit::get(&server, "/login", None)
    }
    .send()
    .await;
    assert!(on_api.body.contains("Sign in to beam"));
    // Unknown pages are a page; unknown API routes stay JSON.
    let missing = Visit::get(&server, "/nope", None).send().await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.body.contains("Page not found"), "{}", missing.body);
    let api = server.api("GET", "/api/nope", None, None).await;
    assert_eq!(
        (api.status, api.code()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    // Assets carry the same headers and revalidate by ETag.
    let js = Visit::get(&server, "/assets/dash.js", None).send().await;
    assert_eq!(js.status, StatusCode::OK);
    assert!(
        js.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    let etag = js.headers["etag"].to_str().unwrap().to_string();
    let again = Visit {
        headers: &[("if-none-match", &etag)],
        ..Visit::get(&server, "/assets/dash.js", None)
    }
    .send()
    .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    let license = Visit::get(&server, "/assets/uplot.LICENSE.txt", None)
        .send()
        .await;
    assert!(license.body.contains("Leon Sorokin"));
}

#[tokio::test]
async fn an_expired_session_goes_to_sign_in_and_ends_the_live_stream() {
    let server = TestServer::start().await;
    let alice = server.user("alice@example.com").await;
    let cookie = dashboard_sign_in(&server, "alice@example.com", PASSWORD).await;
    // The live stream answers with events, then ends once the session is revoked.
    let stream = tokio::net::TcpStream::connect(server.public).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("/events/tunnels")
        .header("host", format!("localhost:{}", server.public.port()))
        .header("cookie", &cookie)
        .body(full(""))
        .unwrap();
    let resp = within("stream", sender.send_request(req)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.into_body();
    // The dashboard session is signed out through the API (as from another tab).
    let token = cookie.split('=').nth(1).unwrap().to_string();
    let r = server
        .api("POST", "/api/auth/logout", Some(&token), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let mut seen = String::new();
    within("the stream's end", async {
        while let Some(b) = next_data(&mut body).await {
            seen.push_str(&String::from_utf8_lossy(&b));
        }
    })
    .await;
    assert!(seen.contains("event: expired"), "{seen}");
    let page = Visit::get(&server, "/", Some(&cookie)).send().await;
    assert_eq!(page.location(), "/login?reason=expired");
    // The API session of Alice is untouched.
    assert_eq!(
        server
            .api("GET", "/api/me", Some(&alice), None)
            .await
            .status,
        StatusCode::OK
    );
}
