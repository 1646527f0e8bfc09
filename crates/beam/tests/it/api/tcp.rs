//! TCP tunnels through the API: pause and byte counts.

use serde_json::json;

use crate::support::*;

/// Echoes `data` through a TCP tunnel port; `None` when the server closed the
/// connection without forwarding anything.
async fn echo_through(port: u16, data: &[u8]) -> Option<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    // A closed connection may already refuse the write; that is the answer too.
    if s.write_all(data).await.is_err() || s.shutdown().await.is_err() {
        return None;
    }
    let mut back = Vec::new();
    let _ = within("echo", s.read_to_end(&mut back)).await;
    (!back.is_empty()).then_some(back)
}

crate::both!(
    tcp_tunnels_obey_pause_and_count_their_bytes,
    |backend| async move {
        let server = TestServer::start_on(backend, |_| {}).await;
        let echo = tcp_echo().await;
        let alice = server.user("alice@example.com").await;
        let cli = server
            .api_token(&alice, &["tunnels:write", "tunnels:read"])
            .await;
        let mut client = TestClient::start(server.client_with(
            &cli,
            beam_proto::TunnelRequest::Tcp { port: None },
            echo,
        ));
        let port: u16 = client.connected().await.name.parse().unwrap();
        let data = vec![7u8; 10_000];
        assert_eq!(echo_through(port, &data).await.as_deref(), Some(&data[..]));

        // The bytes count for the tunnel (and so for the organization's bandwidth).
        let id = server
            .api("GET", "/api/tunnels", Some(&cli), None)
            .await
            .json[0]["id"]
            .as_i64()
            .unwrap();
        let url = format!("/api/analytics/tunnels/{id}?period=1h");
        eventually("tcp bytes counted", || async {
            let a = server.api("GET", &url, Some(&cli), None).await.json;
            (a["bytes_in"] == 10_000 && a["bytes_out"] == 10_000).then_some(())
        })
        .await;

        // Paused: connections are closed without reaching the local service.
        let path = format!("/api/tunnels/{id}");
        let r = server
            .api("PUT", &path, Some(&cli), Some(json!({ "paused": true })))
            .await;
        assert_eq!(r.json["status"], "paused");
        assert_eq!(echo_through(port, &data).await, None);
        server
            .api("PUT", &path, Some(&cli), Some(json!({ "paused": false })))
            .await;
        assert_eq!(echo_through(port, &data).await.as_deref(), Some(&data[..]));
        client.shutdown.cancel();
    }
);
