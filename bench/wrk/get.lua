-- GET a rotating set of paths (one per record of the file given as the first script argument).
-- Used for cached GET /metrics, uncached GET /metrics, GET /metrics/{id}, /metrics/aggregate, /query,
-- and InfluxDB's /query.
local common = dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
local rotation = common.rotation()

setup = common.setup

function init(args)
  local mine = common.share(common.read_records(args[1]), thread_index, tonumber(args[2]) or 1)
  local requests = {}
  for i, path in ipairs(mine) do
    requests[i] = wrk.format("GET", path)
  end
  rotation.fill(requests)
end

request = rotation.next

done = common.done
