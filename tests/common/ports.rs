//! Listener ports for the daemons the tests and benches start (`benches/support` includes
//! this file too).

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    free_ports().0
}

/// Two distinct free TCP ports on 127.0.0.1 (the metrics and API listeners).
pub fn free_ports() -> (u16, u16) {
    let first = listener_port();
    let mut second = listener_port();
    while second == first {
        second = listener_port();
    }
    (first, second)
}

/// A free port below the kernel's ephemeral range (32768-60999 on Linux by default): a port
/// the kernel hands out for port 0 comes from that range, and before the daemon binds it the
/// local end of any outgoing connection (there are many in a test run) may take it ("Address
/// already in use"). Ports here are picked per process from its id and a counter, so tests
/// running at once in one process never pick the same one.
fn listener_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = std::process::id().wrapping_mul(7919);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 20_000 + base.wrapping_add(n.wrapping_mul(13)) % 12_000;
        let port = u16::try_from(port).unwrap_or(20_000);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
