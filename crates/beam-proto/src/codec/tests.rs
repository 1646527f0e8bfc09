//! Codec tests: round trips, caps and malformed input (proptest).

use proptest::prelude::*;

use super::*;
use crate::{ErrorCode, Hello, Refusal, Reply, Secret, TunnelRequest};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

#[test]
fn hello_round_trips() {
    rt().block_on(async {
        let hello = Hello {
            token: Secret::new("beam_abc"),
            tunnel: TunnelRequest::Http {
                subdomain: Some("demo".into()),
                domain: None,
            },
            lease: None,
            client: "test".into(),
            http1_streams: true,
            protection: crate::Protection {
                cors: vec!["https://a.example".into()],
                ..Default::default()
            },
        };
        let mut buf = Vec::new();
        write_preamble(&mut buf).await.unwrap();
        write_frame(&mut buf, &hello).await.unwrap();
        let mut r = buf.as_slice();
        read_preamble(&mut r).await.unwrap();
        let back: Hello = read_frame(&mut r).await.unwrap();
        assert_eq!(back.token.expose(), "beam_abc");
        assert_eq!(back.tunnel, hello.tunnel);
    });
}

#[test]
fn oversize_length_is_refused_before_allocation() {
    rt().block_on(async {
        let mut buf = Vec::new();
        buf.extend_from_slice(&(u32::MAX).to_be_bytes());
        let err = read_frame::<_, Reply>(&mut buf.as_slice())
            .await
            .unwrap_err();
        assert!(
            matches!(err, ProtoError::TooLarge { len, .. } if len == u32::MAX as usize),
            "{err}"
        );
    });
}

#[test]
fn bad_magic_and_version_are_distinguished() {
    rt().block_on(async {
        let err = read_preamble(&mut &b"GET / HTTP/1.1\r\n"[..])
            .await
            .unwrap_err();
        assert!(matches!(err, ProtoError::BadMagic));
        let err = read_preamble(&mut &b"BEAM\x09"[..]).await.unwrap_err();
        assert!(matches!(err, ProtoError::Version { got: 9 }));
        assert!(err.to_string().contains("version 9 is not supported"));
    });
}

#[test]
fn refusal_codes_are_snake_case_on_the_wire() {
    let r = Reply::Refused(Refusal {
        code: ErrorCode::TokenExpired,
        message: "expired".into(),
        retry_after_secs: None,
    });
    let json = serde_json::to_string(&r).unwrap();
    assert_eq!(
        json,
        r#"{"reply":"refused","code":"token_expired","message":"expired"}"#
    );
}

proptest! {
    // Any byte string fed as a frame yields an error or a value, never a panic,
    // and never an allocation beyond the cap.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        rt().block_on(async {
            let _ = read_frame::<_, Hello>(&mut bytes.as_slice()).await;
            let _ = read_preamble(&mut bytes.as_slice()).await;
        });
    }

    #[test]
    fn truncated_frames_are_errors(sub in "[a-z]{0,20}", cut in 0usize..40) {
        rt().block_on(async {
            let hello = Hello { token: Secret::new("t"), tunnel: TunnelRequest::Http { subdomain: Some(sub), domain: None }, lease: None, client: String::new(), protection: Default::default(), http1_streams: false };
            let mut buf = Vec::new();
            write_frame(&mut buf, &hello).await.unwrap();
            let cut = cut.min(buf.len().saturating_sub(1));
            prop_assert!(read_frame::<_, Hello>(&mut &buf[..cut]).await.is_err());
            Ok(())
        })?;
    }
}
