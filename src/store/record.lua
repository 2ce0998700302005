-- Dedups and counts a batch of reports of one service in one minute, atomically.
--
-- KEYS[1] totals hash of the hour      KEYS[2] breakdown hash of the hour
-- KEYS[3] rollup hash of the day       KEYS[4] reporters HyperLogLog of the minute
-- KEYS[5] networks HyperLogLog of the minute
-- KEYS[5+i]   dedup key of report i (i = 1..n)
-- KEYS[5+n+i] counted-reports key of report i's network
-- KEYS[5+2n+j] idempotency key j (j = 1..m)
-- ARGV[1] minute field   ARGV[2] 5-minute slot   ARGV[3] quarter field
-- ARGV[4] expiry of the hour hashes   ARGV[5] of the rollup   ARGV[6] of the HyperLogLogs
-- ARGV[7] dedup window secs   ARGV[8] idempotency ttl secs   ARGV[9] n
-- ARGV[10] counted reports one network may add per dedup window
-- then 6 values per report: reporter, network, problem, country or "", receipt,
-- idempotency index j or 0
--
-- A reporter's first report within the dedup window counts when its network has
-- counted fewer than ARGV[10] in the network's window (which starts at its first
-- counted report); a later report of the reporter never does. Returns one receipt per report:
-- "<1|0>|<id>|<minute>|<request>", where a report whose idempotency key was seen
-- before gets the stored receipt and counts nothing.
local n = tonumber(ARGV[9])
local cap = tonumber(ARGV[10])
local counted = 0
local problems, countries, reporters, networks, out = {}, {}, {}, {}, {}
for i = 1, n do
  local base = 10 + (i - 1) * 6
  local reporter, network = ARGV[base + 1], ARGV[base + 2]
  local problem, country = ARGV[base + 3], ARGV[base + 4]
  local receipt, idem = ARGV[base + 5], tonumber(ARGV[base + 6])
  local prior = false
  if idem > 0 then
    prior = redis.call('GET', KEYS[5 + 2 * n + idem])
  end
  if prior then
    out[i] = prior
  else
    local flag = '0'
    if redis.call('SET', KEYS[5 + i], '1', 'NX', 'EX', ARGV[7]) then
      -- A network's first counted report starts its window in one call.
      local per_network = KEYS[5 + n + i]
      if redis.call('SET', per_network, '1', 'NX', 'EX', ARGV[7])
          or redis.call('INCR', per_network) <= cap then
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
      redis.call('SET', KEYS[5 + 2 * n + idem], out[i], 'EX', ARGV[8])
    end
  end
end
if counted > 0 then
  redis.call('HINCRBY', KEYS[1], ARGV[1], counted)
  redis.call('EXPIREAT', KEYS[1], ARGV[4])
  for p, c in pairs(problems) do
    redis.call('HINCRBY', KEYS[2], ARGV[2] .. ':p:' .. p, c)
  end
  for k, c in pairs(countries) do
    redis.call('HINCRBY', KEYS[2], ARGV[2] .. ':c:' .. k, c)
  end
  redis.call('EXPIREAT', KEYS[2], ARGV[4])
  redis.call('HINCRBY', KEYS[3], ARGV[3], counted)
  redis.call('EXPIREAT', KEYS[3], ARGV[5])
end
if #reporters > 0 then
  redis.call('PFADD', KEYS[4], unpack(reporters))
  redis.call('EXPIREAT', KEYS[4], ARGV[6])
  redis.call('PFADD', KEYS[5], unpack(networks))
  redis.call('EXPIREAT', KEYS[5], ARGV[6])
end
return out
