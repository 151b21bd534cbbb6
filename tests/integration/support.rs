//! Test support: start a server on a free port over a temporary data
//! directory, and a small JSON-over-HTTP client.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use leadex_config::{Config, Loaded};
use leadex_engine::spec::{EngineSettings, MarketplaceSpec};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::Path;

/// The test seller's key; its SHA-256 is `leadex_engine::testing::TEST_KEY_SHA256`.
pub const KEY: &str = "test-key";

pub type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(64)
        .build_http()
}

pub fn config(data_dir: &Path, engine: EngineSettings) -> Config {
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.admin.listen = "127.0.0.1:0".parse().unwrap();
    config.storage.path = data_dir.to_path_buf();
    config.engine = engine;
    config
}

pub async fn start(
    data_dir: &Path,
    market: MarketplaceSpec,
    engine: EngineSettings,
) -> leadex::run::Running {
    let loaded = Loaded {
        config: config(data_dir, engine),
        marketplace: market,
        source: "test".into(),
    };
    leadex::run::start(loaded).await.expect("server starts")
}

pub async fn post(
    client: &HttpClient,
    addr: SocketAddr,
    path: &str,
    key: Option<&str>,
    body: &str,
) -> (u16, Value) {
    let mut req = hyper::Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/json");
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    let resp = client
        .request(req.body(Full::new(Bytes::from(body.to_owned()))).unwrap())
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| json!({"raw": String::from_utf8_lossy(&bytes)}));
    (status, value)
}

pub async fn get(client: &HttpClient, addr: SocketAddr, path: &str) -> (u16, String) {
    let req = hyper::Request::get(format!("http://{addr}{path}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = client.request(req).await.expect("request");
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// The ping of `leadex_engine::testing::ping()` as JSON.
pub fn ping_json() -> Value {
    json!({"vertical": "auto", "zip": "90210", "state": "CA", "age": 34, "vehicles": 2})
}

/// A full lead (post body without ping_id/bid_ids) with `phone`.
pub fn lead_json(phone: &str) -> Value {
    let mut v = ping_json();
    v["contact"] = json!({
        "first_name": "Ada", "last_name": "Lovelace", "phone": phone, "email": "ada@example.com"
    });
    v
}

/// A distinct valid NANP phone number per `i` (exchanges 234–293: never
/// N11, never the fictional 555), unique for `i` below 600 000.
pub fn phone(i: usize) -> String {
    format!("312{:03}{:04}", 234 + (i / 10_000) % 60, i % 10_000)
}

/// Reads a counter from Prometheus text.
pub fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("metric {name} not found"))
}

/// A port free right now on 127.0.0.1 (another process may take it before
/// it is bound again; callers that start servers retry or accept that).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
