//! Free ports on 127.0.0.1 for the cluster's servers and processes.

use std::net::{Ipv4Addr, TcpListener};

/// Ports taken from the system one by one and held until [`Ports::release`], so that no two
/// of them are the same.
#[derive(Debug, Default)]
pub(crate) struct Ports {
    held: Vec<TcpListener>,
}

impl Ports {
    /// A free port on 127.0.0.1, distinct from those taken before.
    pub(crate) fn take(&mut self) -> std::io::Result<u16> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = listener.local_addr()?.port();
        self.held.push(listener);
        Ok(port)
    }

    /// Lets the ports go, for the servers and processes that will listen on them.
    pub(crate) fn release(self) {
        drop(self.held);
    }
}

/// Whether something accepts connections on `port` of 127.0.0.1.
pub(crate) async fn listening(port: u16) -> bool {
    tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await.is_ok()
}
