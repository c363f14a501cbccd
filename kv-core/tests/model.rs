//! Model-based property test: random sequences of operations against `MemoryStore` and
//! against a plain `HashMap` model of the contract give the same results.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use kv_core::clock::ManualClock;
use kv_core::{KvError, MemoryStore, Store, Ttl};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Get(usize),
    Set(usize, usize, Option<u64>),
    SetNx(usize, usize, Option<u64>),
    Del(usize),
    Expire(usize, u64),
    Ttl(usize),
    IncrBy(usize, i64, Option<u64>),
    Advance(u64),
}

const KEYS: [&str; 4] = ["a", "b", "counter", "ünï"];
const VALUES: [&[u8]; 8] = [
    b"x",
    b"",
    b"10",
    b"-5",
    b"0",
    b"abc",
    b"9223372036854775807",
    b"007",
];

fn ttl_ms() -> impl Strategy<Value = Option<u64>> {
    prop_oneof![Just(None), Just(Some(0)), (1u64..3000).prop_map(Some)]
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..KEYS.len();
    let value = 0..VALUES.len();
    let delta = prop_oneof![-3i64..4, Just(i64::MAX), Just(i64::MIN), Just(-1)];
    prop_oneof![
        key.clone().prop_map(Op::Get),
        (key.clone(), value.clone(), ttl_ms()).prop_map(|(k, v, t)| Op::Set(k, v, t)),
        (key.clone(), value, ttl_ms()).prop_map(|(k, v, t)| Op::SetNx(k, v, t)),
        key.clone().prop_map(Op::Del),
        (key.clone(), 0u64..3000).prop_map(|(k, t)| Op::Expire(k, t)),
        key.clone().prop_map(Op::Ttl),
        (key, delta, ttl_ms()).prop_map(|(k, d, t)| Op::IncrBy(k, d, t)),
        (0u64..2500).prop_map(Op::Advance),
    ]
}

/// The contract, written as plainly as possible.
#[derive(Default)]
struct Model {
    now: u64,
    map: HashMap<&'static str, (Vec<u8>, Option<u64>)>,
}

#[derive(Debug, PartialEq)]
enum Out {
    Value(Option<Vec<u8>>),
    Unit,
    Bool(bool),
    Ttl(Ttl),
    Int(i64),
    Err(&'static str),
}

fn err_name(e: &KvError) -> &'static str {
    match e {
        KvError::NotInteger => "not-integer",
        KvError::Overflow => "overflow",
        KvError::InvalidInput(_) => "invalid-input",
        _ => "other",
    }
}

fn parse(v: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(v).ok()?;
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || s == "-0" {
        return None;
    }
    if digits.len() > 1 && digits.starts_with('0') {
        return None;
    }
    s.parse().ok()
}

impl Model {
    fn live(&mut self, key: &'static str) -> Option<&mut (Vec<u8>, Option<u64>)> {
        let now = self.now;
        if self
            .map
            .get(key)
            .is_some_and(|(_, d)| d.is_some_and(|d| d <= now))
        {
            self.map.remove(key);
        }
        self.map.get_mut(key)
    }

    fn apply(&mut self, op: &Op) -> Out {
        let now = self.now;
        match *op {
            Op::Get(k) => Out::Value(self.live(KEYS[k]).map(|(v, _)| v.clone())),
            Op::Set(k, v, ttl) | Op::SetNx(k, v, ttl) => {
                if ttl == Some(0) {
                    return Out::Err("invalid-input");
                }
                let nx = matches!(op, Op::SetNx(..));
                if nx && self.live(KEYS[k]).is_some() {
                    return Out::Bool(false);
                }
                self.map
                    .insert(KEYS[k], (VALUES[v].to_vec(), ttl.map(|t| now + t)));
                if nx { Out::Bool(true) } else { Out::Unit }
            }
            Op::Del(k) => {
                let live = self.live(KEYS[k]).is_some();
                self.map.remove(KEYS[k]);
                Out::Bool(live)
            }
            Op::Expire(k, ttl) => match self.live(KEYS[k]) {
                None => Out::Bool(false),
                Some(_) if ttl == 0 => {
                    self.map.remove(KEYS[k]);
                    Out::Bool(true)
                }
                Some(entry) => {
                    entry.1 = Some(now + ttl);
                    Out::Bool(true)
                }
            },
            Op::Ttl(k) => Out::Ttl(match self.live(KEYS[k]) {
                None => Ttl::Missing,
                Some((_, None)) => Ttl::Persistent,
                Some((_, Some(d))) => Ttl::Expires(Duration::from_millis(*d - now)),
            }),
            Op::IncrBy(k, delta, ttl) => {
                if ttl == Some(0) {
                    return Out::Err("invalid-input");
                }
                match self.live(KEYS[k]) {
                    None => {
                        self.map.insert(
                            KEYS[k],
                            (delta.to_string().into_bytes(), ttl.map(|t| now + t)),
                        );
                        Out::Int(delta)
                    }
                    Some(entry) => {
                        let Some(current) = parse(&entry.0) else {
                            return Out::Err("not-integer");
                        };
                        let Some(next) = current.checked_add(delta) else {
                            return Out::Err("overflow");
                        };
                        entry.0 = next.to_string().into_bytes();
                        Out::Int(next)
                    }
                }
            }
            Op::Advance(ms) => {
                self.now += ms;
                Out::Unit
            }
        }
    }
}

async fn run_store(store: &MemoryStore, clock: &ManualClock, op: &Op) -> Out {
    let ms = |t: Option<u64>| t.map(Duration::from_millis);
    let r = match *op {
        Op::Get(k) => store
            .get(KEYS[k])
            .await
            .map(|v| Out::Value(v.map(|b| b.to_vec()))),
        Op::Set(k, v, t) => store
            .set(KEYS[k], Bytes::from_static(VALUES[v]), ms(t))
            .await
            .map(|()| Out::Unit),
        Op::SetNx(k, v, t) => store
            .set_nx(KEYS[k], Bytes::from_static(VALUES[v]), ms(t))
            .await
            .map(Out::Bool),
        Op::Del(k) => store.del(KEYS[k]).await.map(Out::Bool),
        Op::Expire(k, t) => store
            .expire(KEYS[k], Duration::from_millis(t))
            .await
            .map(Out::Bool),
        Op::Ttl(k) => store.ttl(KEYS[k]).await.map(Out::Ttl),
        Op::IncrBy(k, d, t) => store.incr_by(KEYS[k], d, ms(t)).await.map(Out::Int),
        Op::Advance(t) => {
            clock.advance(Duration::from_millis(t));
            Ok(Out::Unit)
        }
    };
    r.unwrap_or_else(|e| Out::Err(err_name(&e)))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn memory_store_behaves_like_the_model(ops in proptest::collection::vec(op(), 1..80)) {
        let clock = ManualClock::new();
        let store = MemoryStore::builder().clock(clock.clone()).shards(2).build().expect("store");
        let mut model = Model::default();
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("rt");
        for (i, op) in ops.iter().enumerate() {
            let got = rt.block_on(run_store(&store, &clock, op));
            let want = model.apply(op);
            prop_assert_eq!(got, want, "step {} {:?}", i, op);
        }
    }
}
