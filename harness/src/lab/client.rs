//! A small HTTP client for tests and the CLI: single requests, and many requests over several
//! connections at once, each with its status, headers, body and latency.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client as HyperClient};
use hyper_util::rt::TokioExecutor;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A request to send (path relative to the listener).
#[derive(Debug, Clone, Default)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Req {
    pub fn get(path: &str) -> Self {
        Self { method: "GET".into(), path: path.into(), ..Default::default() }
    }

    pub fn post(path: &str, body: &[u8]) -> Self {
        Self { method: "POST".into(), path: path.into(), body: body.to_vec(), ..Default::default() }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// What came back.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    /// Lower-case names; repeated headers joined with `, `.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    pub elapsed: Duration,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// A client bound to one base URL, with its own runtime.
pub struct Client {
    base: String,
    rt: tokio::runtime::Runtime,
    h1: HyperClient<HttpConnector, Full<Bytes>>,
    h2: HyperClient<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

impl Client {
    pub fn new(base: &str) -> anyhow::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let h1 = {
            let _guard = rt.enter();
            HyperClient::builder(TokioExecutor::new()).pool_max_idle_per_host(64).build_http()
        };
        let h2 = {
            let _guard = rt.enter();
            HyperClient::builder(TokioExecutor::new()).http2_only(true).build_http()
        };
        Ok(Self { base: base.trim_end_matches('/').into(), rt, h1, h2, timeout: Duration::from_secs(30) })
    }

    /// The same client, giving up on a response after `timeout` (default 30 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// One request over HTTP/1.1.
    pub fn send(&self, req: Req) -> anyhow::Result<Resp> {
        self.rt.block_on(send(&self.h1, &self.base, req, self.timeout))
    }

    /// One request over HTTP/2 (prior knowledge, cleartext).
    pub fn send_h2(&self, req: Req) -> anyhow::Result<Resp> {
        self.rt.block_on(send(&self.h2, &self.base, req, self.timeout))
    }

    pub fn get(&self, path: &str) -> anyhow::Result<Resp> {
        self.send(Req::get(path))
    }

    /// Sends every request, at most `concurrency` at a time (over as many connections), and returns
    /// the results in the order of `reqs`.
    pub fn send_all(&self, reqs: Vec<Req>, concurrency: usize) -> Vec<anyhow::Result<Resp>> {
        let client = self.h1.clone();
        let base = self.base.clone();
        let timeout = self.timeout;
        self.rt.block_on(async move {
            let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
            let mut tasks = Vec::with_capacity(reqs.len());
            for req in reqs {
                let (client, base, sem) = (client.clone(), base.clone(), sem.clone());
                tasks.push(tokio::spawn(async move {
                    let _permit = sem.acquire_owned().await;
                    send(&client, &base, req, timeout).await
                }));
            }
            let mut out = Vec::with_capacity(tasks.len());
            for t in tasks {
                out.push(t.await.unwrap_or_else(|e| Err(anyhow::anyhow!("request task failed: {e}"))));
            }
            out
        })
    }
}

async fn send(
    client: &HyperClient<HttpConnector, Full<Bytes>>,
    base: &str,
    req: Req,
    timeout: Duration,
) -> anyhow::Result<Resp> {
    let mut builder = hyper::Request::builder().method(req.method.as_str()).uri(format!("{base}{}", req.path));
    for (k, v) in &req.headers {
        builder = builder.header(k, v);
    }
    let request = builder.body(Full::new(Bytes::from(req.body)))?;
    let start = Instant::now();
    let response = tokio::time::timeout(timeout, client.request(request))
        .await
        .map_err(|_| anyhow::anyhow!("no response within {timeout:?}"))??;
    let status = response.status().as_u16();
    let mut headers = BTreeMap::new();
    for (k, v) in response.headers() {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        headers
            .entry(k.as_str().to_string())
            .and_modify(|e: &mut String| {
                e.push_str(", ");
                e.push_str(&v);
            })
            .or_insert(v);
    }
    let body = tokio::time::timeout(timeout, response.into_body().collect())
        .await
        .map_err(|_| anyhow::anyhow!("body not complete within {timeout:?}"))??;
    let trailers = body.trailers().cloned();
    let mut body_bytes = body.to_bytes().to_vec();
    let elapsed = start.elapsed();
    if let Some(t) = trailers {
        for (k, v) in &t {
            headers.insert(format!("trailer:{}", k.as_str()), String::from_utf8_lossy(v.as_bytes()).into_owned());
        }
    }
    body_bytes.shrink_to_fit();
    Ok(Resp { status, headers, body: body_bytes, elapsed })
}
