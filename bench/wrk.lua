-- wrk script for bench/harness.py: prints one JSON line of figures at the end.
--
-- Without arguments wrk sends its URL for the duration (-d). With files of requests
-- (`wrk ... -s bench/wrk.lua URL -- FILE THREADS`: thread N reads FILE.N, one request a
-- line: METHOD<TAB>PATH<TAB>COOKIE<TAB>BODY, the body form-encoded) each thread sends its
-- file once (run one connection a thread: -t N -c N), says DONE on stderr and stops:
-- every prepared POST goes exactly once, as a parent's browser would send it.
--
-- With "cycle" after the file (`-- FILE THREADS cycle ETAG`), each thread sends GETs of its
-- lines' paths and cookies round and round for the duration, as open pages asking for
-- updates do: with If-None-Match of the newest ETag it was answered (ETAG at first), and
-- ?after= the highest "id" it was sent.

local threads = {}
local count = 0

function setup(thread)
  count = count + 1
  thread:set("number", count)
  table.insert(threads, thread)
end

local mine = nil
local next_one = 1
local cycle = false
local etag = nil
local after = 0
statuses = {}
extra = 0

function init(args)
  local file = args[1]
  if file == nil then
    return
  end
  cycle = args[3] == "cycle"
  etag = args[4]
  mine = {}
  for line in io.lines(file .. "." .. number) do
    local method, path, cookie, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
    local headers = {["Cookie"] = cookie}
    if method == "POST" then
      headers["Content-Type"] = "application/x-www-form-urlencoded"
    end
    if cycle then
      table.insert(mine, {path = path, cookie = cookie})
    else
      table.insert(mine, wrk.format(method, path, headers, body))
    end
  end
  if number == 1 then
    -- wrk calls the first thread's request() once before the run, to look at a request
    -- (script_verify_request); that call must not take a prepared one.
    next_one = 0
  end
end

function request()
  if mine == nil then
    return wrk.format(nil)
  end
  if next_one == 0 then
    next_one = 1
    return wrk.format("GET", "/healthz") -- looked at, never sent
  end
  if cycle then
    local line = mine[next_one]
    next_one = next_one % #mine + 1
    local headers = {["Cookie"] = line.cookie}
    if etag then
      headers["If-None-Match"] = etag
    end
    return wrk.format("GET", line.path .. "?after=" .. after, headers)
  end
  local r = mine[next_one]
  next_one = next_one + 1
  if r == nil then
    extra = extra + 1 -- never expected: a connection asked for more than its share
    return wrk.format("GET", "/healthz")
  end
  return r
end

function response(status, headers, body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
  if cycle then
    if headers["ETag"] then
      etag = headers["ETag"]
    end
    for id in string.gmatch(body or "", '"id":%s*(%d+)') do
      after = math.max(after, tonumber(id))
    end
    return
  end
  if mine ~= nil and next_one > #mine then
    io.stderr:write("DONE\n") -- bench/harness.py ends the run when every thread is done
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local all = {}
  local extras = 0
  for _, thread in ipairs(threads) do
    local counted = thread:get("statuses")
    for status, n in pairs(counted) do
      all[status] = (all[status] or 0) + n
    end
    extras = extras + (thread:get("extra") or 0)
  end
  local parts = {}
  for status, n in pairs(all) do
    table.insert(parts, string.format('"%s": %d', status, n))
  end
  local errors = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "seconds": %.6f, "p50_ms": %.3f, "p90_ms": %.3f, ' ..
    '"p99_ms": %.3f, "max_ms": %.3f, "statuses": {%s}, "socket_errors": %d, "extra": %d}\n',
    summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000,
    table.concat(parts, ", "),
    errors.connect + errors.read + errors.write + errors.timeout,
    extras
  ))
end
