//! The Lua scripts of the Redis feed store (`redis_feed.rs`): leases,
//! the workers alive, a worker's commit, and anomaly documents with their
//! events. Each runs atomically on the master of its keys' slot.

/// KEYS[1] lease; ARGV[1] holder, ARGV[2] ttl ms. Renews one's own lease
/// (1) or takes a free one (2); 0 when another worker holds it.
pub(super) const LEASE_LUA: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if cur == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
return 0";

/// KEYS[1] the workers alive (id → until, Unix ms of Redis's clock, so
/// workers' clocks need not agree); ARGV[1] this worker, ARGV[2] its time
/// to live in ms, 0 when it leaves. Answers the ids alive.
pub(super) const WORKERS_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if tonumber(ARGV[2]) == 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
end
return redis.call('ZRANGE', KEYS[1], 0, -1)";

/// KEYS[1] lease, KEYS[2] state, KEYS[3..] expected-hour hashes.
/// ARGV[1] holder, ARGV[2] state, ARGV[3] expiry of the hashes, then per
/// hash: a field count n and n field/value pairs. Writes only for the holder.
pub(super) const COMMIT_LUA: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
local a = 4
for k = 3, #KEYS do
  local n = tonumber(ARGV[a]); a = a + 1
  for _ = 1, n do
    redis.call('HSET', KEYS[k], ARGV[a], ARGV[a + 1]); a = a + 2
  end
  redis.call('EXPIREAT', KEYS[k], ARGV[3])
end
return 1";

/// KEYS: docs, index, open, events. ARGV: id, doc, started, updated,
/// service, open (1/0), event backlog, summary. A document older than the
/// stored one (`updated_unix`) is not written: a worker that lost its lease
/// mid-tick cannot undo the newer holder's work. The open set only ever
/// points at the service's newest open anomaly. A changed document adds an
/// event: opened (new, or open again), updated, or resolved.
pub(super) const PUT_ANOMALY_LUA: &str = r"
local old = redis.call('HGET', KEYS[1], ARGV[1])
local now_open = ARGV[6] == '1'
local kind = now_open and 'opened' or 'resolved'
if old then
  if old == ARGV[2] then return 0 end
  local ok, d = pcall(cjson.decode, old)
  if ok and type(d) == 'table' then
    if tonumber(d.updated_unix) and tonumber(d.updated_unix) > tonumber(ARGV[4]) then
      return 0
    end
    local was_open = d.status == 'open'
    if now_open then
      kind = was_open and 'updated' or 'opened'
    else
      kind = was_open and 'resolved' or 'updated'
    end
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[7], '*', 'kind', kind, 'doc', ARGV[8])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
if ARGV[6] == '1' then
  redis.call('HSET', KEYS[3], ARGV[5], ARGV[1])
elseif redis.call('HGET', KEYS[3], ARGV[5]) == ARGV[1] then
  redis.call('HDEL', KEYS[3], ARGV[5])
end
return 1";

pub(super) const RELEASE_LUA: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0";
