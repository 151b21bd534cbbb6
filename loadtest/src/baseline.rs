//! The `--baseline` server: bare hyper answering every request with one
//! fixed body, a real bid answer copied from the target. Its maximum rate
//! is the cost of the HTTP stack alone, and leadex's maximum rate as a
//! share of it is the headline figure.
//!
//! It runs in its own process (this binary, re-executed with
//! `--serve-baseline BODY_FILE`), like leadex does, with the same runtime
//! (tokio multi-thread, default workers), allocator (mimalloc), HTTP/1.1
//! settings (keep-alive, header-read timeout, `TCP_NODELAY`) and the same
//! full read of each request body; only the engine is missing. The child
//! exits when its standard input closes, so it cannot outlive the run.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::net::TcpListener;

/// The flag that turns this binary into the baseline server.
pub const SERVE_FLAG: &str = "--serve-baseline";
/// The header-read timeout leadex uses by default (`server.header_read_timeout_ms`).
const HEADER_READ_TIMEOUT_MS: u64 = 10_000;
/// Largest request body read, as leadex (64 KiB).
const BODY_BYTES_MAX: usize = 64 * 1024;
/// The line the child prints once listening: `listening 127.0.0.1:PORT`.
const LISTENING: &str = "listening ";

/// Serves `body` to every request on `listener` until the future is dropped.
pub async fn serve(listener: TcpListener, body: Bytes) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(HEADER_READ_TIMEOUT_MS))
        .keep_alive(true);
    // Bounded by the process's life: one turn per accepted connection.
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let body = body.clone();
        let conn = http.serve_connection(
            TokioIo::new(stream),
            service_fn(move |req| answer(req, body.clone())),
        );
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}

async fn answer(req: Request<Incoming>, body: Bytes) -> Result<Response<Full<Bytes>>, Infallible> {
    // Read the whole request, as leadex does before it parses.
    let read = Limited::new(req.into_body(), BODY_BYTES_MAX)
        .collect()
        .await;
    let (status, body) = match read {
        Ok(_) => (StatusCode::OK, body),
        Err(_) => (StatusCode::PAYLOAD_TOO_LARGE, Bytes::new()),
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

/// The child's `main`: serves the body in `body_file` on a free loopback
/// port, prints `listening ADDR`, and exits when standard input closes.
pub fn child_main(body_file: &Path) -> Result<(), String> {
    let body = std::fs::read(body_file).map_err(|e| format!("{}: {e}", body_file.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        println!("{LISTENING}{addr}");
        std::io::stdout().flush().map_err(|e| e.to_string())?;
        let stdin_closed = tokio::task::spawn_blocking(|| {
            // Returns at end of input: the parent is gone or done.
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        });
        tokio::select! {
            () = serve(listener, Bytes::from(body)) => {}
            _ = stdin_closed => {}
        }
        Ok(())
    })
}

/// A running baseline server process; killed when dropped.
pub struct BaselineProcess {
    child: Child,
    addr: SocketAddr,
    _body_file: tempfile::NamedTempFile,
}

impl BaselineProcess {
    /// Starts `exe` (the `loadtest` binary) as the baseline server
    /// answering `body`, pinned with `taskset -c CPUS` when `cpus` is given.
    pub fn spawn(exe: &Path, body: &[u8], cpus: Option<&str>) -> Result<Self, String> {
        let mut body_file =
            tempfile::NamedTempFile::new().map_err(|e| format!("a temporary file: {e}"))?;
        body_file
            .write_all(body)
            .map_err(|e| format!("writing {}: {e}", body_file.path().display()))?;
        let mut command = match cpus {
            Some(cpus) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(cpus).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        let mut child = command
            .arg(SERVE_FLAG)
            .arg(body_file.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("starting the baseline server: {e}"))?;
        let stdout = child.stdout.take().expect("invariant: stdout is piped");
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line);
        let addr = match read {
            Ok(_) => line
                .trim()
                .strip_prefix(LISTENING)
                .and_then(|a| a.parse().ok()),
            Err(_) => None,
        };
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "the baseline server did not start (said {:?})",
                line.trim()
            ));
        };
        Ok(Self {
            child,
            addr,
            _body_file: body_file,
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for BaselineProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The median-sized body among `answers`, the one the baseline serves.
pub fn median_answer(mut answers: Vec<Bytes>) -> Option<Bytes> {
    answers.sort_by_key(Bytes::len);
    let middle = answers.len() / 2;
    answers.into_iter().nth(middle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_answer_is_the_middle_size() {
        let answers = ["aaaa", "a", "aaaaaaaaa", "aa", "aaaaa"]
            .map(|s| Bytes::from_static(s.as_bytes()))
            .to_vec();
        assert_eq!(median_answer(answers).unwrap().len(), 4);
        assert!(median_answer(Vec::new()).is_none());
    }

    #[tokio::test]
    async fn it_answers_the_fixed_body_over_keep_alive() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve(listener, Bytes::from_static(b"{\"bids\":[]}")));
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        for _ in 0..3 {
            let request = Request::post("/v1/ping")
                .header("host", "x")
                .body(Full::new(Bytes::from_static(b"{\"zip\":\"60601\"}")))
                .unwrap();
            let response = sender.send_request(request).await.unwrap();
            assert_eq!(response.status(), 200);
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], b"{\"bids\":[]}");
        }
        server.abort();
    }
}
