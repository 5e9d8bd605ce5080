//! An echo upstream (HTTP/1.1 and HTTP/2 cleartext on one port) that answers every request with what
//! it saw, as JSON: `{"upstream": NAME, "method", "path", "protocol", "headers": {...}, "bodyBytes"}`.
//! It runs on its own thread and runtime, and stops when dropped.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{json, Map, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::oneshot;

pub struct EchoServer {
    pub name: String,
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EchoServer {
    /// Starts on `127.0.0.1:port` (0 = a free port).
    pub fn start(name: &str, port: u16) -> anyhow::Result<Self> {
        let std_listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let (stop_tx, stop_rx) = oneshot::channel();
        let upstream: Arc<str> = Arc::from(name);
        let thread = std::thread::Builder::new().name(format!("echo-{name}")).spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("echo upstream: cannot start a runtime: {e}");
                    return;
                }
            };
            rt.block_on(serve(std_listener, upstream, stop_rx));
        })?;
        Ok(Self { name: name.into(), addr, stop: Some(stop_tx), thread: Some(thread) })
    }
}

async fn serve(listener: std::net::TcpListener, upstream: Arc<str>, mut stop: oneshot::Receiver<()>) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("echo upstream: {e}");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| echo(req, upstream.clone()));
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    }
}

async fn echo(req: Request<hyper::body::Incoming>, upstream: Arc<str>) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let mut headers = Map::new();
    for (k, v) in req.headers() {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        match headers.get_mut(k.as_str()) {
            Some(Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(&v);
            }
            _ => {
                headers.insert(k.as_str().to_string(), Value::String(v));
            }
        }
    }
    let method = req.method().to_string();
    let path = req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
    let protocol = format!("{:?}", req.version());
    let body = req.into_body().collect().await?.to_bytes();
    let reply = json!({
        "upstream": &*upstream,
        "method": method,
        "path": path,
        "protocol": protocol,
        "headers": headers,
        "bodyBytes": body.len(),
    });
    let mut response = Response::new(Full::new(Bytes::from(reply.to_string())));
    response.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
    Ok(response)
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
