//! A stub HTTP server whose answer tests change while it runs (e.g. a JWKS endpoint that rotates
//! keys, fails, or answers garbage), counting the requests it gets. Stops when dropped.

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

#[derive(Clone)]
struct Answer {
    status: u16,
    body: Vec<u8>,
}

pub struct StubServer {
    pub addr: SocketAddr,
    answer: Arc<Mutex<Answer>>,
    hits: Arc<AtomicU64>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StubServer {
    /// Starts on `127.0.0.1:port` (0 = a free port) answering every request with `status` and `body`.
    pub fn start(port: u16, status: u16, body: &[u8]) -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let answer = Arc::new(Mutex::new(Answer { status, body: body.to_vec() }));
        let hits = Arc::new(AtomicU64::new(0));
        let (tx, mut rx) = oneshot::channel::<()>();
        let (a, h) = (answer.clone(), hits.clone());
        let thread = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
                loop {
                    tokio::select! {
                        _ = &mut rx => return,
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            let (a, h) = (a.clone(), h.clone());
                            tokio::spawn(async move {
                                let service = service_fn(move |_req: Request<hyper::body::Incoming>| {
                                    h.fetch_add(1, Ordering::SeqCst);
                                    let ans = a.lock().map(|g| g.clone()).unwrap_or(Answer { status: 500, body: vec![] });
                                    async move {
                                        let mut r = Response::new(Full::new(Bytes::from(ans.body)));
                                        *r.status_mut() = hyper::StatusCode::from_u16(ans.status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
                                        Ok::<_, hyper::Error>(r)
                                    }
                                });
                                let _ = auto::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(stream), service).await;
                            });
                        }
                    }
                }
            });
        });
        Ok(Self { addr, answer, hits, stop: Some(tx), thread: Some(thread) })
    }

    /// Changes the answer for the following requests.
    pub fn answer(&self, status: u16, body: &[u8]) {
        if let Ok(mut a) = self.answer.lock() {
            *a = Answer { status, body: body.to_vec() };
        }
    }

    /// Requests served so far.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for StubServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
