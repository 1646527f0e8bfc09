//! Raw TCP through `beam tcp`.

use beam_proto::{ErrorCode, TunnelRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_echo_through_the_tunnel() {
    let server = TestServer::start().await;
    let echo = tcp_echo().await;
    let mut client =
        TestClient::start(server.client_config(TunnelRequest::Tcp { port: None }, echo));
    let w = client.connected().await;
    let port: u16 = w.name.parse().unwrap();
    assert!(server.cfg.tcp_ports.contains(&port));
    assert_eq!(w.public_url, format!("tcp://127.0.0.1:{port}"));

    // Several connections at once, each with its own data.
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        tasks.push(tokio::spawn(async move {
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            let data: Vec<u8> = (0..(1 << 20)).map(|j: u32| (j as u8) ^ i).collect();
            let (mut r, mut wr) = s.split();
            let write = async {
                wr.write_all(&data).await.unwrap();
                wr.shutdown().await.unwrap();
            };
            let mut back = Vec::new();
            let read = r.read_to_end(&mut back);
            let (_, n) = tokio::join!(write, read);
            n.unwrap();
            assert_eq!(back, data);
        }));
    }
    for t in tasks {
        within("echo", t).await.unwrap();
    }
    assert_eq!(server.metric("beam_tunnels_active{protocol=\"tcp\"}"), 1.0);
}

#[tokio::test]
async fn requested_port_outside_the_range_is_refused_clearly() {
    let server = TestServer::start().await;
    let echo = tcp_echo().await;
    let outside = server.cfg.tcp_ports.start() - 1;
    let client = TestClient::start(server.client_config(
        TunnelRequest::Tcp {
            port: Some(outside),
        },
        echo,
    ));
    let r = client.refused().await;
    assert_eq!(r.code, ErrorCode::PortUnavailable);
    assert!(
        r.message.contains("outside this server's TCP range"),
        "{}",
        r.message
    );
}

#[tokio::test]
async fn tcp_visitor_is_closed_when_the_local_port_is_down() {
    let server = TestServer::start().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut client =
        TestClient::start(server.client_config(TunnelRequest::Tcp { port: None }, closed));
    let w = client.connected().await;
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", w.name.parse::<u16>().unwrap()))
        .await
        .unwrap();
    let mut buf = Vec::new();
    let n = within("close", s.read_to_end(&mut buf)).await.unwrap_or(0);
    assert_eq!(n, 0, "the visitor connection is closed, not left hanging");
}
