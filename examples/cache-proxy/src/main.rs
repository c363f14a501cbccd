//! A caching reverse proxy: kv-tower's [`CacheLayer`](kv_tower::CacheLayer) around a hyper
//! client that forwards every method and path to one upstream, adding nothing of its own
//! but the cache.
//!
//! Run with
//! `cargo run -p cache-proxy -- --upstream http://127.0.0.1:8000 --port 8020`
//! (options: `--store memory://|redis://..`, `--default-ttl SECONDS`, `--no-heuristic`,
//! `--max-body BYTES`, `--stale-on-disconnect SECONDS` (default 3600: a stale entry is
//! served when the upstream cannot be reached), `--tag-header NAME` (default
//! `surrogate-key`), `--purge-from IP` (repeatable)).
//!
//! **Purging.** `PURGE` requests from the peers named by `--purge-from` (none by default:
//! every `PURGE` is refused with `403`) are answered by the proxy itself: with the tag
//! header (`Surrogate-Key: a b`), every entry carrying one of the tags is invalidated
//! ([`Cache::purge_tag`]); without it, the request's URL ([`Cache::purge`]). It is what `.ci/cache-conformance` scores with the HTTP caching
//! conformance suite.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, HeaderName};
use http::{HeaderMap, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use kv_core::AnyStore;
use kv_core::cache::Cache;
use kv_tower::cache::{CacheBody, CacheService};
use tower_service::Service;

/// The upstream: every request goes to `base` + its path and query.
#[derive(Clone, Debug)]
struct Upstream {
    client: Client<HttpConnector, Full<Bytes>>,
    base: Uri,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl Service<Request<Full<Bytes>>> for Upstream {
    type Response = Response<Incoming>;
    type Error = hyper_util::client::legacy::Error;
    type Future = BoxFuture<Result<Response<Incoming>, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<Full<Bytes>>) -> Self::Future {
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let mut parts = self.base.clone().into_parts();
        parts.path_and_query = path.parse().ok();
        if let Ok(uri) = Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
        strip_hop_by_hop(req.headers_mut());
        let client = self.client.clone();
        Box::pin(async move { client.request(req).await })
    }
}

/// Removes the hop-by-hop headers (and those `Connection` names) of one connection.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        headers.remove(name);
    }
}

struct Args {
    upstream: Uri,
    port: u16,
    store: String,
    default_ttl: Option<Duration>,
    heuristic: bool,
    max_body: Option<usize>,
    stale_on_disconnect: Duration,
    tag_header: HeaderName,
    purge_from: Vec<IpAddr>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        upstream: Uri::from_static("http://127.0.0.1:8000"),
        port: 8020,
        store: "memory://".to_owned(),
        default_ttl: None,
        heuristic: true,
        max_body: None,
        stale_on_disconnect: Duration::from_secs(3600),
        tag_header: HeaderName::from_static("surrogate-key"),
        purge_from: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match flag.as_str() {
            "--upstream" => {
                args.upstream = value("--upstream")?
                    .parse()
                    .map_err(|e| format!("--upstream: {e}"))?;
            }
            "--port" => {
                args.port = value("--port")?
                    .parse()
                    .map_err(|e| format!("--port: {e}"))?;
            }
            "--store" => args.store = value("--store")?,
            "--default-ttl" => {
                let secs: u64 = value("--default-ttl")?
                    .parse()
                    .map_err(|e| format!("--default-ttl: {e}"))?;
                args.default_ttl = Some(Duration::from_secs(secs));
            }
            "--max-body" => {
                args.max_body = Some(
                    value("--max-body")?
                        .parse()
                        .map_err(|e| format!("--max-body: {e}"))?,
                );
            }
            "--stale-on-disconnect" => {
                let secs: u64 = value("--stale-on-disconnect")?
                    .parse()
                    .map_err(|e| format!("--stale-on-disconnect: {e}"))?;
                args.stale_on_disconnect = Duration::from_secs(secs);
            }
            "--tag-header" => {
                args.tag_header = HeaderName::from_bytes(value("--tag-header")?.as_bytes())
                    .map_err(|e| format!("--tag-header: {e}"))?;
            }
            "--purge-from" => {
                args.purge_from.push(
                    value("--purge-from")?
                        .parse()
                        .map_err(|e| format!("--purge-from: {e}"))?,
                );
            }
            "--no-heuristic" => args.heuristic = false,
            "-h" | "--help" => {
                return Err(
                    "usage: cache-proxy --upstream http://127.0.0.1:8000 --port 8020 \
                            [--store memory://|redis://host:port] [--default-ttl SECONDS] \
                            [--no-heuristic] [--max-body BYTES] [--stale-on-disconnect SECONDS] \
                            [--tag-header NAME] [--purge-from IP]..."
                        .to_owned(),
                );
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    if args.upstream.scheme_str() != Some("http") || args.upstream.authority().is_none() {
        return Err("--upstream must be an http://host:port URL".to_owned());
    }
    Ok(args)
}

type ProxyBody = Either<CacheBody<Incoming>, Full<Bytes>>;

/// Who may purge, and how tags are named.
#[derive(Debug)]
struct Purging {
    tag_header: HeaderName,
    allowed: Vec<IpAddr>,
}

impl Purging {
    /// Answers a `PURGE`: `403` from a peer not allowed; with the tag header, a tag purge
    /// of each tag; without, the URL (`Host` + path and query).
    async fn purge(
        &self,
        cache: &Cache<AnyStore>,
        peer: IpAddr,
        req: &http::request::Parts,
    ) -> Response<Full<Bytes>> {
        let text = |status: StatusCode, body: String| {
            let mut r = Response::new(Full::new(Bytes::from(body)));
            *r.status_mut() = status;
            r
        };
        if !self.allowed.contains(&peer) {
            return text(StatusCode::FORBIDDEN, "purge not allowed\n".to_owned());
        }
        let tags: Vec<&str> = req
            .headers
            .get_all(&self.tag_header)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split([' ', ',']))
            .filter(|t| !t.is_empty())
            .collect();
        if !tags.is_empty() {
            for tag in &tags {
                if let Err(err) = cache.purge_tag(tag).await {
                    tracing::warn!(error = %err, "tag purge failed");
                    return text(StatusCode::SERVICE_UNAVAILABLE, "purge failed\n".to_owned());
                }
            }
            return text(StatusCode::OK, format!("purged {} tags\n", tags.len()));
        }
        let host = req
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let path = req.uri.path_and_query().map_or("/", |p| p.as_str());
        let Ok(uri) = format!("http://{host}{path}").parse::<Uri>() else {
            return text(StatusCode::BAD_REQUEST, "bad purge target\n".to_owned());
        };
        match cache.purge(&uri).await {
            Ok(true) => text(StatusCode::OK, "purged\n".to_owned()),
            Ok(false) => text(StatusCode::NOT_FOUND, "not cached\n".to_owned()),
            Err(err) => {
                tracing::warn!(error = %err, "purge failed");
                text(StatusCode::SERVICE_UNAVAILABLE, "purge failed\n".to_owned())
            }
        }
    }
}

fn bad_gateway() -> Response<ProxyBody> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from_static(
        b"bad gateway\n",
    ))));
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(msg) => {
            eprintln!("{msg}");
            std::process::exit(2);
        }
    };
    let store = match AnyStore::connect(&args.store).await {
        Ok(store) => store,
        Err(err) => {
            eprintln!("cannot open store {}: {err}", args.store);
            std::process::exit(1);
        }
    };
    let mut builder = Cache::builder(store)
        .default_ttl(args.default_ttl)
        // Real clients' HTTP/1.1 requests all name their host: a request without one is
        // malformed (RFC 9112 section 3.2) and is passed on uncached.
        .require_host(true)
        .heuristic_freshness(args.heuristic.then(|| Duration::from_secs(24 * 60 * 60)))
        // A shared reverse proxy is a CDN in RFC 9213's sense.
        .targeted_cache_control(Some(HeaderName::from_static("cdn-cache-control")))
        // A proxy whose upstream is unreachable serves what it has (RFC 9111 section 4.2.4).
        .stale_on_disconnect(args.stale_on_disconnect)
        .tag_header(Some(args.tag_header.clone()));
    if let Some(max) = args.max_body {
        builder = builder.max_body_bytes(max);
    }
    let cache = match builder.build() {
        Ok(cache) => cache,
        Err(err) => {
            eprintln!("invalid cache configuration: {err}");
            std::process::exit(2);
        }
    };
    let client = Client::builder(TokioExecutor::new()).build_http();
    let upstream = Upstream {
        client,
        base: args.upstream.clone(),
    };
    let service = CacheService::new(upstream, cache);
    let purging = Arc::new(Purging {
        tag_header: args.tag_header.clone(),
        allowed: args.purge_from.clone(),
    });

    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(err) => {
            eprintln!("cannot listen on {addr}: {err}");
            std::process::exit(1);
        }
    };
    println!("cache-proxy on http://{addr} -> {}", args.upstream);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(err) => {
                    tracing::warn!(error = %err, "accept failed");
                    continue;
                }
            },
            _ = tokio::signal::ctrl_c() => break,
        };
        let service = service.clone();
        let purging = Arc::clone(&purging);
        tokio::spawn(async move {
            let handler = hyper::service::service_fn(move |req: Request<Incoming>| {
                let mut service = service.clone();
                let purging = Arc::clone(&purging);
                async move {
                    if req.method().as_str() == "PURGE" {
                        let (parts, _) = req.into_parts();
                        let answer = purging.purge(service.cache(), peer.ip(), &parts).await;
                        return Ok(answer.map(Either::Right));
                    }
                    let (parts, body) = req.into_parts();
                    let body = match body.collect().await {
                        Ok(collected) => collected.to_bytes(),
                        Err(_) => return Ok::<_, Infallible>(bad_gateway()),
                    };
                    let request = Request::from_parts(parts, Full::new(body));
                    match service.call(request).await {
                        Ok(response) => {
                            let (mut head, body) = response.into_parts();
                            strip_hop_by_hop(&mut head.headers);
                            Ok(Response::from_parts(head, Either::Left(body)))
                        }
                        Err(err) => {
                            tracing::warn!(error = %err, "upstream request failed");
                            Ok(bad_gateway())
                        }
                    }
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), handler);
            if let Err(err) = conn.await {
                tracing::debug!(error = %err, "connection ended with an error");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kv_core::MemoryStore;
    use kv_core::cache::{Lookup, Outcome};

    fn head(method: &str, host: &str, path: &str, tags: Option<&str>) -> http::request::Parts {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header("host", host);
        if let Some(t) = tags {
            b = b.header("surrogate-key", t);
        }
        b.body(()).expect("request").into_parts().0
    }

    async fn fill(cache: &Cache<AnyStore>, path: &str, tags: &str) {
        let req = Request::builder()
            .uri(path)
            .header("host", "h")
            .body(())
            .expect("request");
        let Lookup::Forward(f) = cache.lookup(&req).await else {
            panic!("a miss")
        };
        let mut h = HeaderMap::new();
        h.insert("cache-control", "max-age=60".parse().expect("value"));
        h.insert("surrogate-key", tags.parse().expect("value"));
        let Outcome::Record(mut rec) = f.response(StatusCode::OK, &mut h).await else {
            panic!("storable")
        };
        rec.push(b"x");
        rec.finish().await;
    }

    async fn cached(cache: &Cache<AnyStore>, path: &str) -> bool {
        let req = Request::builder()
            .uri(path)
            .header("host", "h")
            .body(())
            .expect("request");
        matches!(cache.lookup(&req).await, Lookup::Hit { .. })
    }

    #[tokio::test]
    async fn purge_by_tag_and_by_url_only_from_allowed_peers() {
        let cache = Cache::builder(AnyStore::new(MemoryStore::new()))
            .tag_header(Some(HeaderName::from_static("surrogate-key")))
            .build()
            .expect("cache");
        let purging = Purging {
            tag_header: HeaderName::from_static("surrogate-key"),
            allowed: vec!["10.0.0.1".parse().expect("ip")],
        };
        fill(&cache, "/a", "t1 all").await;
        fill(&cache, "/b", "t2 all").await;
        let stranger: IpAddr = "203.0.113.5".parse().expect("ip");
        let peer: IpAddr = "10.0.0.1".parse().expect("ip");
        let denied = purging
            .purge(&cache, stranger, &head("PURGE", "h", "/", Some("all")))
            .await;
        assert_eq!(denied.status(), StatusCode::FORBIDDEN);
        assert!(cached(&cache, "/a").await && cached(&cache, "/b").await);
        let ok = purging
            .purge(&cache, peer, &head("PURGE", "h", "/", Some("t1")))
            .await;
        assert_eq!(ok.status(), StatusCode::OK);
        assert!(!cached(&cache, "/a").await);
        assert!(cached(&cache, "/b").await);
        let url = purging
            .purge(&cache, peer, &head("PURGE", "h", "/b", None))
            .await;
        assert_eq!(url.status(), StatusCode::OK);
        assert!(!cached(&cache, "/b").await);
        let again = purging
            .purge(&cache, peer, &head("PURGE", "h", "/b", None))
            .await;
        assert_eq!(again.status(), StatusCode::NOT_FOUND);
    }
}
