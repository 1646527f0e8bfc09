//! A real DNS server for tests: answers TXT and A queries over UDP from maps the
//! test edits (add a record, remove it), using hickory's wire format.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, TXT};
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::net::UdpSocket;

/// TXT records by lower-case name without the trailing dot.
pub type Zone = Arc<Mutex<HashMap<String, Vec<String>>>>;

/// A records by lower-case name.
pub type Hosts = Arc<Mutex<HashMap<String, std::net::Ipv4Addr>>>;

/// A running DNS server.
pub struct DnsServer {
    pub addr: SocketAddr,
    pub zone: Zone,
    pub hosts: Hosts,
}

impl DnsServer {
    pub async fn start() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let zone: Zone = Arc::default();
        let hosts: Hosts = Arc::default();
        let (z, h) = (zone.clone(), hosts.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                let Ok(query) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let answer = respond(&query, &z, &h);
                if let Ok(bytes) = answer.to_vec() {
                    let _ = socket.send_to(&bytes, peer).await;
                }
            }
        });
        Self { addr, zone, hosts }
    }

    /// Points `name` at `ip` (A record).
    pub fn set_a(&self, name: &str, ip: std::net::Ipv4Addr) {
        self.hosts
            .lock()
            .unwrap()
            .insert(name.to_ascii_lowercase(), ip);
    }

    pub fn set(&self, name: &str, values: &[&str]) {
        self.zone.lock().unwrap().insert(
            name.to_ascii_lowercase(),
            values.iter().map(|v| v.to_string()).collect(),
        );
    }

    pub fn remove(&self, name: &str) {
        self.zone.lock().unwrap().remove(&name.to_ascii_lowercase());
    }
}

fn respond(query: &Message, zone: &Zone, hosts: &Hosts) -> Message {
    let mut m = Message::new();
    m.set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_op_code(query.op_code())
        .set_recursion_desired(query.recursion_desired())
        .set_recursion_available(true)
        .set_authoritative(true);
    m.add_queries(query.queries().to_vec());
    let Some(q) = query.queries().first() else {
        m.set_response_code(ResponseCode::FormErr);
        return m;
    };
    let name = q
        .name()
        .to_ascii()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if let Some(ip) = hosts.lock().unwrap().get(&name) {
        // Other types (AAAA, CAA) of a known host: an empty answer, not NXDOMAIN.
        if q.query_type() == RecordType::A {
            m.add_answer(Record::from_rdata(q.name().clone(), 1, RData::A(A(*ip))));
        }
        return m;
    }
    let zone = zone.lock().unwrap();
    match zone.get(&name) {
        Some(values) if q.query_type() == RecordType::TXT => {
            for v in values {
                m.add_answer(Record::from_rdata(
                    q.name().clone(),
                    1,
                    RData::TXT(TXT::new(vec![v.clone()])),
                ));
            }
        }
        Some(_) => {}
        None => {
            m.set_response_code(ResponseCode::NXDomain);
        }
    }
    m
}
