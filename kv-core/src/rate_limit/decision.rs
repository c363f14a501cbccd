//! What a rate-limit check decided, and the HTTP headers and bodies that say so.

use std::sync::Arc;
use std::time::Duration;

use crate::Answer;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use smallvec::SmallVec;

/// The state of one policy after a request was counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyState {
    /// The policy's name.
    pub name: Arc<str>,
    /// Requests allowed per window.
    pub limit: u64,
    /// The policy's window.
    pub window: Duration,
    /// Requests left in the current window after this one (for GCRA: the burst capacity
    /// left, which may exceed `limit` when the burst is larger than the limit).
    pub remaining: u64,
    /// When the quota is whole again.
    pub reset_after: Duration,
    /// `Some` when this policy denied the request: when the next request would be
    /// admitted (assuming no other requests meanwhile); [`PolicyState::NEVER`] when this
    /// request can never pass (its cost exceeds the quota), and then no `Retry-After` is
    /// sent, so that a client does not retry in vain.
    pub retry_after: Option<Duration>,
}

impl PolicyState {
    /// The `retry_after` of a request that no amount of waiting admits.
    pub const NEVER: Duration = Duration::MAX;

    /// Whether this policy admitted the request.
    pub fn allowed(&self) -> bool {
        self.retry_after.is_none()
    }
}

/// The outcome of checking one request against every policy of a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub(crate) policies: SmallVec<[PolicyState; 1]>,
    pub(crate) shadow: bool,
    pub(crate) ticket: Ticket,
}

/// What charging after the handler needs (policies counted by outcome): the request's
/// keys, cost and resolved quotas. Not part of a decision's identity.
#[derive(Clone, Default)]
pub(crate) struct Ticket(pub(crate) Option<Arc<TicketData>>);

pub(crate) struct TicketData {
    pub(crate) keys: SmallVec<[super::key::RateKey; 1]>,
    pub(crate) cost: u32,
    pub(crate) applied: Vec<Option<super::policy::Policy>>,
}

impl PartialEq for Ticket {
    fn eq(&self, _: &Ticket) -> bool {
        true
    }
}

impl Eq for Ticket {}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Ticket(charge after)"
        } else {
            "Ticket(none)"
        })
    }
}

impl Decision {
    /// Every policy's state, in the order they were configured.
    pub fn policies(&self) -> &[PolicyState] {
        &self.policies
    }

    /// Whether policies counted by outcome wait for the response
    /// ([`RateLimiter::after_response`](super::RateLimiter::after_response)).
    pub fn charges_after(&self) -> bool {
        self.ticket.0.is_some()
    }

    /// Shadow mode: the decision is reported but never enforced.
    pub fn is_shadow(&self) -> bool {
        self.shadow
    }

    /// Whether the request may proceed (always true in shadow mode).
    pub fn allowed(&self) -> bool {
        self.shadow || self.policies.iter().all(PolicyState::allowed)
    }

    /// Whether some policy was exceeded (also in shadow mode).
    pub fn exceeded(&self) -> bool {
        !self.policies.iter().all(PolicyState::allowed)
    }

    /// The first policy that denied the request.
    pub fn denied_by(&self) -> Option<&PolicyState> {
        self.policies.iter().find(|p| !p.allowed())
    }

    /// Every policy that denied the request.
    pub fn violated(&self) -> impl Iterator<Item = &PolicyState> {
        self.policies.iter().filter(|p| !p.allowed())
    }

    /// When the next request would pass every policy: the longest wait of those exceeded.
    pub fn retry_after(&self) -> Option<Duration> {
        self.policies.iter().filter_map(|p| p.retry_after).max()
    }
}

/// The body of a `429`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RejectBody {
    /// `text/plain`: `Too Many Requests: rate limit "name" exceeded`.
    #[default]
    PlainText,
    /// `application/problem+json` with the `quota-exceeded` problem type of
    /// draft-ietf-httpapi-ratelimit-headers and its `violated-policies` member.
    ProblemJson,
}

/// Which headers the layer writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderOptions {
    /// `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers-10). On.
    pub ietf: bool,
    /// `X-RateLimit-Limit`, `-Remaining`, `-Reset` of the most constrained policy. Off.
    pub legacy: bool,
    /// Also on allowed responses (not only on `429`s). On.
    pub on_allowed: bool,
    /// The longest `Retry-After` written, if any.
    pub max_retry_after: Option<Duration>,
    /// The body of a `429`.
    pub body: RejectBody,
}

impl Default for HeaderOptions {
    fn default() -> Self {
        HeaderOptions {
            ietf: true,
            legacy: false,
            on_allowed: true,
            max_retry_after: None,
            body: RejectBody::PlainText,
        }
    }
}

/// Headers to add to a response (inline up to the usual two, so no allocation).
pub type Headers = SmallVec<[(HeaderName, HeaderValue); 2]>;

/// What the adapter does with a request.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Pass the request on; add `headers` to its response.
    Allow {
        /// Headers for the response (may be empty).
        headers: Headers,
        /// The decision, when one was made (none when bypassed or failing open), and,
        /// from [`RateLimiter::admit`](super::RateLimiter::admit), when nothing reads it.
        decision: Option<Decision>,
    },
    /// Answer with this response instead of calling the service: a `429`, a `503` (store
    /// down, fail-closed), or the missing-key status; `Content-Type` included.
    Reject {
        /// The response.
        answer: Answer,
        /// The decision behind a `429`.
        decision: Option<Decision>,
    },
}

impl Verdict {
    /// Whether the request goes on to the service.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Verdict::Allow { .. })
    }

    pub(crate) fn plain(status: StatusCode, text: &'static str) -> Verdict {
        Verdict::Reject {
            answer: Answer::text(status, text),
            decision: None,
        }
    }
}

const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// `"name";q=100;w=60, ...` — constant for a limiter, so it computes it once.
pub(crate) fn policy_value<'a>(
    policies: impl Iterator<Item = (&'a str, u64, Duration)>,
) -> HeaderValue {
    let policies = policies
        .map(|(name, limit, window)| (name, limit.min(SF_INTEGER_MAX), secs_ceil(window).max(1)));
    list_value(policies, b"\";q=", b";w=")
}

/// Appends the IETF fields, in the order every verdict lists them (adapters may rely on
/// it): `RateLimit-Policy` (when given), then `RateLimit` with `state`.
pub(crate) fn push_ietf(headers: &mut Headers, policy: Option<&HeaderValue>, state: HeaderValue) {
    if let Some(policy) = policy {
        headers.push((RATELIMIT_POLICY, policy.clone()));
    }
    headers.push((RATELIMIT, state));
}

/// `"name";r=50;t=30, ...`
pub(crate) fn state_value(policies: &[PolicyState]) -> HeaderValue {
    state_value_of(
        policies
            .iter()
            .map(|p| (&*p.name, p.remaining, p.reset_after)),
    )
}

/// [`state_value`] of `(name, remaining, reset_after)` triples.
pub(crate) fn state_value_of<'a>(
    policies: impl Iterator<Item = (&'a str, u64, Duration)>,
) -> HeaderValue {
    let policies = policies.map(|(name, remaining, reset_after)| {
        (name, remaining.min(SF_INTEGER_MAX), secs_ceil(reset_after))
    });
    list_value(policies, b"\";r=", b";t=")
}

/// `"name"<first>a<second>b, ...`, in a buffer of its exact length: a `Bytes` made from
/// a `Vec` whose length is its capacity takes the `Vec`'s allocation as it is, so a value
/// costs one allocation (otherwise two: the `Vec`, and the shared handle `Bytes` wraps a
/// partly filled `Vec` in). Measured: −130 instructions a value, of which computing the
/// length takes back ~20 (the numbers are formatted before the buffer grows for them).
fn list_value<'a>(
    items: impl Iterator<Item = (&'a str, u64, u64)>,
    first: &[u8],
    second: &[u8],
) -> HeaderValue {
    let mut out = Vec::new();
    let (mut a_buf, mut b_buf) = (itoa::Buffer::new(), itoa::Buffer::new());
    for (i, (name, a, b)) in items.enumerate() {
        let (a, b) = (a_buf.format(a).as_bytes(), b_buf.format(b).as_bytes());
        let separator: &[u8] = if i > 0 { b", \"" } else { b"\"" };
        out.reserve_exact(
            separator.len() + name.len() + first.len() + a.len() + second.len() + b.len(),
        );
        out.extend_from_slice(separator);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(first);
        out.extend_from_slice(a);
        out.extend_from_slice(second);
        out.extend_from_slice(b);
    }
    value(out)
}

/// The largest Structured Field integer (RFC 9651): larger values are clamped to it.
const SF_INTEGER_MAX: u64 = 999_999_999_999_999;

fn secs_ceil(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).min(SF_INTEGER_MAX)
}

fn value(bytes: Vec<u8>) -> HeaderValue {
    // Policy names are validated as printable ASCII at build time, so this cannot fail;
    // an empty value is the harmless fallback.
    HeaderValue::from_maybe_shared(Bytes::from(bytes))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Appends `"name"` as a Structured Field string (names never contain `"` or `\`).
fn sf_string(out: &mut String, name: &str) {
    out.push('"');
    out.push_str(name);
    out.push('"');
}

impl Decision {
    /// The rate-limit headers of this decision.
    pub fn headers(&self, options: &HeaderOptions) -> Headers {
        let policy = (options.ietf && !self.policies.is_empty())
            .then(|| policy_value(self.policies.iter().map(|p| (&*p.name, p.limit, p.window))));
        self.headers_with(options, policy.as_ref())
    }

    /// The `RateLimit-Policy` value of the quotas that applied to this request.
    pub(crate) fn policy_header(&self) -> HeaderValue {
        policy_value(self.policies.iter().map(|p| (&*p.name, p.limit, p.window)))
    }

    /// [`headers`](Decision::headers) with the (constant) `RateLimit-Policy` value given.
    pub(crate) fn headers_with(
        &self,
        options: &HeaderOptions,
        policy: Option<&HeaderValue>,
    ) -> Headers {
        let mut headers = Headers::with_capacity(if options.legacy { 5 } else { 2 });
        if options.ietf && !self.policies.is_empty() {
            push_ietf(&mut headers, policy, state_value(&self.policies));
        }
        if options.legacy
            && let Some(p) = self
                .policies
                .iter()
                .min_by_key(|p| (p.remaining, std::cmp::Reverse(p.reset_after)))
        {
            headers.push((X_RATELIMIT_LIMIT, HeaderValue::from(p.limit)));
            headers.push((X_RATELIMIT_REMAINING, HeaderValue::from(p.remaining)));
            headers.push((
                X_RATELIMIT_RESET,
                HeaderValue::from(secs_ceil(p.reset_after)),
            ));
        }
        headers
    }

    /// The `Retry-After` seconds: the wait rounded up, at least 1, clamped if asked.
    pub fn retry_after_secs(&self, options: &HeaderOptions) -> Option<u64> {
        let wait = self.retry_after().filter(|w| *w != PolicyState::NEVER)?;
        let wait = options.max_retry_after.map_or(wait, |max| wait.min(max));
        Some(secs_ceil(wait).max(1))
    }

    /// The full `429` verdict of a denied decision.
    pub(crate) fn reject(self, options: &HeaderOptions, policy: Option<&HeaderValue>) -> Verdict {
        let mut headers = self.headers_with(options, policy);
        if let Some(secs) = self.retry_after_secs(options) {
            headers.push((http::header::RETRY_AFTER, HeaderValue::from(secs)));
        }
        let body = match options.body {
            RejectBody::PlainText => {
                headers.push((
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                ));
                let name = self.denied_by().map_or("", |p| &p.name);
                Bytes::from(format!(
                    "Too Many Requests: rate limit \"{name}\" exceeded\n"
                ))
            }
            RejectBody::ProblemJson => {
                headers.push((
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/problem+json"),
                ));
                let mut json = String::from(
                    "{\"type\":\"https://iana.org/assignments/http-problem-types#quota-exceeded\",\
                     \"title\":\"Request cannot be satisfied as assigned quota has been exceeded\",\
                     \"status\":429,\"violated-policies\":[",
                );
                for (i, p) in self.violated().enumerate() {
                    if i > 0 {
                        json.push(',');
                    }
                    sf_string(&mut json, &p.name);
                }
                json.push_str("]}");
                Bytes::from(json)
            }
        };
        let mut map = http::HeaderMap::with_capacity(headers.len());
        for (name, value) in headers {
            map.append(name, value);
        }
        Verdict::Reject {
            answer: Answer::new(StatusCode::TOO_MANY_REQUESTS, map, body),
            decision: Some(self),
        }
    }
}

/// A custom rejection keeps the rate-limit headers of the default one (`RateLimit`,
/// `RateLimit-Policy`, `Retry-After`, `X-RateLimit-*`) unless it set them itself.
pub(crate) fn custom_rejection(mut custom: Answer, default: Answer) -> Answer {
    let mut last = None;
    for (name, value) in default.headers {
        let name = match name {
            Some(name) => {
                last = Some(name.clone());
                name
            }
            None => match &last {
                Some(name) => name.clone(),
                None => continue,
            },
        };
        if name != http::header::CONTENT_TYPE && !custom.headers.contains_key(&name) {
            custom.headers.insert(name, value);
        }
    }
    custom
}

pub(crate) fn missing_key_text(status: StatusCode) -> &'static str {
    if status.is_server_error() {
        "Internal Server Error: rate limiting could not identify the client\n"
    } else {
        "Bad Request: rate limiting could not identify the client\n"
    }
}
