//! The tunnel handshake as the server reads it from a peer it has not yet
//! authenticated (the preamble, then size-capped JSON frames: `Hello`), and
//! as a client reads the server's answer (`Reply`). No input may panic, hang
//! or allocate more than `MAX_FRAME`.
#![no_main]

use std::sync::OnceLock;

use beam_proto::{Hello, Reply};
use libfuzzer_sys::fuzz_target;

fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    rt().block_on(async {
        let mut r = data;
        if beam_proto::read_preamble(&mut r).await.is_ok() {
            // A peer may send several frames; stop at the first bad one.
            for _ in 0..4 {
                if beam_proto::read_frame::<_, Hello>(&mut r).await.is_err() {
                    break;
                }
            }
        }
        // Frames alone too, so the fuzzer need not find the magic first.
        let _ = beam_proto::read_frame::<_, Hello>(&mut &data[..]).await;
        let _ = beam_proto::read_frame::<_, Reply>(&mut &data[..]).await;
    });
});
