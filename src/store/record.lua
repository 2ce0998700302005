-- Dedups and counts a batch of reports of one service in one minute, atomically.
--
-- KEYS[1] totals hash of the hour      KEYS[2] breakdown hash of the hour
-- KEYS[3] rollup hash of the day       KEYS[4] reporters HyperLogLog of the minute
-- KEYS[5] networks HyperLogLog of the minute
-- KEYS[6] per-network counts hash of the minute's clock window
-- KEYS[6+i]   dedup key of report i (i = 1..n)
-- KEYS[6+n+j] idempotency key j (j = 1..m)
-- ARGV[1] minute field   ARGV[2] 5-minute slot   ARGV[3] quarter field
-- ARGV[4] expiry of the hour hashes   ARGV[5] of the rollup   ARGV[6] of the HyperLogLogs
-- ARGV[7] dedup window secs   ARGV[8] idempotency ttl secs   ARGV[9] n
-- ARGV[10] counted reports one network may add per clock window
-- ARGV[11] expiry of KEYS[6] (a minute past the clock window's end)
-- then 6 values per report: reporter, network, problem, country or "", receipt,
-- idempotency index j or 0
--
-- A reporter's first report within the dedup window counts when its network
-- has had fewer than ARGV[10] first reports in the clock window; a later
-- report of the reporter never does. Returns one receipt per report:
-- "<1|0>|<id>|<minute>|<request>", where a report whose idempotency key was seen
-- before gets the stored receipt and counts nothing.
local n = tonumber(ARGV[9])
local cap = tonumber(ARGV[10])
local counted, windowed = 0, false
local problems, countries, reporters, networks, out = {}, {}, {}, {}, {}
for i = 1, n do
  local base = 11 + (i - 1) * 6
  local reporter, network = ARGV[base + 1], ARGV[base + 2]
  local problem, country = ARGV[base + 3], ARGV[base + 4]
  local receipt, idem = ARGV[base + 5], tonumber(ARGV[base + 6])
  local prior = false
  if idem > 0 then
    prior = redis.call('GET', KEYS[6 + n + idem])
  end
  if prior then
    out[i] = prior
  else
    local flag = '0'
    if redis.call('SET', KEYS[6 + i], '1', 'NX', 'EX', ARGV[7]) then
      local seen = redis.call('HINCRBY', KEYS[6], network, 1)
      if seen == 1 and not windowed then
        -- The call's first new field sets the expiry before anything else
        -- can fail; its later ones need not.
        redis.call('EXPIREAT', KEYS[6], ARGV[11])
        windowed = true
      end
      if seen <= cap then
        flag = '1'
        counted = counted + 1
        problems[problem] = (problems[problem] or 0) + 1
        if country ~= '' then
          countries[country] = (countries[country] or 0) + 1
        end
      end
    end
    reporters[#reporters + 1] = reporter
    networks[#networks + 1] = network
    out[i] = flag .. '|' .. receipt
    if idem > 0 then
      redis.call('SET', KEYS[6 + n + idem], out[i], 'EX', ARGV[8])
    end
  end
end
-- A key's expiry is set when a call creates one of its fields (HINCRBY
-- answers the increment itself) or alters its HyperLogLog (PFADD answers 1,
-- as it does on creating it), right after that command: once per key and
-- field, not on every call. Every writer of these keys sets the expiry with
-- the field it creates.
local function expire_if(created, key, at)
  if created then
    redis.call('EXPIREAT', key, at)
  end
end
if counted > 0 then
  expire_if(redis.call('HINCRBY', KEYS[1], ARGV[1], counted) == counted, KEYS[1], ARGV[4])
  local fresh = false
  for p, c in pairs(problems) do
    fresh = redis.call('HINCRBY', KEYS[2], ARGV[2] .. ':p:' .. p, c) == c or fresh
  end
  for k, c in pairs(countries) do
    fresh = redis.call('HINCRBY', KEYS[2], ARGV[2] .. ':c:' .. k, c) == c or fresh
  end
  expire_if(fresh, KEYS[2], ARGV[4])
  expire_if(redis.call('HINCRBY', KEYS[3], ARGV[3], counted) == counted, KEYS[3], ARGV[5])
end
if #reporters > 0 then
  expire_if(redis.call('PFADD', KEYS[4], unpack(reporters)) == 1, KEYS[4], ARGV[6])
  expire_if(redis.call('PFADD', KEYS[5], unpack(networks)) == 1, KEYS[5], ARGV[6])
end
return out
