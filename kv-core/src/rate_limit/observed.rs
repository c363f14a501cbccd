//! What the limiter reports: the `kv.rate_limit` span around a check, and the decision
//! counters of every policy (feature `metrics`; names in [`crate::observe`]).

use std::sync::Arc;

use super::lean::Lean;
use super::{Decision, Headers, Inner, RateLimiter, Verdict};
use crate::request::RequestView;
use crate::step::{Step, StepFuture};
use crate::store::Store;

impl<S: Store> RateLimiter<S> {
    /// Checks `req` against every policy and counts it.
    ///
    /// [`Step::Ready`] when the verdict needed no waiting: bypassed or keyless requests,
    /// in-process GCRA, and every policy on a store with a [`LocalStore`](crate::LocalStore) face (the memory store);
    /// [`Step::Pending`] with the future that asks the store otherwise. The request is
    /// read before this returns; the future owns what it needs (`Send + 'static`).
    /// `limiter.check(&req).await` gives the verdict either way.
    pub fn check(&self, req: &dyn RequestView) -> Step<Verdict, StepFuture<Verdict>> {
        // No span unless some subscriber wants debug (a span costs even when unrecorded).
        if !tracing::level_enabled!(tracing::Level::DEBUG) {
            return self.check_inner(req);
        }
        let span = tracing::debug_span!(
            "kv.rate_limit",
            outcome = tracing::field::Empty,
            policy = tracing::field::Empty,
        );
        let count = {
            let _entered = span.enter();
            match self.inner.count_of(req) {
                Ok(count) => count,
                Err(verdict) => return Step::Ready(record_verdict(&span, *verdict)),
            }
        };
        if let Some(verdict) = span.in_scope(|| self.inner.decide_now(&count)) {
            return Step::Ready(record_verdict(&span, verdict));
        }
        let inner = Arc::clone(&self.inner);
        Step::Pending(Box::pin(tracing::Instrument::instrument(
            async move {
                let verdict = inner.decide(count).await;
                record_verdict(&tracing::Span::current(), verdict)
            },
            span,
        )))
    }

    /// [`check`](RateLimiter::check) as an adapter needs it: an allowed verdict carries
    /// its [`Decision`] only where something reads it — the handler
    /// ([`decision_in_extensions`](super::RateLimiterBuilder::decision_in_extensions))
    /// or a policy charged after the response; otherwise only its headers. The headers,
    /// the counting and every denied verdict are `check`'s. This is what lets the common
    /// configurations (one policy: GCRA in process, or a window on an in-process store
    /// such as [`MemoryStore`](crate::MemoryStore)) skip building a decision per
    /// request; the tower and actix layers call it.
    pub fn admit(&self, req: &dyn RequestView) -> Step<Verdict, StepFuture<Verdict>> {
        let mut headers = Headers::new();
        match self.admit_into(req, &mut headers) {
            None => Step::Ready(Verdict::Allow {
                headers,
                decision: None,
            }),
            Some(step) => step,
        }
    }

    /// [`admit`](RateLimiter::admit) for an adapter that keeps the response headers
    /// itself: `None` when the request is allowed with no [`Decision`] to hand on, its
    /// headers appended to `headers` (those `admit`'s [`Verdict::Allow`] would carry);
    /// otherwise `admit`'s answer, `headers` left as they were. The allowed request of
    /// the common configurations then moves no [`Verdict`] (256 bytes) at all: the tower
    /// and actix layers write its headers straight into their response future.
    pub fn admit_into(
        &self,
        req: &dyn RequestView,
        headers: &mut Headers,
    ) -> Option<Step<Verdict, StepFuture<Verdict>>> {
        if self.inner.lean && !tracing::level_enabled!(tracing::Level::DEBUG) {
            match self.inner.check_lean(req, headers) {
                Lean::Allowed => return None,
                Lean::Decided(verdict) => return Some(Step::Ready(verdict)),
                Lean::General => {}
            }
        }
        Some(self.check(req))
    }

    fn check_inner(&self, req: &dyn RequestView) -> Step<Verdict, StepFuture<Verdict>> {
        let count = match self.inner.count_of(req) {
            Ok(count) => count,
            Err(verdict) => return Step::Ready(*verdict),
        };
        if let Some(verdict) = self.inner.decide_now(&count) {
            return Step::Ready(verdict);
        }
        let inner = Arc::clone(&self.inner);
        Step::Pending(Box::pin(async move { inner.decide(count).await }))
    }
}

impl<S: Store> Inner<S> {
    /// One counter per policy: allowed, denied, or denied in shadow mode.
    #[cfg(feature = "metrics")]
    pub(super) fn count_decision(&self, decision: &Decision) {
        for state in &decision.policies {
            let Some(m) = self.metrics.iter().find(|m| m.name == state.name) else {
                continue;
            };
            match (state.allowed(), self.shadow) {
                (true, _) => m.allowed.inc(),
                (false, true) => m.shadow_denied.inc(),
                (false, false) => m.denied.inc(),
            }
        }
    }
}

/// Puts the verdict in the `kv.rate_limit` span: `allowed` or `denied`, and the policy
/// that denied (a configured name, never the key).
fn record_verdict(span: &tracing::Span, verdict: Verdict) -> Verdict {
    if !span.is_disabled() {
        match &verdict {
            Verdict::Allow { .. } => {
                span.record("outcome", "allowed");
            }
            Verdict::Reject { decision, .. } => {
                span.record("outcome", "denied");
                if let Some(policy) = decision.as_ref().and_then(Decision::denied_by) {
                    span.record("policy", &*policy.name);
                }
            }
        }
    }
    verdict
}
