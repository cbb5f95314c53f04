//! `postmark-relay healthcheck [--url URL]`: one HTTP GET to the relay's own health listener
//! (`/readyz` on the `--metrics` address by default), so container images and orchestrators need
//! no curl. Exit 0 on `200`, 1 on anything else (another status, no answer, a timeout).
//!
//! Plain HTTP/1.0 over a blocking socket: no runtime, no TLS (the listener is local).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Why a probe failed, in words that name what was tried (a URL, a file, a token's request) and what
/// went wrong; used by `healthcheck`, the health listener's spool check and `check`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProbeError(pub String);

impl From<String> for ProbeError {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for ProbeError {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

/// How long connecting, and then the whole answer, may take.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// The most of an answer read.
const MAX_ANSWER: u64 = 64 * 1024;

/// The URL probed when none is given: `/readyz` on the health listener's address, with an
/// unspecified address (`0.0.0.0`, `[::]`) replaced by loopback.
pub fn default_url(metrics: Option<&str>) -> Result<String, ProbeError> {
    let Some(addr) = metrics.filter(|m| !m.is_empty()) else {
        return Err("no health listener is configured: set RELAY_METRICS (or --metrics, or `metrics` in the \
                    config file) to e.g. 127.0.0.1:9102, or give --url"
            .into());
    };
    let (host, port) = split_host_port(addr).ok_or_else(|| format!("the health listener {addr:?} is not HOST:PORT"))?;
    let host = match host {
        "0.0.0.0" | "" => "127.0.0.1",
        "::" => "::1",
        h => h,
    };
    let host = if host.contains(':') { format!("[{host}]") } else { host.to_owned() };
    Ok(format!("http://{host}:{port}/readyz"))
}

fn split_host_port(addr: &str) -> Option<(&str, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    Some((host, port.parse().ok()?))
}

/// What the probe got: the status code and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The body (lossy UTF-8).
    pub body: String,
}

/// GETs `url` (`http://host:port/path`).
pub fn get(url: &str, timeout: Duration) -> Result<Answer, ProbeError> {
    let rest = url.strip_prefix("http://").ok_or_else(|| format!("{url}: only http:// URLs can be probed"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = split_host_port(authority).ok_or_else(|| format!("{url}: expected http://HOST:PORT/PATH"))?;
    let addrs: Vec<SocketAddr> =
        (host, port).to_socket_addrs().map_err(|e| format!("{url}: cannot resolve {host}: {e}"))?.collect();
    let mut last_error = format!("{url}: {host} has no address");
    for addr in addrs {
        match ask(addr, authority, path, timeout) {
            Ok(answer) => return Ok(answer),
            Err(e) => last_error = format!("{url}: {e}"),
        }
    }
    Err(last_error.into())
}

fn ask(addr: SocketAddr, authority: &str, path: &str, timeout: Duration) -> Result<Answer, ProbeError> {
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\nUser-Agent: postmark-relay-healthcheck\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(|e| format!("cannot send the request: {e}"))?;
    let mut raw = Vec::new();
    stream.take(MAX_ANSWER).read_to_end(&mut raw).map_err(|e| format!("no complete answer: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .lines()
        .next()
        .filter(|l| l.starts_with("HTTP/"))
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ProbeError::from("the answer is not HTTP"))?;
    Ok(Answer { status, body: body.to_string() })
}

/// Runs the probe, writing what it found to `out`; returns the exit status (0 or 1).
pub fn run(url: &str, out: &mut dyn Write) -> u8 {
    match get(url, TIMEOUT) {
        Ok(answer) => {
            let _ = write!(out, "{url}: HTTP {}\n{}", answer.status, answer.body);
            u8::from(answer.status != 200)
        }
        Err(e) => {
            let _ = writeln!(out, "{e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_url_is_readyz_on_the_listener_with_loopback_for_any() {
        assert_eq!(default_url(Some("127.0.0.1:9102")).unwrap(), "http://127.0.0.1:9102/readyz");
        assert_eq!(default_url(Some("0.0.0.0:9102")).unwrap(), "http://127.0.0.1:9102/readyz");
        assert_eq!(default_url(Some("[::]:9102")).unwrap(), "http://[::1]:9102/readyz");
        assert_eq!(default_url(Some("localhost:1")).unwrap(), "http://localhost:1/readyz");
        assert!(default_url(None).unwrap_err().0.contains("RELAY_METRICS"));
        assert!(default_url(Some("9102")).is_err());
    }

    #[test]
    fn only_http_urls_with_a_port_are_probed() {
        assert!(get("https://127.0.0.1:1/readyz", TIMEOUT).unwrap_err().0.contains("only http://"));
        assert!(get("http://127.0.0.1/readyz", TIMEOUT).unwrap_err().0.contains("expected http://HOST:PORT/PATH"));
    }

    #[test]
    fn a_closed_port_is_a_failure_not_a_hang() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut out = Vec::new();
        assert_eq!(run(&format!("http://127.0.0.1:{port}/readyz"), &mut out), 1);
        assert!(String::from_utf8(out).unwrap().contains("cannot connect"));
    }

    #[test]
    fn the_status_decides_and_the_body_is_shown() {
        for (status, code) in [("200 OK", 0), ("503 Service Unavailable", 1)] {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let server = std::thread::spawn(move || {
                let (mut conn, _) = listener.accept().unwrap();
                let mut request = [0u8; 1024];
                let n = conn.read(&mut request).unwrap();
                let answer = format!("HTTP/1.1 {status}\r\nContent-Type: text/plain\r\n\r\nready\nqueue_depth 0\n");
                conn.write_all(answer.as_bytes()).unwrap();
                String::from_utf8_lossy(&request[..n]).into_owned()
            });
            let mut out = Vec::new();
            assert_eq!(run(&format!("http://{addr}/readyz"), &mut out), code);
            let request = server.join().unwrap();
            assert!(request.starts_with("GET /readyz HTTP/1.0\r\n"), "{request}");
            let out = String::from_utf8(out).unwrap();
            assert!(out.ends_with("ready\nqueue_depth 0\n"), "{out}");
        }
    }
}
