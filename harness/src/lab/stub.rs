//! A stub HTTP server whose answer tests change while it runs (e.g. a JWKS endpoint that rotates
//! keys, fails, or answers garbage; a gRPC service that answers a message that is not the protocol's),
//! counting the requests it gets. Stops when dropped.

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
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
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    trailers: Vec<(&'static str, String)>,
}

impl Answer {
    fn plain(status: u16, body: &[u8]) -> Self {
        Answer { status, headers: Vec::new(), body: body.to_vec(), trailers: Vec::new() }
    }

    /// A unary gRPC answer with status OK: `message` in one length-prefixed frame, `grpc-status: 0` in
    /// the trailers (the gRPC over HTTP/2 wire format, which Envoy's gRPC client reads).
    fn grpc(message: &[u8]) -> Self {
        let mut body = vec![0u8];
        body.extend(u32::try_from(message.len()).unwrap_or(u32::MAX).to_be_bytes());
        body.extend_from_slice(message);
        Answer {
            status: 200,
            headers: vec![("content-type", "application/grpc".into())],
            body,
            trailers: vec![("grpc-status", "0".into())],
        }
    }
}

/// A body of one data frame and then, if any, the trailers.
struct AnswerBody {
    data: Option<Bytes>,
    trailers: Option<hyper::HeaderMap>,
}

impl Body for AnswerBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(data) = self.data.take() {
            return std::task::Poll::Ready(Some(Ok(Frame::data(data))));
        }
        std::task::Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.data, &self.trailers) {
            (Some(d), None) => SizeHint::with_exact(d.len() as u64),
            _ => SizeHint::default(),
        }
    }
}

fn header_map(pairs: &[(&'static str, String)]) -> hyper::HeaderMap {
    pairs
        .iter()
        .filter_map(|(k, v)| Some((hyper::header::HeaderName::from_bytes(k.as_bytes()).ok()?, v.parse().ok()?)))
        .collect()
}

fn respond(ans: Answer) -> Response<AnswerBody> {
    let trailers = (!ans.trailers.is_empty()).then(|| header_map(&ans.trailers));
    let mut r = Response::new(AnswerBody { data: Some(Bytes::from(ans.body)), trailers });
    *r.status_mut() = hyper::StatusCode::from_u16(ans.status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    *r.headers_mut() = header_map(&ans.headers);
    r
}

pub struct StubServer {
    pub addr: SocketAddr,
    answer: Arc<Mutex<Answer>>,
    /// Requests still to answer with a failure status first: (count, status).
    failing: Arc<Mutex<(u64, u16)>>,
    /// How long every answer waits before it is sent (milliseconds).
    delay_ms: Arc<AtomicU64>,
    hits: Arc<AtomicU64>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StubServer {
    /// Starts on `127.0.0.1:port` (0 = a free port) answering every request with `status` and `body`.
    pub fn start(port: u16, status: u16, body: &[u8]) -> anyhow::Result<Self> {
        Self::serve(port, Answer::plain(status, body))
    }

    /// Starts on a free port answering every request (HTTP/2 cleartext) as a gRPC service would with
    /// status OK and `message` as the response message.
    pub fn grpc(message: &[u8]) -> anyhow::Result<Self> {
        Self::serve(0, Answer::grpc(message))
    }

    fn serve(port: u16, answer: Answer) -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let answer = Arc::new(Mutex::new(answer));
        let failing = Arc::new(Mutex::new((0u64, 500u16)));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let hits = Arc::new(AtomicU64::new(0));
        let (tx, mut rx) = oneshot::channel::<()>();
        let (a, h, f, d) = (answer.clone(), hits.clone(), failing.clone(), delay_ms.clone());
        let thread = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
                loop {
                    tokio::select! {
                        _ = &mut rx => return,
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            let (a, h, f, d) = (a.clone(), h.clone(), f.clone(), d.clone());
                            tokio::spawn(async move {
                                let service = service_fn(move |_req: Request<hyper::body::Incoming>| {
                                    h.fetch_add(1, Ordering::SeqCst);
                                    let failure = f.lock().ok().and_then(|mut g| {
                                        (g.0 > 0).then(|| {
                                            g.0 -= 1;
                                            Answer::plain(g.1, b"failing on purpose")
                                        })
                                    });
                                    let ans = failure.unwrap_or_else(|| {
                                        a.lock().map(|g| g.clone()).unwrap_or(Answer::plain(500, b""))
                                    });
                                    let wait = std::time::Duration::from_millis(d.load(Ordering::SeqCst));
                                    async move {
                                        tokio::time::sleep(wait).await;
                                        Ok::<_, hyper::Error>(respond(ans))
                                    }
                                });
                                let _ = auto::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(stream), service).await;
                            });
                        }
                    }
                }
            });
        });
        Ok(Self { addr, answer, failing, delay_ms, hits, stop: Some(tx), thread: Some(thread) })
    }

    /// Changes the answer for the following requests.
    pub fn answer(&self, status: u16, body: &[u8]) {
        if let Ok(mut a) = self.answer.lock() {
            *a = Answer::plain(status, body);
        }
    }

    /// Answers the next `n` requests with `status` (then the answer again).
    pub fn fail_next(&self, n: u64, status: u16) {
        if let Ok(mut f) = self.failing.lock() {
            *f = (n, status);
        }
    }

    /// Makes every following answer wait `d` before it is sent.
    pub fn delay(&self, d: std::time::Duration) {
        self.delay_ms.store(u64::try_from(d.as_millis()).unwrap_or(u64::MAX), Ordering::SeqCst);
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
