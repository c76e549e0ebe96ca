-- Shared by the bench scenarios: read request data files, and print wrk's summary as one JSON line.
-- Scripts load it with dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua").
local M = {}

-- Records in a data file are separated by a line holding only "%%" (bodies may span lines).
function M.read_records(path)
  local file = assert(io.open(path, "rb"))
  local text = file:read("*a")
  file:close()
  local records = {}
  for record in (text .. "\n%%\n"):gmatch("(.-)\n%%%%\n") do
    if #record > 0 then
      records[#records + 1] = record
    end
  end
  assert(#records > 0, "no records in " .. path)
  return records
end

-- A thread's share of records: every nth one, starting at its own index.
function M.share(records, index, count)
  local mine = {}
  for i = index + 1, #records, count do
    mine[#mine + 1] = records[i]
  end
  if #mine == 0 then
    mine = records
  end
  return mine
end

-- Requests sent in turn, over and over: fill() them in init(), hand next to wrk as request().
function M.rotation()
  local rotation = { requests = {}, position = 0 }
  function rotation.fill(requests, start)
    rotation.requests, rotation.position = requests, (start or 0) % #requests
  end
  function rotation.next()
    rotation.position = rotation.position % #rotation.requests + 1
    return rotation.requests[rotation.position]
  end
  return rotation
end

local threads = {}
local thread_count = 0

function M.setup(thread)
  thread:set("thread_index", thread_count)
  thread_count = thread_count + 1
  threads[#threads + 1] = thread
end

function M.thread_count()
  return thread_count
end

local function number(value)
  if value ~= value or value == math.huge or value == -math.huge then
    return "null"
  end
  return string.format("%.3f", value)
end

-- Latencies are in microseconds; P95 is not in wrk's own --latency table, so it is printed here.
function M.done(summary, latency, requests)
  local parts = {}
  local function add(key, value)
    parts[#parts + 1] = string.format('"%s": %s', key, value)
  end
  add("requests", summary.requests)
  add("duration_us", summary.duration)
  add("bytes", summary.bytes)
  add("errors_connect", summary.errors.connect)
  add("errors_read", summary.errors.read)
  add("errors_write", summary.errors.write)
  add("errors_status", summary.errors.status)
  add("errors_timeout", summary.errors.timeout)
  add("latency_min_us", number(latency.min))
  add("latency_max_us", number(latency.max))
  add("latency_mean_us", number(latency.mean))
  add("latency_stdev_us", number(latency.stdev))
  for _, p in ipairs({ 50, 75, 90, 95, 99, 99.9 }) do
    add("p" .. tostring(p):gsub("%.", "") .. "_us", number(latency:percentile(p)))
  end
  local extra = {}
  for _, thread in ipairs(threads) do
    local sent = thread:get("sent_primary")
    if sent then
      extra[#extra + 1] = sent
    end
  end
  if #extra > 0 then
    local total = 0
    for _, n in ipairs(extra) do
      total = total + n
    end
    add("sent_primary", total)
  end
  io.write("BENCH_JSON {" .. table.concat(parts, ", ") .. "}\n")
end

return M
