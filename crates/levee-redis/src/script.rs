//! The server side: GCRA in one Lua script, and the decoding of its reply.
//!
//! # The state
//!
//! One Redis string per limiter key holds the key's *theoretical arrival time* (`tat`, as in
//! levee-limit's `gcra.rs`) as decimal nanoseconds since the Unix epoch, read on the server's
//! clock (`TIME`). It is written with `PX` set to the time until `tat` (plus one millisecond),
//! so a key expires exactly when it no longer carries information: a missing key and a `tat`
//! in the past both mean "full". Memory returns by itself.
//!
//! # The arithmetic
//!
//! Redis runs Lua 5.1, whose numbers are doubles: integers are exact up to 2^53, but Unix
//! time in nanoseconds is about 2^61. The script therefore never holds an absolute time in one
//! number. It reads the clock as (seconds, nanoseconds), parses the state the same way, and
//! works with `d = tat - now`, the distance from now, which for any state this script wrote
//! is at most one burst span (`t + tau`). Quotas are limited to spans of at most 2^52 ns
//! ([`MAX_SPAN`](crate::MAX_SPAN), 52 days), so every quantity the script computes (`d`,
//! `d + (n - 1) t`, `tau - d`) stays below 2^53 and is exact. The rules are levee-limit's,
//! term by term, with `cur = max(tat, now)`, i.e. `d = max(tat - now, 0)`:
//!
//! - the `k`-th of a batch of cells conforms while `d + (k - 1) t <= tau`;
//! - granting `k` cells moves `d` to `d + k t`;
//! - a refused batch of `n` can conform `d + (n - 1) t - tau` from now.
//!
//! One script serves both `check_n` (grant exactly `n` or nothing: `n_min = n_max = n`) and
//! leases (grant as many as conform up to `n_max`, at least `n_min`).
//!
//! # The reply
//!
//! `{granted, value, now_s, now_ns}`: `granted` cells (0: refused), `value` the new `d` when
//! granted or the retry-after when refused (nanoseconds), and the server time the decision
//! was taken at. [`Reply::decode`] turns it into a typed value or a [`ReplyError`]; it never
//! panics on any input (a fuzz target checks).

use redis::{Cmd, Value};

/// The GCRA script. Arguments: `KEYS[1]` the state key; `ARGV` = `t`, `tau` (nanoseconds),
/// `n_min`, `n_max` (cells).
pub(crate) const SOURCE: &str = r"-- levee GCRA (levee-redis/src/script.rs)
local t = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local n_min = tonumber(ARGV[3])
local n_max = tonumber(ARGV[4])
local clock = redis.call('TIME')
local now_s = tonumber(clock[1])
local now_ns = tonumber(clock[2]) * 1000
local d = 0
local stored = redis.call('GET', KEYS[1])
if stored then
  local s, ns
  if #stored > 9 then
    s = tonumber(string.sub(stored, 1, -10))
    ns = tonumber(string.sub(stored, -9))
  else
    s = 0
    ns = tonumber(stored)
  end
  if not s or not ns or string.find(stored, '[^0-9]') then
    return redis.error_reply('LEVEEBADSTATE the key holds no levee GCRA state')
  end
  d = (s - now_s) * 1000000000 + (ns - now_ns)
  if d < 0 then d = 0 end
end
local granted = 0
if d <= tau then
  granted = math.floor((tau - d) / t) + 1
  if d + (granted - 1) * t > tau then granted = granted - 1 end
end
if granted > n_max then granted = n_max end
if granted < n_min then
  return {0, d + (n_min - 1) * t - tau, now_s, now_ns}
end
d = d + granted * t
local at = now_ns + d
local carry = math.floor(at / 1000000000)
local rest = at - carry * 1000000000
if rest < 0 then
  carry = carry - 1
  rest = rest + 1000000000
elseif rest >= 1000000000 then
  carry = carry + 1
  rest = rest - 1000000000
end
redis.call('SET', KEYS[1], string.format('%d%09d', now_s + carry, rest), 'PX', math.floor(d / 1000000) + 1)
return {granted, d, now_s, now_ns}
";

/// The script with its SHA1, computed once, and the commands that run it.
#[derive(Debug)]
pub(crate) struct GcraScript {
    script: redis::Script,
}

impl GcraScript {
    pub(crate) fn new() -> Self {
        Self { script: redis::Script::new(SOURCE) }
    }

    /// `EVALSHA` of the script for `key` (the full Redis key) with these arguments.
    pub(crate) fn evalsha(&self, key: &[u8], args: Args) -> Cmd {
        self.command("EVALSHA", self.script.get_hash(), key, args)
    }

    /// `EVAL` with the source: what to send after `NOSCRIPT` (it also caches the script).
    pub(crate) fn eval(&self, key: &[u8], args: Args) -> Cmd {
        self.command("EVAL", SOURCE, key, args)
    }

    fn command(&self, verb: &str, body: &str, key: &[u8], args: Args) -> Cmd {
        let mut cmd = redis::cmd(verb);
        cmd.arg(body).arg(1).arg(key).arg(args.t).arg(args.tau).arg(args.n_min).arg(args.n_max);
        cmd
    }
}

/// One invocation's arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Args {
    /// Emission interval, nanoseconds.
    pub(crate) t: u64,
    /// Tolerance, nanoseconds.
    pub(crate) tau: u64,
    /// Grant at least this many cells, or none.
    pub(crate) n_min: u32,
    /// Grant at most this many.
    pub(crate) n_max: u32,
}

/// What the script decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reply {
    /// Cells granted; 0 when refused.
    pub(crate) granted: u32,
    /// When granted: how far the key's theoretical arrival time now lies ahead of the
    /// server's clock (ns). When refused: how long until the request can conform (ns).
    pub(crate) value: u64,
    /// The server's clock when it decided, nanoseconds since the Unix epoch (microsecond
    /// resolution: `TIME`).
    pub(crate) server_now: u64,
}

/// A reply that is not what the script returns: another program wrote the key, or the
/// server is not Redis-compatible.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unexpected reply from the GCRA script: {0}")]
pub(crate) struct ReplyError(pub(crate) &'static str);

impl Reply {
    /// Decodes the script's reply, checking every field.
    ///
    /// # Errors
    /// A [`ReplyError`] naming what is wrong; never panics.
    pub(crate) fn decode(value: &Value) -> Result<Self, ReplyError> {
        let Value::Array(items) = value else {
            return Err(ReplyError("not an array"));
        };
        let [granted, val, secs, nanos] = items.as_slice() else {
            return Err(ReplyError("not four items"));
        };
        let int = |v: &Value, what: &'static str| match v {
            Value::Int(i) => u64::try_from(*i).map_err(|_| ReplyError(what)),
            _ => Err(ReplyError(what)),
        };
        let granted = u32::try_from(int(granted, "granted is not a count")?)
            .map_err(|_| ReplyError("granted is not a count"))?;
        let value = int(val, "the time value is not a non-negative integer")?;
        let secs = int(secs, "the server seconds are not a non-negative integer")?;
        let nanos = int(nanos, "the server nanoseconds are not below a second")?;
        if nanos >= 1_000_000_000 {
            return Err(ReplyError("the server nanoseconds are not below a second"));
        }
        let server_now = secs
            .checked_mul(1_000_000_000)
            .and_then(|s| s.checked_add(nanos))
            .ok_or(ReplyError("the server time does not fit 64-bit nanoseconds"))?;
        Ok(Self { granted, value, server_now })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(items: Vec<Value>) -> Value {
        Value::Array(items)
    }

    #[test]
    fn decodes_grants_and_refusals() {
        let ok = reply(vec![Value::Int(3), Value::Int(30), Value::Int(2), Value::Int(5)]);
        assert_eq!(
            Reply::decode(&ok),
            Ok(Reply { granted: 3, value: 30, server_now: 2_000_000_005 })
        );
        let refused = reply(vec![Value::Int(0), Value::Int(7), Value::Int(0), Value::Int(0)]);
        assert_eq!(Reply::decode(&refused).unwrap().granted, 0);
    }

    #[test]
    fn refuses_malformed_replies_with_a_reason() {
        let bad = |v: Value| Reply::decode(&v).unwrap_err().0;
        assert_eq!(bad(Value::Nil), "not an array");
        assert_eq!(bad(reply(vec![Value::Int(1)])), "not four items");
        let four = |a: i64, b: i64, c: i64, d: i64| {
            reply(vec![Value::Int(a), Value::Int(b), Value::Int(c), Value::Int(d)])
        };
        assert_eq!(bad(four(-1, 0, 0, 0)), "granted is not a count");
        assert_eq!(bad(four(1 << 40, 0, 0, 0)), "granted is not a count");
        assert_eq!(bad(four(1, -5, 0, 0)), "the time value is not a non-negative integer");
        assert_eq!(
            bad(four(1, 0, 0, 1_000_000_000)),
            "the server nanoseconds are not below a second"
        );
        assert_eq!(bad(four(1, 0, i64::MAX, 0)), "the server time does not fit 64-bit nanoseconds");
        let text = reply(vec![
            Value::BulkString(b"1".to_vec()),
            Value::Int(0),
            Value::Int(0),
            Value::Int(0),
        ]);
        assert_eq!(bad(text), "granted is not a count");
    }

    #[test]
    fn commands_name_the_script() {
        let script = GcraScript::new();
        let args = Args { t: 10, tau: 90, n_min: 1, n_max: 4 };
        let sha = script.evalsha(b"k", args);
        let packed = String::from_utf8(sha.get_packed_command()).unwrap();
        assert!(packed.contains("EVALSHA"));
        assert!(packed.contains(script.script.get_hash()));
        let eval = String::from_utf8(script.eval(b"k", args).get_packed_command()).unwrap();
        assert!(eval.contains("levee GCRA"));
    }
}
