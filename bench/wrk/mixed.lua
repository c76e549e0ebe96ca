-- A short mixed workload in one wrk run: cached dashboard GETs with a single-metric POST every nth request.
-- Arguments: paths file (GET), bodies file (POST /metrics, JSON), n.
local common = dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
local rotation = common.rotation()

setup = common.setup

function init(args)
  local paths = common.read_records(args[1])
  local bodies = common.read_records(args[2])
  local every = tonumber(args[3])
  local headers = { ["Content-Type"] = "application/json" }
  local requests = {}
  for i = 1, #paths * every do
    if i % every == 0 then
      requests[i] = wrk.format("POST", "/metrics", headers, bodies[(math.floor(i / every) - 1) % #bodies + 1])
    else
      requests[i] = wrk.format("GET", paths[(i - 1) % #paths + 1])
    end
  end
  rotation.fill(requests, thread_index * 7)
end

request = rotation.next

done = common.done
